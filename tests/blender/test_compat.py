"""blender_pastiche.support.compat: the Blender-version differences, on whichever bpy runs the
tests (tests/run_blender45.sh runs them on 4.5 LTS, the default environment on 5.0)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import bpy
import numpy as np
import pytest

from blender_pastiche.support import compat

from . import scenes

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.blender
REPO = os.path.dirname(os.path.dirname(HERE))


def test_version_flags_match_the_running_blender(clean_scene):
    assert compat.IS_4X == (bpy.app.version < (5, 0, 0))
    for engine in (compat.ENGINE_EEVEE, compat.ENGINE_CYCLES, compat.ENGINE_WORKBENCH):
        clean_scene.render.engine = engine  # an unknown name raises TypeError
        assert clean_scene.render.engine == engine


def test_a_process_that_leaves_the_addon_registered_exits(tmp_path):
    """bpy 4.5 as a module hung forever at exit when the add-on was still registered
    (a render script, a farm job); compat.unregister_at_exit prevents it."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {REPO!r})
        import bpy
        import blender_pastiche
        blender_pastiche.register()
        print("registered", bpy.app.version_string, flush=True)
    """))
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "res"))
    try:
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit with the add-on registered")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered" in done.stdout


def render_pixels(scene, path) -> np.ndarray:
    bpy.ops.render.render()
    bpy.data.images["Render Result"].save_render(str(path), scene=scene)
    image = bpy.data.images.load(str(path))
    try:
        flat = np.empty(image.size[0] * image.size[1] * 4, np.float32)
        image.pixels.foreach_get(flat)
    finally:
        bpy.data.images.remove(image)
    return flat


def test_temporary_compositor_keeps_the_picture_and_puts_the_scene_back(clean_scene, tmp_path):
    scene = clean_scene
    scenes.build_scene(scene, str(tmp_path))
    scene.render.image_settings.file_format = "OPEN_EXR"
    plain = render_pixels(scene, tmp_path / "plain.exr")
    user_nodes = []
    if compat.IS_4X:
        # A compositor the user made and switched off (Use Nodes unticked): it brightens.
        scene.use_nodes = True
        tree = scene.node_tree
        layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
        out = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
        exposure = tree.nodes.new("CompositorNodeExposure")
        exposure.inputs["Exposure"].default_value = 2.0
        tree.links.new(layers.outputs["Image"], exposure.inputs[0])
        tree.links.new(exposure.outputs[0], out.inputs[0])
        scene.use_nodes = False
        user_nodes = sorted(n.name for n in tree.nodes)
    assert compat.compositor_tree(scene) is None

    made = compat.TemporaryCompositor(scene, ".Test Compositor", scene.view_layers[0].name)
    assert compat.compositor_tree(scene) is not None
    # A node added to it runs: a File Output writes the Image pass.
    capture = made.tree.nodes.new("CompositorNodeOutputFile")
    compat.setup_pass_outputs(capture, str(tmp_path / "captured"), "image_", ["Image"])
    layers = next(n for n in made.tree.nodes if n.name == ".Test Compositor Layers")
    made.tree.links.new(layers.outputs["Image"], capture.inputs[0])
    np.testing.assert_array_equal(render_pixels(scene, tmp_path / "with.exr"), plain)
    assert [f for f in os.listdir(tmp_path / "captured") if f.startswith("image_")]
    made.tree.nodes.remove(capture)

    made.remove(scene)
    assert compat.compositor_tree(scene) is None
    assert not [g for g in bpy.data.node_groups if g.name.startswith(".Test Compositor")]
    if compat.IS_4X:
        assert sorted(n.name for n in scene.node_tree.nodes) == user_nodes
        assert not [n.name for n in scene.node_tree.nodes if n.mute]
        scene.use_nodes = True  # the user's tree still works as before
        brighter = render_pixels(scene, tmp_path / "user.exr")
        assert brighter.reshape(-1, 4)[:, :3].max() > plain.reshape(-1, 4)[:, :3].max()
    else:
        np.testing.assert_array_equal(render_pixels(scene, tmp_path / "after.exr"), plain)

"""Tiny test scenes for the rendering tests, and a runner that renders them in
a fresh bpy process:

    python tests/blender/scenes.py MODE OUTDIR MODEL [options as JSON]

MODE: "hooks" (render(animation=True) with the handlers, like `blender -b -a`),
"operator" (bpy.ops.pastiche.render_animation()), "nodes" (the operator on
a compositor with a Pastiche Stylize node and an Exposure node after it).
Writes OUTDIR/report.json (per-frame keyframed weights as Blender evaluates
them, the operator's result, messages) next to the rendered frames.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRAMES = (5, 6, 7)
KEYS = {1: {"a": 1.0, "b": 0.0}, 11: {"a": 0.0, "b": 1.0}}
EXPOSURE = 1.0


def make_tiny_model(path: str, seed: int = 0) -> str:
    """Two distinct styles ("a", "b") in a tiny network, saved to path."""
    from tests.model_factory import write_randomized_model

    write_randomized_model(path, ("a", "b"), seed, table_seed=seed + 1, gamma_spread=0.8, beta_spread=0.6)
    return path


def expected_weights(frame: int) -> dict[str, float]:
    """The two-key mix at frame, worked out independently of Blender: with
    auto-clamped handles two keys make a smoothstep between them."""
    t = (frame - 1) / 10
    b = 3 * t * t - 2 * t ** 3
    return {"a": 1.0 - b, "b": b}


def build_scene(scene, outdir: str, file_format: str = "OPEN_EXR", depth: str = "32", size: int = 64):
    import bpy

    scene.render.engine = "CYCLES"
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
    scene.render.resolution_x = size
    scene.render.resolution_y = size * 3 // 4
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    s = scene.render.image_settings
    s.file_format = file_format
    s.color_mode = "RGBA"
    s.color_depth = depth
    scene.render.filepath = os.path.join(outdir, "frame_")
    scene.frame_start, scene.frame_end = FRAMES[0], FRAMES[-1]
    mesh = bpy.data.meshes.new("ball")
    import bmesh

    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=24, v_segments=12, radius=1.0)
    bm.to_mesh(mesh)
    ball = bpy.data.objects.new("ball", mesh)
    scene.collection.objects.link(ball)
    ball.location = (0.0, 0.0, 0.0)
    ball.keyframe_insert("location", frame=1)
    ball.location = (0.8, 0.0, 0.3)   # it moves, so frames differ in content too
    ball.keyframe_insert("location", frame=11)
    mat = bpy.data.materials.new("m")
    mat.diffuse_color = (0.8, 0.3, 0.1, 1.0)
    mesh.materials.append(mat)
    add_camera_and_sun(scene, distance=6.0)


def add_camera_and_sun(scene, distance: float) -> None:
    """A camera on -Y looking at the origin, a sun and an empty world."""
    import bpy

    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    cam.location = (0.0, -distance, 0.0)
    cam.rotation_euler = (1.5708, 0.0, 0.0)
    scene.camera = cam
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.rotation_euler = (0.6, 0.3, 0.0)
    scene.collection.objects.link(sun)
    scene.world = bpy.data.worlds.new("w")


def add_backdrop(scene, colour: tuple[float, float, float]):
    """An 8 x 8 plane 3 units behind the origin, facing the camera, in one colour."""
    import bmesh
    import bpy

    mesh = bpy.data.meshes.new("backdrop")
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=8.0)
    bm.to_mesh(mesh)
    backdrop = bpy.data.objects.new("backdrop", mesh)
    backdrop.location = (0.0, 3.0, 0.0)
    backdrop.rotation_euler = (1.5708, 0.0, 0.0)
    scene.collection.objects.link(backdrop)
    mat = bpy.data.materials.new("grey")
    mat.diffuse_color = (*colour, 1.0)
    mesh.materials.append(mat)
    return backdrop


def setup_pastiche(scene, model: str, keep_original: bool = True):
    from blender_pastiche.props import scene as properties

    settings = scene.pastiche
    settings.model_source = "FILE"
    settings.model_path = model
    properties.sync_styles(scene)
    settings.device = "CPU"
    for frame, mix in KEYS.items():
        for item in settings.styles:
            item.weight = mix[item.name]
            item.keyframe_insert("weight", frame=frame)
    settings.keep_original = keep_original


def add_compositor(scene, with_node: bool):
    """Render Layers -> [Pastiche Stylize] -> Exposure(+1 stop) -> output."""
    import bpy

    from blender_pastiche.nodes import stylize_node as compositor_node
    from blender_pastiche.support import compat

    if compat.IS_4X:
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        out = tree.nodes.new("CompositorNodeComposite")
    else:
        tree = bpy.data.node_groups.new("Comp", "CompositorNodeTree")
        scene.compositing_node_group = tree
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        out = tree.nodes.new("NodeGroupOutput")
    layers = tree.nodes.new("CompositorNodeRLayers")
    exposure = tree.nodes.new("CompositorNodeExposure")
    exposure.inputs["Exposure"].default_value = EXPOSURE
    src = layers.outputs["Image"]
    if with_node:
        node = tree.nodes.new(compositor_node.NODE_IDNAME)
        tree.links.new(src, node.inputs[0])
        src = node.outputs[0]
    tree.links.new(src, exposure.inputs[0])
    tree.links.new(exposure.outputs[0], out.inputs[0])
    return tree


def register_addon():
    import blender_pastiche

    blender_pastiche.register()


def run(mode: str, outdir: str, model: str, opts: dict) -> dict:
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="pastiche-bres-"))
    sys.path.insert(0, ROOT)
    import bpy

    register_addon()
    from blender_pastiche.operators import render_animation as animation
    from blender_pastiche.render import hooks as render_hooks
    from blender_pastiche.worker import client as worker_client

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    build_scene(scene, outdir, opts.get("format", "OPEN_EXR"), opts.get("depth", "32"))
    setup_pastiche(scene, model, keep_original=opts.get("keep", True))
    add_compositor(scene, with_node=(mode == "nodes"))
    report: dict = {"mode": mode, "weights": {}, "messages": []}
    for f in FRAMES:
        scene.frame_set(f)
        report["weights"][f] = render_hooks.frame_weights(scene)

    # Test hooks: cancel after a frame, or kill the worker while it stylizes a frame.
    cancel_after = opts.get("cancel_after")
    kill_at = opts.get("kill_at")
    if kill_at is not None:
        real = render_hooks.submit_pixels

        def killing(pixels, weights, **options):
            if bpy.context.scene.frame_current != kill_at:
                return real(pixels, weights, **options)
            import signal
            import time

            # Freeze the (already running) worker first, so it cannot finish this frame's
            # job before the kill lands; then kill it once the job has been sent.
            pid = worker_client.get_client().pid
            assert pid, "the worker should be running from the previous frame"
            os.kill(pid, signal.SIGSTOP)
            job = real(pixels, weights, **options)
            while job.state != "running" and not job.done():
                time.sleep(0.002)
            time.sleep(0.5)  # let the pump thread write the request to the frozen worker
            os.kill(pid, signal.SIGKILL)
            report["killed_pid"] = pid
            return job
        render_hooks.submit_pixels = killing

    # Test hooks: a worker that stops answering (SIGSTOP, as a hung process) just before
    # frame freeze_at is stylized, with a short response timeout; and the render run as
    # `blender -b file.blend -a` (whose exit status says whether frames failed).
    freeze_at = opts.get("freeze_at")
    if opts.get("response_timeout"):
        config = worker_client.WorkerConfig(response_timeout=float(opts["response_timeout"]))
        worker_client.set_config_provider(lambda: config)
    if freeze_at is not None:
        import signal

        @bpy.app.handlers.persistent  # survives the .blend's reopening below
        def freeze(s, *_):
            pid = worker_client.get_client().pid
            if s.frame_current == freeze_at and pid:
                os.kill(pid, signal.SIGSTOP)
                report["frozen_pid"] = pid
        bpy.app.handlers.render_write.insert(0, freeze)  # before Pastiche's own handler
    if opts.get("render_anim_argv"):
        sys.argv[1:] = ["-b", "scene.blend", "-a"]

    if cancel_after is not None:
        # As if the user pressed Esc while frame cancel_after renders: it finishes, no more start.
        bpy.app.handlers.render_post.append(lambda s, *_: animation.request_cancel()
                                            if s.frame_current == cancel_after else None)

    if mode == "hooks":
        blend = os.path.join(outdir, "scene.blend")
        scene.pastiche.enabled = True
        bpy.ops.wm.save_as_mainfile(filepath=blend)
        bpy.ops.wm.open_mainfile(filepath=blend)  # what a farm node does with the .blend
        bpy.ops.render.render(animation=True)
        report["outcomes"] = [vars(o) for o in render_hooks.STATE.outcomes]
    else:
        try:
            result = bpy.ops.pastiche.render_animation()
        except RuntimeError as exc:  # an operator reporting ERROR raises when run from Python
            result = {"CANCELLED"}
            report["messages"].append(str(exc))
        report["result"] = sorted(result)
        report["frame_after"] = bpy.context.scene.frame_current
        if mode == "nodes":
            from blender_pastiche.render.compositor import render_layer_nodes
            rl = render_layer_nodes(bpy.context.scene)
            report["render_layers_muted_after"] = [n.mute for n in rl]
            # The Render Result after the last frame: what the user sees.
            bpy.data.images["Render Result"].save_render(os.path.join(outdir, "render_result.exr"))
    report["leftover_files"] = sorted(
        os.path.relpath(os.path.join(d, f), outdir)
        for d, _, fs in os.walk(outdir) for f in fs if frame_files_marker() in f)
    worker_client.shutdown()
    return report


def frame_files_marker() -> str:
    from blender_pastiche.io import frame_files

    return frame_files.TEMP_MARKER


if __name__ == "__main__":
    mode, outdir, model = sys.argv[1:4]
    opts = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    rep = run(mode, outdir, model, opts)
    with open(os.path.join(outdir, "report.json"), "w") as fh:
        json.dump(rep, fh, indent=1, default=str)

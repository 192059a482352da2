"""Style regions through real Blender (issue #15, add-on side).

A Cycles scene (96 x 64, 4 samples) with two cubes side by side in front of a
backdrop, each cube a region with its own single style, the backdrop on the
scene's mix:

- away from the cubes' edges each cube's pixels are those of the whole frame
  stylized with its style alone; across the edge between them there is no
  seam (the result is the Cryptomatte-weighted blend of the two);
- the Cryptomatte IDs in the captured pass are the ones io/cryptomatte.py
  computes, bit for bit (the pass is captured as full 32-bit float);
- keyframed region weights and strength reach each frame's request; removing
  or moving a region keeps every other region's keyframes;
- the render hook path (render_write), temporal mode, the compositor node's
  Mask input, Stylize Render (the latest render's passes only) and Stylize
  Image and the Live Preview with a mask image use the regions;
- Workbench with an object row, a region with no style and a region whose
  object was deleted are refused before frame 1, naming the problem;
- the capture nodes don't change the rendered picture and go when the last
  region does.
"""

from __future__ import annotations

import os

import bpy
import numpy as np
import pytest

from blender_pastiche.io import cryptomatte, exr_file
from blender_pastiche.props import regions as region_props
from blender_pastiche.render import hooks as render_hooks
from blender_pastiche.render import passes
from blender_pastiche.render import regions as region_render
from blender_pastiche.support import compat

from . import scenes

pytestmark = pytest.mark.blender

W, H = 96, 64


@pytest.fixture(scope="module")
def stylizer(three_style_model):
    from pastiche_core import Stylizer

    return Stylizer(three_style_model, device="cpu", precision="fp32")


def _cube(scene, name, x, colour):
    import bmesh

    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.8)
    bm.to_mesh(mesh)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = (x, 0.0, 0.0)
    obj.rotation_euler = (0.0, 0.0, 0.0)
    scene.collection.objects.link(obj)
    mat = bpy.data.materials.new(f"Mat{name}")
    mat.diffuse_color = (*colour, 1.0)
    mesh.materials.append(mat)
    return obj


def build(scene, outdir, model, frames=(1, 1)):
    """Two cubes (touching at x = 0) before a backdrop; the scene's mix is "c"."""
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.render.resolution_percentage = 100
    s = scene.render.image_settings
    s.file_format, s.color_mode, s.color_depth = "OPEN_EXR", "RGBA", "32"
    scene.render.filepath = os.path.join(str(outdir), "frame_")
    scene.frame_start, scene.frame_end = frames
    left = _cube(scene, "Left", -0.9, (0.8, 0.3, 0.1))
    right = _cube(scene, "Right", 0.9, (0.1, 0.4, 0.8))
    left.rotation_euler = (0.3, 0.0, 0.2)  # shading that varies across the face
    scenes.add_backdrop(scene, (0.5, 0.6, 0.4))
    scenes.add_camera_and_sun(scene, distance=7.0)
    settings = scene.pastiche
    settings.model_source = "FILE"
    settings.model_path = str(model)
    settings.device = "CPU"
    for item in settings.styles:
        item.weight = 1.0 if item.name == "c" else 0.0
    settings.keep_original = True
    return left, right


def single_style_region(scene, obj, style):
    region = region_props.add_region(scene, obj.name, "OBJECT", obj)
    for item in region.styles:
        item.weight = 1.0 if item.name == style else 0.0
    return region


@pytest.fixture
def requests(monkeypatch):
    """Every stylize request of the frames: (frame, weights, options) with the
    coverage map as sent."""
    sent: list[dict] = []
    real = render_hooks.submit_pixels

    def watch(image, weights, **options):
        sent.append({"frame": bpy.context.scene.frame_current, "weights": dict(weights),
                     "options": dict(options), "image": image.copy()})
        return real(image, weights, **options)

    monkeypatch.setattr(render_hooks, "submit_pixels", watch)
    return sent


def read(path) -> np.ndarray:
    return exr_file.read_four_channels(str(path))


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(px):
        shrunk = out.copy()
        shrunk[1:] &= out[:-1]
        shrunk[:-1] &= out[1:]
        shrunk[:, 1:] &= out[:, :-1]
        shrunk[:, :-1] &= out[:, 1:]
        out = shrunk
    return out


def test_each_object_gets_its_own_style_without_a_seam(clean_scene, three_style_model, tmp_path,
                                                       stylizer, requests):
    scene = clean_scene
    left, right = build(scene, tmp_path, three_style_model)
    single_style_region(scene, left, "a")
    single_style_region(scene, right, "b")
    # Turning a region on turns on the pass and puts the capture in the compositor.
    assert region_render.view_layer(scene).use_pass_cryptomatte_object
    assert region_render.capture_for(scene).installed(compat.compositor_tree(scene))

    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    (req,) = requests
    regions = req["options"]["regions"]
    assert regions["mixes"] == [{"a": 1.0, "b": 0.0, "c": 0.0}, {"a": 0.0, "b": 1.0, "c": 0.0}]
    assert regions["strengths"] == [1.0, 1.0] and regions["method"] == "composite"
    assert req["weights"] == {"a": 0.0, "b": 0.0, "c": 1.0}
    coverage = regions["coverage"]
    assert coverage.shape == (H, W, 2) and coverage.dtype == np.float32
    assert float(coverage.sum(axis=2).max()) <= 1.0 + 1e-6
    inside_l, inside_r = coverage[..., 0] > 0.999, coverage[..., 1] > 0.999
    assert inside_l.sum() > 300 and inside_r.sum() > 300
    # Left on the left, right on the right, rows top-down.
    assert np.argwhere(inside_l)[:, 1].mean() < W / 2 < np.argwhere(inside_r)[:, 1].mean()
    edge = (coverage[..., 0] > 0.01) & (coverage[..., 1] > 0.01)
    assert edge.sum() >= 10, "the cubes should share antialiased edge pixels"

    rendered = read(tmp_path / "unstylized" / "frame_0001.exr")
    got = read(tmp_path / "frame_0001.exr")
    singles = {s: stylizer.stylize(rendered, {s: 1.0}, colour_space="linear", premultiplied=True)
               for s in "abc"}
    for mask, style in ((inside_l, "a"), (inside_r, "b")):
        core = erode(mask, 3)
        assert core.sum() > 100
        mad = np.abs(got[core] - singles[style][core]).mean()
        assert mad < 0.02, f"style {style}: {mad}"
        other = "b" if style == "a" else "a"
        assert np.abs(got[core] - singles[other][core]).mean() > 0.02  # the styles do differ
    # Across the edge: the masks cross-fade the two finished pictures (in the
    # network's display space; alpha is 1 here), so there is no seam.
    from pastiche_core.inference.colour import linear_to_srgb, srgb_to_linear

    rest = np.clip(1.0 - coverage.sum(axis=2), 0, 1)
    display = {s: linear_to_srgb(np.clip(singles[s][..., :3], 0, None)) for s in "abc"}
    blend = srgb_to_linear(coverage[..., :1] * display["a"] + coverage[..., 1:] * display["b"]
                           + rest[..., None] * display["c"])
    blend = np.concatenate([blend, got[..., 3:]], axis=2)
    assert np.abs(got[edge] - blend[edge]).max() < 0.02
    lo = np.minimum(np.minimum(singles["a"], singles["b"]), singles["c"])
    hi = np.maximum(np.maximum(singles["a"], singles["b"]), singles["c"])
    assert ((got[edge] >= lo[edge] - 0.01) & (got[edge] <= hi[edge] + 0.01)).all()
    # No jump: neighbouring pixels across the edge differ no more than in the singles.
    row_jump = np.abs(np.diff(got[..., :3], axis=1)).max(axis=2)
    single_jump = np.maximum(*(np.abs(np.diff(singles[s][..., :3], axis=1)).max(axis=2) for s in "ab"))
    near = edge[:, 1:] | edge[:, :-1]
    assert (row_jump[near] <= single_jump[near] + np.abs(np.diff(blend[..., :3], axis=1)).max(axis=2)[near]
            + 0.02).all()


def test_cryptomatte_ids_are_captured_bit_exact(clean_scene, three_style_model, tmp_path):
    scene = clean_scene
    left, right = build(scene, tmp_path, three_style_model)
    region = single_style_region(scene, left, "a")
    region_props.add_region(scene, "by material", "MATERIAL", bpy.data.materials["MatRight"])
    capture = region_render.capture_for(scene)
    assert capture.outputs == ["CryptoObject00", "CryptoObject01", "CryptoObject02",
                               "CryptoMaterial00", "CryptoMaterial01", "CryptoMaterial02"]
    bpy.ops.render.render(write_still=False)
    obj = passes.read_pass(capture.latest("CryptoObject00"), full_float=True)
    mat = passes.read_pass(capture.latest("CryptoMaterial00"), full_float=True)
    ids = set(obj[..., 0].view(np.uint32).ravel().tolist()) | set(obj[..., 2].view(np.uint32).ravel().tolist())
    assert {cryptomatte.name_hash(n) for n in ("Left", "Right", "backdrop")} <= ids
    mids = set(mat[..., 0].view(np.uint32).ravel().tolist())
    assert {cryptomatte.name_hash(n) for n in ("MatLeft", "MatRight", "grey")} <= mids
    assert cryptomatte.name_hash("Left") == 1671811856  # tests/addon/test_cryptomatte.py's value
    # Each pixel's coverage over all objects sums to 1 (nothing is lost in the file).
    layers = [passes.read_pass(capture.latest(f"CryptoObject{i:02d}"), full_float=True) for i in range(3)]
    total = cryptomatte.coverage(layers, ["Left", "Right", "backdrop"])
    np.testing.assert_allclose(total, 1.0, atol=1e-5)
    region.enabled = False


def _curve_paths(scene) -> dict[str, list[float]]:
    from blender_pastiche.props import animation

    return {fc.data_path: [k.co[1] for k in fc.keyframe_points] for fc in animation.pastiche_fcurves(scene)}


def test_keyframed_region_weights_and_strength_reach_each_frame(clean_scene, three_style_model, tmp_path,
                                                                requests):
    scene = clean_scene
    left, right = build(scene, tmp_path, three_style_model, frames=(1, 3))
    region = single_style_region(scene, left, "a")
    a, b = region.styles["a"], region.styles["b"]
    for frame, (wa, wb, strength) in ((1, (1.0, 0.0, 1.0)), (3, (0.0, 1.0, 0.5))):
        a.weight, b.weight, region.strength = wa, wb, strength
        a.keyframe_insert("weight", frame=frame)
        b.keyframe_insert("weight", frame=frame)
        region.keyframe_insert("strength", frame=frame)
    assert set(_curve_paths(scene)) >= {"pastiche.regions[0].styles[0].weight",
                                        "pastiche.regions[0].strength"}
    scene.frame_set(2)
    assert region_props.region_mix(scene, 0) == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    got = {r["frame"]: r["options"]["regions"] for r in requests}
    assert got[1]["mixes"] == [pytest.approx({"a": 1.0, "b": 0.0, "c": 0.0})]
    assert got[2]["mixes"] == [pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})]  # two keys: halfway
    assert got[3]["mixes"] == [pytest.approx({"a": 0.0, "b": 1.0, "c": 0.0})]
    assert [got[f]["strengths"][0] for f in (1, 2, 3)] == pytest.approx([1.0, 0.75, 0.5])


def test_removing_or_moving_a_region_keeps_each_regions_keyframes(clean_scene, three_style_model, tmp_path):
    scene = clean_scene
    left, right = build(scene, tmp_path, three_style_model)
    regions = [single_style_region(scene, left, "a"), single_style_region(scene, right, "b"),
               single_style_region(scene, left, "c")]
    for i, region in enumerate(regions):
        region.strength = 0.1 * (i + 1)
        region.keyframe_insert("strength", frame=1)
    scene.pastiche.active_region_index = 2
    assert bpy.ops.pastiche.region_move(direction="UP") == {"FINISHED"}
    assert [r.name for r in scene.pastiche.regions] == ["Left", "Left", "Right"]
    paths = _curve_paths(scene)
    for i, region in enumerate(scene.pastiche.regions):
        assert paths[f"pastiche.regions[{i}].strength"] == [pytest.approx(region.strength)]
    scene.pastiche.active_region_index = 0
    assert bpy.ops.pastiche.region_remove() == {"FINISHED"}
    paths = _curve_paths(scene)
    assert [r.name for r in scene.pastiche.regions] == ["Left", "Right"]
    assert paths == {"pastiche.regions[0].strength": [pytest.approx(0.3)],
                     "pastiche.regions[1].strength": [pytest.approx(0.2)]}
    # A model change re-orders the styles: every region's sliders keep their values.
    from blender_pastiche.props import scene as properties

    properties.sync_style_names(scene, ["c", "b", "a"])
    assert [s.name for s in scene.pastiche.regions[1].styles] == ["c", "b", "a"]
    assert scene.pastiche.regions[1].styles["b"].weight == 1.0
    assert scene.pastiche.regions[1].styles["a"].weight == 0.0


def test_add_operator_takes_the_active_object(clean_scene, three_style_model, tmp_path):
    scene = clean_scene
    left, _right = build(scene, tmp_path, three_style_model)
    bpy.context.view_layer.objects.active = left
    assert bpy.ops.pastiche.region_add() == {"FINISHED"}
    region = scene.pastiche.regions[0]
    assert region.object == left and region.source == "OBJECT" and region.name == "Left"
    assert [s.weight for s in region.styles] == [1.0, 0.0, 0.0]  # starts on the first style


def test_capture_leaves_the_picture_alone_and_goes_with_the_last_region(clean_scene, three_style_model,
                                                                        tmp_path):
    scene = clean_scene
    left, _right = build(scene, tmp_path, three_style_model)
    view_layer = region_render.view_layer(scene)
    assert compat.compositor_tree(scene) is None and not view_layer.use_pass_cryptomatte_object
    bpy.ops.render.render(write_still=False)
    bpy.data.images["Render Result"].save_render(str(tmp_path / "before.exr"), scene=scene)
    single_style_region(scene, left, "a")
    bpy.ops.render.render(write_still=False)
    bpy.data.images["Render Result"].save_render(str(tmp_path / "with.exr"), scene=scene)
    np.testing.assert_array_equal(read(tmp_path / "before.exr"), read(tmp_path / "with.exr"))
    # A saved file keeps the capture; opening it points it at this process's folder.
    blend = str(tmp_path / "regions.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    bpy.ops.wm.open_mainfile(filepath=blend)
    scene = bpy.context.scene
    assert region_render.scene_problem(scene) is None
    scene.pastiche.active_region_index = 0
    assert bpy.ops.pastiche.region_remove() == {"FINISHED"}
    assert compat.compositor_tree(scene) is None
    assert not region_render.view_layer(scene).use_pass_cryptomatte_object
    assert not [g for g in bpy.data.node_groups if g.name.startswith(region_render.NODE_PREFIX)]
    assert scene.pastiche.region_capture_state == ""


@pytest.mark.parametrize("case", ["workbench", "zero_mix", "deleted_object"])
def test_bad_regions_are_refused_before_frame_1_naming_the_problem(clean_scene, three_style_model,
                                                                   tmp_path, requests, case):
    scene = clean_scene
    left, _right = build(scene, tmp_path, three_style_model)
    region = single_style_region(scene, left, "a")
    region.name = "Hero"
    expected = {"workbench": "reads the Cryptomatte object pass, which Workbench doesn't render",
                "zero_mix": "style region 'Hero' has every style weight at zero",
                "deleted_object": "style region 'Hero' has no object chosen"}[case]
    if case == "workbench":
        scene.render.engine = compat.ENGINE_WORKBENCH
    elif case == "zero_mix":
        for item in region.styles:
            item.weight = 0.0
    else:
        bpy.data.objects.remove(left)
    with pytest.raises(RuntimeError, match=expected):
        bpy.ops.pastiche.render_animation()
    assert not requests
    assert not os.path.exists(tmp_path / "frame_0001.exr")
    # The panel shows the same problem.
    assert expected in render_hooks.regions_problem(scene, installed=False)


def test_render_hook_path_sends_the_regions(clean_scene, three_style_model, tmp_path, requests, stylizer):
    """render(animation=True) with Stylize Renders on, as Ctrl+F12 or blender -b -a."""
    scene = clean_scene
    left, right = build(scene, tmp_path, three_style_model, frames=(1, 2))
    single_style_region(scene, left, "a")
    single_style_region(scene, right, "b")
    scene.pastiche.enabled = True
    bpy.ops.render.render(animation=True)
    outcomes = render_hooks.STATE.outcomes
    assert [o.ok for o in outcomes] == [True, True], [o.message for o in outcomes]
    assert [r["frame"] for r in requests] == [1, 2]
    for req in requests:
        regions = req["options"]["regions"]
        assert regions["coverage"].shape == (H, W, 2)
        assert regions["mixes"][0] == {"a": 1.0, "b": 0.0, "c": 0.0}
    # The same pixels as the operator's: the render written by Blender, stylized with the regions.
    got = read(tmp_path / "frame_0001.exr")
    rendered = read(tmp_path / "unstylized" / "frame_0001.exr")
    inside = erode(requests[0]["options"]["regions"]["coverage"][..., 0] > 0.999, 3)
    single = stylizer.stylize(rendered, {"a": 1.0}, colour_space="linear", premultiplied=True)
    assert np.abs(got[inside] - single[inside]).mean() < 0.02
    # The frames' captured passes were read and deleted.
    assert not region_render.capture_for(scene).files("CryptoObject00")


def test_temporal_mode_sends_each_frames_own_regions(clean_scene, three_style_model, tmp_path, monkeypatch):
    from blender_pastiche.render import temporal as temporal_render

    scene = clean_scene
    left, right = build(scene, tmp_path, three_style_model, frames=(1, 2))
    left.location.x = -1.2
    left.keyframe_insert("location", frame=0)
    left.location.x = -0.6
    left.keyframe_insert("location", frame=2)
    single_style_region(scene, left, "a")
    single_style_region(scene, right, "b")
    scene.pastiche.temporal = True
    sent: list = []
    real = temporal_render.submit

    def watch(kind, fields, **kwargs):
        if "regions" in fields:
            sent.append((kind, fields["frame"], np.load(fields["regions"]["coverage"]["path"])))
        return real(kind, fields, **kwargs)

    monkeypatch.setattr(temporal_render, "submit", watch)
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    assert [(k, f) for k, f, _c in sent] == [("temporal_prime", 0), ("temporal_stylize", 1),
                                             ("temporal_stylize", 2)]
    # Each frame's map comes from its own pass: the left cube's mask moves with it.
    centres = [np.argwhere(c[..., 0] > 0.5)[:, 1].mean() for _k, _f, c in sent]
    assert centres[0] < centres[1] < centres[2]
    assert os.path.exists(tmp_path / "frame_0002.exr")


def _mask_image(name, w, h, left_white=True):
    """A byte image, white on its left half, black on the right (rows bottom-up in Blender)."""
    image = bpy.data.images.new(name, w, h, alpha=False)
    rgba = np.zeros((h, w, 4), np.float32)
    rgba[..., 3] = 1.0
    rgba[:, : w // 2, :3] = 1.0 if left_white else 0.0
    rgba[:, w // 2:, :3] = 0.0 if left_white else 1.0
    image.pixels.foreach_set(rgba[::-1].ravel())
    image.update()
    return image


def test_compositor_node_mask_input_limits_the_style(clean_scene, three_style_model, tmp_path, stylizer,
                                                     requests):
    from blender_pastiche.nodes import stylize_node

    scene = clean_scene
    build(scene, tmp_path, three_style_model)
    tree = bpy.data.node_groups.new("Comp", "CompositorNodeTree") if not compat.IS_4X else None
    if compat.IS_4X:
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        out = tree.nodes.new("CompositorNodeComposite")
    else:
        scene.compositing_node_group = tree
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        out = tree.nodes.new("NodeGroupOutput")
    layers = tree.nodes.new("CompositorNodeRLayers")
    node = tree.nodes.new(stylize_node.NODE_IDNAME)
    mask = tree.nodes.new("CompositorNodeImage")
    mask.image = _mask_image("left half", W, H)
    tree.links.new(layers.outputs["Image"], node.inputs["Image"])
    tree.links.new(mask.outputs["Image"], node.inputs["Mask"])
    tree.links.new(node.outputs[0], out.inputs[0])
    node.strength = 0.8
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    (req,) = requests
    regions = req["options"]["regions"]
    assert req["options"]["strength"] == 0.0  # the base: the input where the mask is black
    assert regions["strengths"] == [pytest.approx(0.8)] and regions["mixes"] == [req["weights"]]
    cov = regions["coverage"][..., 0]
    assert (cov[:, : W // 2] == 1.0).all() and (cov[:, W // 2:] == 0.0).all()  # top-down, as painted
    node_input = read(tmp_path / "unstylized" / "frame_0001.exr")
    got = read(tmp_path / "frame_0001.exr")
    full = stylizer.stylize(node_input, req["weights"], colour_space="linear", premultiplied=True,
                            strength=0.8)
    np.testing.assert_allclose(got[:, W // 2:], node_input[:, W // 2:], atol=1e-5)
    np.testing.assert_allclose(got[:, : W // 2], full[:, : W // 2], atol=1e-4)
    assert np.abs(got[:, : W // 2] - node_input[:, : W // 2]).mean() > 0.02
    # Unlinked, the mask is 1 everywhere: the node works as before (no regions).
    tree.links.remove(node.inputs["Mask"].links[0])
    requests.clear()
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    assert "regions" not in requests[0]["options"] and requests[0]["options"]["strength"] == pytest.approx(0.8)


def test_stylize_image_with_a_painted_mask_region(clean_scene, three_style_model, tmp_path, stylizer):
    scene = clean_scene
    build(scene, tmp_path, three_style_model)
    rng = np.random.default_rng(0)
    h, w = 24, 32
    rgba = np.concatenate([rng.random((h, w, 3)), np.ones((h, w, 1))], axis=2).astype(np.float32)
    picture = bpy.data.images.new("picture", w, h, alpha=True)
    picture.pixels.foreach_set((np.round(rgba * 255) / 255)[::-1].ravel())
    picture.update()
    region = region_props.add_region(scene, "left", "MASK", _mask_image("half mask", 16, 12))
    for item in region.styles:
        item.weight = 1.0 if item.name == "a" else 0.0
    _left, _right = bpy.data.objects["Left"], bpy.data.objects["Right"]
    single_style_region(scene, _left, "b")  # an object row: Stylize Image skips it (no render)
    assert bpy.ops.pastiche.stylize_image(image_name="picture") == {"FINISHED"}
    out = bpy.data.images["picture (Pastiche)"]
    flat = np.empty(w * h * 4, np.float32)
    out.pixels.foreach_get(flat)
    got = flat.reshape(h, w, 4)[::-1]
    source = np.round(rgba * 255) / 255
    a = stylizer.stylize(source, {"a": 1.0}, colour_space="srgb")
    c = stylizer.stylize(source, {"c": 1.0}, colour_space="srgb")
    # The mask (16 x 12, resized to 32 x 24) is white on the left: style a there, the scene's c elsewhere.
    np.testing.assert_allclose(got[:, :14, :3], a[:, :14, :3], atol=2 / 255)
    np.testing.assert_allclose(got[:, 18:, :3], c[:, 18:, :3], atol=2 / 255)
    # The picture itself is untouched.
    flat = np.empty(w * h * 4, np.float32)
    picture.pixels.foreach_get(flat)
    np.testing.assert_allclose(flat.reshape(h, w, 4)[::-1], source, atol=1e-6)


def test_collection_material_rows_and_a_later_row_wins(clean_scene, three_style_model, tmp_path, requests):
    scene = clean_scene
    left, right = build(scene, tmp_path, three_style_model)
    outer = bpy.data.collections.new("Props")
    inner = bpy.data.collections.new("Nested")
    scene.collection.children.link(outer)
    outer.children.link(inner)
    for obj in (left, right):
        scene.collection.objects.unlink(obj)
        inner.objects.link(obj)  # only in the nested collection: all_objects finds them
    single_style_region(scene, right, "b")
    by_collection = region_props.add_region(scene, "props", "COLLECTION", outer)
    by_material = region_props.add_region(scene, "left material", "MATERIAL", bpy.data.materials["MatLeft"])
    assert region_render.crypto_outputs(scene)[-1] == "CryptoMaterial02"
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    cov = requests[0]["options"]["regions"]["coverage"]
    object_right, collection, material_left = cov[..., 0], cov[..., 1], cov[..., 2]
    # The collection (both cubes) comes after the Right row: it wins there, the Right row gets nothing.
    assert float(object_right.max()) == 0.0
    # The material row comes last: the left cube's pixels are its own, the collection keeps the right cube.
    assert (material_left > 0.999).sum() > 300 and (collection > 0.999).sum() > 300
    assert np.argwhere(collection > 0.999)[:, 1].mean() > W / 2 > np.argwhere(material_left > 0.999)[:, 1].mean()
    assert float(collection[material_left > 0.999].max()) == 0.0
    np.testing.assert_array_less(cov.sum(axis=2), 1.0 + 1e-6)
    # Together they cover the two cubes exactly as the Cryptomatte object pass says.
    both = np.clip(collection + material_left, 0, 1)
    assert ((both > 0.999) == (cov.sum(axis=2) > 0.999)).all()
    by_collection.enabled = by_material.enabled = False


def test_plain_animation_renders_leave_no_capture_files(clean_scene, three_style_model, tmp_path):
    scene = clean_scene
    left, _right = build(scene, tmp_path, three_style_model, frames=(1, 2))
    single_style_region(scene, left, "a")
    assert not scene.pastiche.enabled  # Stylize Renders off: Blender's own render, untouched
    bpy.ops.render.render(animation=True)
    assert os.path.exists(tmp_path / "frame_0002.exr")
    assert not region_render.capture_for(scene).files("CryptoObject00")


def _image_pixels(name) -> np.ndarray:
    image = bpy.data.images[name]
    w, h = image.size
    flat = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(flat)
    return flat.reshape(h, w, 4)[::-1]


def test_stylize_render_applies_the_regions_of_the_latest_render(clean_scene, three_style_model, tmp_path,
                                                                 stylizer):
    """F12, then Stylize Render: each cube in its region's style, the backdrop in the scene's;
    passes captured by an earlier render are never taken for this one's."""
    from blender_pastiche.io import pixels as frame_pixels

    scene = clean_scene
    left, right = build(scene, tmp_path, three_style_model)
    bpy.ops.render.render()  # before any region: this render captured no pass
    single_style_region(scene, left, "a")
    region_b = single_style_region(scene, right, "b")
    with pytest.raises(RuntimeError, match=r"CryptoObject00 pass .* did not capture it: render again \(F12\)"):
        bpy.ops.pastiche.stylize_render()
    assert "Render Result (Pastiche)" not in bpy.data.images

    bpy.ops.render.render()
    rendered = frame_pixels.read_render_result(scene)
    assert bpy.ops.pastiche.stylize_render() == {"FINISHED"}
    got = _image_pixels("Render Result (Pastiche)")
    singles = {s: stylizer.stylize(rendered, {s: 1.0}, colour_space="linear", premultiplied=True)
               for s in "abc"}
    coverage = region_render.FrameRegions(region_render.frame_regions(scene).rows,
                                          {o: region_render.capture_for(scene).latest(o)
                                           for o in region_render.capture_for(scene).outputs}
                                          ).coverage((H, W))
    for k, style in ((0, "a"), (1, "b")):
        core = erode(coverage[..., k] > 0.999, 3)
        assert core.sum() > 100
        assert np.abs(got[core] - singles[style][core]).mean() < 0.02, style
        assert np.abs(got[core] - singles["c"][core]).mean() > 0.02  # not the scene's style there
    backdrop = erode(coverage.sum(axis=2) < 0.001, 3)
    assert np.abs(got[backdrop] - singles["c"][backdrop]).mean() < 0.02
    # The passes stay for another try: new sliders, the same render.
    for item in region_b.styles:
        item.weight = 1.0 if item.name == "a" else 0.0
    assert bpy.ops.pastiche.stylize_render() == {"FINISHED"}
    core = erode(coverage[..., 1] > 0.999, 3)
    again = _image_pixels("Render Result (Pastiche).001")  # each run makes a new image
    assert np.abs(again[core] - singles["a"][core]).mean() < 0.02
    # Passes older than the latest render's start are not that render's.
    capture = region_render.capture_for(scene)
    old = os.path.getmtime(capture.latest("CryptoObject00")) - 60
    for output in capture.outputs:
        os.utime(capture.latest(output), (old, old))
    with pytest.raises(RuntimeError, match=r"did not capture it: render again \(F12\)"):
        bpy.ops.pastiche.stylize_render()
    # The Render Result is one for all scenes: after another scene's render, this
    # scene's masks must not go onto that picture.
    bpy.ops.render.render()
    other = bpy.data.scenes.new("Other")
    other.render.engine = compat.ENGINE_WORKBENCH
    other.render.resolution_x, other.render.resolution_y = W, H
    other.collection.objects.link(scene.camera)
    other.camera = scene.camera
    bpy.ops.render.render(scene="Other")
    with pytest.raises(RuntimeError, match="the latest render is of the scene 'Other'"):
        bpy.ops.pastiche.stylize_render()


def test_live_preview_applies_mask_image_regions(clean_scene, three_style_model, tmp_path, monkeypatch):
    from blender_pastiche.ui import live_preview

    scene = clean_scene
    build(scene, tmp_path, three_style_model)
    scene.pastiche.preview_source = bpy.data.images.new("photo", 64, 48)
    region = region_props.add_region(scene, "left", "MASK", _mask_image("half mask", 16, 12))
    for item in region.styles:
        item.weight = 1.0 if item.name == "a" else 0.0
    jobs: list = []
    monkeypatch.setattr(live_preview.worker_client, "submit_stylize",
                        lambda pixels, weights, **kw: jobs.append((pixels.shape, weights, kw)) or None)
    live_preview._submit(scene)
    ((shape, weights, options),) = jobs
    assert weights == {"a": 0.0, "b": 0.0, "c": 1.0}
    regions = options["regions"]
    assert regions["mixes"] == [{"a": 1.0, "b": 0.0, "c": 0.0}]
    assert regions["coverage"].shape == (*shape[:2], 1)
    assert regions["coverage"][:, :20].min() == 1.0 and regions["coverage"][:, 44:].max() == 0.0
    # A broken region is shown on the panel, not raised into Blender.
    bpy.data.images.remove(bpy.data.images["half mask"])
    live_preview._submit(scene)
    assert live_preview.last_error and "region 'left'" in live_preview.last_error


@pytest.mark.skipif(compat.IS_4X, reason="4.5's compositor belongs to its scene: it can't be shared")
def test_a_compositor_shared_with_another_scene_or_group_is_refused_naming_it(clean_scene, three_style_model,
                                                                        tmp_path, requests):
    scene = clean_scene
    left, _right = build(scene, tmp_path, three_style_model)
    single_style_region(scene, left, "a")
    tree = compat.compositor_tree(scene)
    assert region_render.capture_for(scene).installed(tree)
    other = bpy.data.scenes.new("Other")
    other.compositing_node_group = tree  # e.g. a linked copy of the scene
    region_render.sync_capture(scene)
    # Our nodes would render this scene inside the other's compositor: they are taken out.
    assert not any(tree.nodes.get(n) for n in region_render.capture_for(scene).node_names)
    expected = rf"compositor node group '{tree.name}' also runs in the scene 'Other'"
    with pytest.raises(RuntimeError, match=expected):
        bpy.ops.pastiche.render_animation()
    assert not requests
    # Held in a group node of another compositor: the same.
    other.compositing_node_group = bpy.data.node_groups.new("Other's", "CompositorNodeTree")
    other.compositing_node_group.nodes.new("CompositorNodeGroup").node_tree = tree
    region_render.sync_capture(scene)
    with pytest.raises(RuntimeError, match="also runs in the node group \"Other's\""):
        bpy.ops.pastiche.render_animation()
    # A compositor of its own again: the capture goes back in and the render runs.
    bpy.data.node_groups.remove(other.compositing_node_group)
    region_render.sync_capture(scene)
    assert render_hooks.regions_problem(scene) is None
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    assert len(requests) == 1 and "regions" in requests[0]["options"]

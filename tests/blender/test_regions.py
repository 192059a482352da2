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
  Mask input and Stylize Image with a mask image use the regions;
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
    import bmesh

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
    mesh = bpy.data.meshes.new("backdrop")
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=8.0)
    bm.to_mesh(mesh)
    backdrop = bpy.data.objects.new("backdrop", mesh)
    backdrop.location = (0.0, 3.0, 0.0)
    backdrop.rotation_euler = (1.5708, 0.0, 0.0)
    scene.collection.objects.link(backdrop)
    grey = bpy.data.materials.new("grey")
    grey.diffuse_color = (0.5, 0.6, 0.4, 1.0)
    mesh.materials.append(grey)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    cam.location = (0.0, -7.0, 0.0)
    cam.rotation_euler = (1.5708, 0.0, 0.0)
    scene.camera = cam
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.rotation_euler = (0.6, 0.3, 0.0)
    scene.collection.objects.link(sun)
    scene.world = bpy.data.worlds.new("w")
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

"""Stylize Image and Stylize Render through the add-on's operators, against
the core's own output; originals untouched; undo; colour and alpha."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from blender_pastiche.io import pixels
from blender_pastiche.props import scene as properties

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def stylizer(tiny_model):
    from pastiche_core import Stylizer

    return Stylizer(tiny_model, device="cpu")


def _setup(scene, model, weights=(0.25, 0.75)):
    s = scene.pastiche
    s.model_source = "FILE"
    s.model_path = str(model)
    s.device = "CPU"
    for item, w in zip(s.styles, weights, strict=True):
        item.weight = w


def _read(image):
    flat = np.empty(image.size[0] * image.size[1] * image.channels, np.float32)
    image.pixels.foreach_get(flat)
    return flat.reshape(image.size[1], image.size[0], image.channels)[::-1]


def _test_picture(h=24, w=32, seed=0):
    """Straight sRGB colours and an alpha ramp with a fully transparent corner,
    all multiples of 1/255 so a byte image stores them exactly."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3)) / 255.0
    alpha = np.tile(np.linspace(0, 255, w).round() / 255.0, (h, 1))
    alpha[:4, :4] = 0.0
    return rgb.astype(np.float32), alpha.astype(np.float32)


def _image(name, rgba_top_first, float_buffer):
    image = bpy.data.images.new(name, rgba_top_first.shape[1], rgba_top_first.shape[0], alpha=True,
                                float_buffer=float_buffer)
    image.pixels.foreach_set(np.ascontiguousarray(rgba_top_first[::-1]).reshape(-1))
    return image


def test_stylize_float_image_with_alpha(clean_scene, tiny_model, stylizer):
    from pastiche_core.inference.colour import srgb_to_linear

    _setup(clean_scene, tiny_model)
    rgb, alpha = _test_picture()
    premul = np.concatenate([srgb_to_linear(rgb) * alpha[..., None], alpha[..., None]], axis=2)
    src = _image("photo", premul, float_buffer=True)
    before = _read(src).copy()
    assert bpy.ops.pastiche.stylize_image(image_name="photo") == {"FINISHED"}
    out = bpy.data.images["photo (Pastiche)"]
    assert out.is_float and out.colorspace_settings.name == "Linear Rec.709"
    np.testing.assert_array_equal(_read(bpy.data.images["photo"]), before)  # original untouched
    expected = stylizer.stylize(before, {"a": 0.25, "b": 0.75}, colour_space="linear", premultiplied=True)
    np.testing.assert_allclose(_read(out), expected, atol=1e-5)
    assert np.abs(expected[..., :3] - before[..., :3]).mean() > 0.01  # it did change


def test_stylize_byte_image_and_undo(clean_scene, tiny_model, stylizer):
    _setup(clean_scene, tiny_model)
    rgb, alpha = _test_picture(seed=1)
    src = _image("texture", np.concatenate([rgb, alpha[..., None]], axis=2), float_buffer=False)
    assert not src.is_float and src.colorspace_settings.name == "sRGB"
    before = _read(src).copy()
    bpy.ops.ed.undo_push(message="before stylize")
    # As a click in the UI does: EXEC with an undo push (from Python the undo flag is opt-in).
    assert bpy.ops.pastiche.stylize_image("EXEC_DEFAULT", True, image_name="texture") == {"FINISHED"}
    out = bpy.data.images["texture (Pastiche)"]
    assert not out.is_float and out.colorspace_settings.name == "sRGB" and out.alpha_mode == src.alpha_mode
    expected = stylizer.stylize(before, {"a": 0.25, "b": 0.75}, colour_space="srgb", premultiplied=False)
    np.testing.assert_allclose(_read(out), expected, atol=0.5 / 255 + 1e-6)  # byte storage rounds
    np.testing.assert_array_equal(_read(bpy.data.images["texture"]), before)

    bpy.ops.ed.undo()
    assert "texture (Pastiche)" not in bpy.data.images
    np.testing.assert_array_equal(_read(bpy.data.images["texture"]), before)
    bpy.ops.ed.redo()
    assert "texture (Pastiche)" in bpy.data.images


def test_known_picture_same_result_as_float_linear_premultiplied_or_byte_srgb(clean_scene, tiny_model):
    """One picture stored two ways (scene-linear premultiplied float, straight
    sRGB bytes) must be stylized to the same picture: the add-on tells the core
    the right colour space and alpha for each."""
    from pastiche_core.inference.colour import linear_to_srgb, srgb_to_linear

    _setup(clean_scene, tiny_model)
    rgb, alpha = _test_picture(seed=2)
    # Premultiplied storage cannot hold colour under alpha 0, and the network's
    # instance norm sees every pixel: give the straight version black there too.
    rgb[alpha == 0] = 0.0
    straight = np.concatenate([rgb, alpha[..., None]], axis=2)
    premul_linear = np.concatenate([srgb_to_linear(rgb) * alpha[..., None], alpha[..., None]], axis=2)
    _image("as_bytes", straight, float_buffer=False)
    _image("as_float", premul_linear, float_buffer=True)
    read_f = pixels.read_image(bpy.data.images["as_float"])
    read_b = pixels.read_image(bpy.data.images["as_bytes"])
    assert (read_f.colour_space, read_f.premultiplied) == ("linear", True)
    assert (read_b.colour_space, read_b.premultiplied) == ("srgb", False)
    for name in ("as_bytes", "as_float"):
        assert bpy.ops.pastiche.stylize_image(image_name=name) == {"FINISHED"}
    out_b = _read(bpy.data.images["as_bytes (Pastiche)"])
    out_f = _read(bpy.data.images["as_float (Pastiche)"])
    np.testing.assert_allclose(out_b[..., 3], alpha, atol=1e-6)
    np.testing.assert_allclose(out_f[..., 3], alpha, atol=1e-7)
    visible = alpha > 0.05
    f_as_srgb = linear_to_srgb(out_f[..., :3] / np.maximum(out_f[..., 3:4], 1e-6))
    err = np.abs(f_as_srgb - out_b[..., :3])[visible]
    assert err.max() < 2.5 / 255, err.max()
    # Fully transparent pixels keep their colour (nothing to stylize there).
    np.testing.assert_allclose(out_b[:4, :4], straight[:4, :4], atol=1e-6)


def _render_scene(scene):
    import bmesh

    scene.render.engine = "CYCLES"
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 40, 32
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    mesh = bpy.data.meshes.new("ball")
    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=16, v_segments=8, radius=1.0)
    bm.to_mesh(mesh)
    bm.free()
    scene.collection.objects.link(bpy.data.objects.new("ball", mesh))
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.location, cam.rotation_euler = (0.0, -5.0, 0.0), (1.5708, 0.0, 0.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    scene.collection.objects.link(sun)
    scene.world = bpy.data.worlds.new("w")


def _render_pixels(scene, path):
    """The render result, read independently of the add-on (EXR, linear)."""
    s = scene.render.image_settings
    s.file_format, s.color_depth, s.color_mode = "OPEN_EXR", "32", "RGBA"
    bpy.data.images["Render Result"].save_render(str(path), scene=scene)
    image = bpy.data.images.load(str(path))
    try:
        return _read(image).copy()
    finally:
        bpy.data.images.remove(image)


def test_stylize_render_at_frame_6_equals_the_core(clean_scene, tiny_model, stylizer, tmp_path):
    _setup(clean_scene, tiny_model)
    _render_scene(clean_scene)
    a, b = clean_scene.pastiche.styles
    for item, (w1, w11) in ((a, (0.2, 1.0)), (b, (0.6, 0.2))):
        item.weight = w1
        item.keyframe_insert("weight", frame=1)
        item.weight = w11
        item.keyframe_insert("weight", frame=11)
    clean_scene.frame_set(6)
    weights = properties.effective_weights(clean_scene)
    assert weights == pytest.approx({"a": 0.6, "b": 0.4}, abs=1e-6)
    bpy.ops.render.render()
    render = _render_pixels(clean_scene, tmp_path / "render.exr")
    assert 0.0 < render[..., 3].mean() < 1.0  # the ball on a transparent background

    assert bpy.ops.pastiche.stylize_render() == {"FINISHED"}
    out = bpy.data.images["Render Result (Pastiche)"]
    assert out.is_float and out.colorspace_settings.name == "Linear Rec.709"
    expected = stylizer.stylize(render, weights, colour_space="linear", premultiplied=True)
    np.testing.assert_allclose(_read(out), expected, atol=1e-5)
    # The scene's output settings were left as they were.
    assert clean_scene.render.image_settings.file_format == "OPEN_EXR"

import numpy as np
import pytest
import torch

from pastiche_core import ArgumentError, ImageError, PasticheError, Stylizer, WeightsError
from pastiche_core.inference import colour
from pastiche_core.inference import stylizer as stylizer_module
from pastiche_core.model.network import NormStats

from .conftest import make_model, smooth_image

W = {"ink": 0.5, "cobalt": 0.5}


@pytest.fixture
def stylizer(model):
    return Stylizer(model, device="cpu")


def test_output_has_input_shape_and_dtype_and_differs(stylizer):
    for shape in [(33, 47, 3), (33, 47, 4)]:
        img = smooth_image(*shape[:2], channels=shape[2])
        out = stylizer.stylize(img, W)
        assert out.shape == img.shape and out.dtype == np.float32
        assert np.abs(out[..., :3] - img[..., :3]).mean() > 0.01
    out64 = stylizer.stylize(smooth_image(20, 20).astype(np.float64), W)
    assert out64.dtype == np.float64


def test_strength_zero_returns_the_original_and_one_the_full_style(stylizer):
    img = smooth_image(32, 32)
    np.testing.assert_allclose(stylizer.stylize(img, W, strength=0.0), img, atol=1e-7)
    full = stylizer.stylize(img, W)
    half = stylizer.stylize(img, W, strength=0.5)
    np.testing.assert_allclose(half, 0.5 * full + 0.5 * img, atol=1e-6)


def test_linear_input_is_stylized_in_display_space_and_converted_back(stylizer):
    display = smooth_image(32, 40)
    linear = colour.srgb_to_linear(display)
    from_linear = stylizer.stylize(linear, W, colour_space="linear")
    from_display = stylizer.stylize(display, W, colour_space="srgb")
    np.testing.assert_allclose(from_linear, colour.srgb_to_linear(from_display), atol=1e-5)


def test_hdr_highlights_survive_at_strength_zero(stylizer):
    img = smooth_image(16, 16) * 8.0  # scene-linear values far above 1
    np.testing.assert_allclose(stylizer.stylize(img, W, colour_space="linear", strength=0.0), img, atol=1e-6)


def test_alpha_is_carried_through_premultiplied(stylizer):
    rgba = smooth_image(32, 32, channels=4)
    rgba[:, :4, 3] = 0.0  # a fully transparent band
    pre = rgba.copy()
    pre[..., :3] *= pre[..., 3:4]
    out = stylizer.stylize(pre, W, colour_space="linear", premultiplied=True)
    np.testing.assert_array_equal(out[..., 3], pre[..., 3])
    assert np.all(out[:, :4, :3] == 0.0)  # transparent stays transparent (premultiplied black)
    # Straight RGB is never brighter than alpha allows once premultiplied.
    assert np.all(out[..., :3] <= out[..., 3:4] + 1e-6)
    # The visible pixels match stylizing the un-premultiplied colour.
    straight = stylizer.stylize(rgba[..., :3], W)  # not identical: transparent band feeds the network
    assert straight.shape == (32, 32, 3)


def test_straight_alpha_keeps_transparent_pixels_unchanged(stylizer):
    rgba = smooth_image(24, 24, channels=4)
    rgba[:3, :, 3] = 0.0
    out = stylizer.stylize(rgba, W)
    np.testing.assert_array_equal(out[:3], rgba[:3])


def test_preserve_color_keeps_the_original_chroma(stylizer):
    img = smooth_image(32, 32)
    out = stylizer.stylize(img, W, preserve_color=True)
    chroma = lambda a: a - colour.luminance(a)[..., None]  # noqa: E731
    inside = (out > 0.01).all(axis=2) & (out < 0.99).all(axis=2)  # away from clipping
    np.testing.assert_allclose(chroma(out)[inside], chroma(img)[inside], atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 5, 3), np.float32), "empty"),
    (np.zeros((5, 5), np.float32), "H x W x 3"),
    (np.zeros((5, 5, 2), np.float32), "H x W x 3"),
    (np.zeros((5, 5, 3), np.uint8), "float image"),
    ("not an image", "numpy array"),
])
def test_bad_images_are_rejected(stylizer, bad, message):
    with pytest.raises(ImageError, match=message):
        stylizer.stylize(bad, W)


def test_nan_and_inf_are_rejected_with_a_count(stylizer):
    img = smooth_image(8, 8)
    img[0, 0, 0] = np.nan
    img[1, 1, 1] = np.inf
    with pytest.raises(ImageError, match="2 NaN or infinite"):
        stylizer.stylize(img, W)


def test_huge_images_are_refused_before_allocating(stylizer, monkeypatch):
    monkeypatch.setattr(stylizer_module, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="more than the supported"):
        stylizer.stylize(np.zeros((11, 10, 3), np.float32), W)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 3), (17, 2), (63, 65)])
def test_tiny_and_odd_sizes_work(stylizer, shape):
    img = smooth_image(*shape)
    out = stylizer.stylize(img, W)
    assert out.shape == img.shape and np.isfinite(out).all()


def test_invalid_options_are_rejected(stylizer):
    img = smooth_image(8, 8)
    with pytest.raises(ArgumentError, match="strength"):
        stylizer.stylize(img, W, strength=1.5)
    with pytest.raises(ArgumentError, match="colour space"):
        stylizer.stylize(img, W, colour_space="aces")  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match="no style weights"):
        stylizer.stylize(img)
    with pytest.raises(PasticheError, match="unknown device"):
        Stylizer(make_model(), device="toaster")


def test_one_style_model_needs_no_weights():
    s = Stylizer(make_model(["only"]), device="cpu")
    assert s.stylize(smooth_image(16, 16)).shape == (16, 16, 3)


def test_batch_equals_one_by_one(stylizer):
    frames = [smooth_image(24, 32, seed=i) for i in range(5)] + [smooth_image(20, 20, seed=9)]
    batch = stylizer.stylize_batch(frames, W, batch_size=2)
    for f, b in zip(frames, batch, strict=True):
        np.testing.assert_allclose(b, stylizer.stylize(f, W), atol=1e-5)


# Tiling: the network run stage by stage over a partition of the image, every norm with
# the whole image's statistics and every tile with a halo covering its receptive field
# (tiled_pass.py), so a tiled pass equals an untiled one up to float rounding.
def test_tiled_equals_untiled():
    s = Stylizer(make_model(tiny=False), device="cpu")
    img = smooth_image(200, 300)
    whole = s.stylize(img, W, tile=0)
    tiled = s.stylize(img, W, tile=96)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def textured_image(h, w, seed=0):
    """Photo-like with strong fine grain: the texture a downscaled copy loses."""
    img = smooth_image(h, w, seed=seed)
    grain = 0.15 * np.random.default_rng(seed + 1).standard_normal(img.shape)
    return np.clip(img + grain, 0, 1).astype(np.float32)


def test_tiled_statistics_are_exact_for_images_above_the_tiling_threshold(monkeypatch):
    """An automatically tiled image with odd sizes (the padded image is partitioned,
    not the original) matches the untiled result however many tiles it takes."""
    monkeypatch.setattr(stylizer_module, "AUTO_TILE_PIXELS", 64 * 64)
    monkeypatch.setattr(stylizer_module, "DEFAULT_TILE", 96)
    s = Stylizer(make_model(tiny=False), device="cpu")
    img = textured_image(203, 301)
    whole = s.stylize(img, W, tile=0)
    tiled = s.stylize(img, W)  # 12 tiles of about 96 px
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_downscaled_statistics_would_miss_the_bound():
    """Control for the test above: the previous scheme, statistics measured on a
    copy at half the size (a 4K frame's copy at 2048 px) and replayed at full size,
    misses the bound on the same image even without tiles."""
    s = Stylizer(make_model(tiny=False), device="cpu")
    img = textured_image(200, 300)
    whole = s.stylize(img, W, tile=0)
    x = torch.from_numpy(img.transpose(2, 0, 1))[None]
    mix = torch.from_numpy(s.mix_vector(W)).float()[None]
    small = torch.nn.functional.interpolate(x, size=(100, 152), mode="bilinear", antialias=True,
                                            align_corners=False)
    recorded = NormStats()
    with torch.inference_mode():
        s.network(small, mix, recorded)
        estimate = s.network(x, mix, NormStats(recorded.recorded))[0].permute(1, 2, 0).numpy()
    assert np.abs(whole - estimate).mean() > 0.002 * 10


@pytest.mark.parametrize("arch", ["full", "light"])
def test_tiles_are_exact_for_weight_maps_and_the_plain_network(arch):
    from pastiche_core import Architecture, Style, new_model

    model = new_model([Style(n, {}) for n in ("ink", "cobalt", "rust")], Architecture.preset(arch, 3), seed=3)
    with torch.no_grad():
        for norm in model.network.norms():
            norm.gamma.normal_(1.0, 0.4)
            norm.beta.normal_(0.0, 0.4)
    s = Stylizer(model, device="cpu")
    img = textured_image(130, 150)
    wmap = np.random.default_rng(0).random((130, 150, 3)).astype(np.float32) + 0.1
    for weights in (W, wmap):
        np.testing.assert_allclose(s.stylize(img, weights, tile=64), s.stylize(img, weights, tile=0), atol=1e-4)
    s.fast_network = None  # the plain network's convolutions (devices without the fast twin)
    np.testing.assert_allclose(s.stylize(img, W, tile=64), s.stylize(img, W, tile=0), atol=1e-4)


def test_halos_are_what_makes_tiles_exact(monkeypatch):
    """Control: without halos each tile's edges see padding instead of neighbours."""
    from pastiche_core.inference import tiled_pass

    s = Stylizer(make_model(tiny=False), device="cpu")
    img = textured_image(130, 150)
    whole = s.stylize(img, W, tile=0)
    monkeypatch.setattr(tiled_pass, "down_halo", lambda kernel: 0)
    monkeypatch.setattr(tiled_pass, "up_halo", lambda kernel: 0)
    assert np.abs(s.stylize(img, W, tile=64) - whole).max() > 1e-2


def test_tiles_partition_the_padded_image_on_multiples_of_4():
    from pastiche_core.inference.tiling import expand, partition

    for hp, wp, tile in [(204, 304, 96), (2160, 3840, 1024), (52, 300, 96), (4320, 7680, 1024)]:
        tiles = partition(hp, wp, tile)
        count = np.zeros((hp, wp), np.int32)
        for t in tiles:
            assert all(v % 4 == 0 for v in (t.y0, t.y1, t.x0, t.x1))
            assert max(t.shape) <= tile + 3
            count[t.y0:t.y1, t.x0:t.x1] += 1
            c = expand(t, 8, hp, wp)
            assert (c.y0, c.x0) == (max(0, t.y0 - 8), max(0, t.x0 - 8))
            assert (c.y1, c.x1) == (min(hp, t.y1 + 8), min(wp, t.x1 + 8))
        assert (count == 1).all()
    assert len(partition(2160, 3840, 1024)) == 12  # 4 x 3 tiles of 960 x 720


def test_naive_tiling_would_seam_so_the_statistics_matter():
    """Control: tiles normalized with their own statistics differ far more."""
    s = Stylizer(make_model(tiny=False), device="cpu")
    img = smooth_image(200, 300)
    whole = s.stylize(img, W, tile=0)
    x = torch.from_numpy(img.transpose(2, 0, 1))[None]
    mix = torch.from_numpy(s.mix_vector(W)).float()[None]
    with torch.inference_mode():
        naive = torch.cat([s.network(x[..., :, :152], mix), s.network(x[..., :, 152:], mix)], dim=3)
    naive_np = naive[0].permute(1, 2, 0).numpy()
    tiled = s.stylize(img, W, tile=96)
    assert np.abs(whole - naive_np).mean() > 100 * np.abs(whole - tiled).mean()


def test_tiling_works_with_weight_maps_and_alpha(stylizer):
    img = smooth_image(130, 150, channels=4)
    wmap = np.random.default_rng(0).random((130, 150, 3)).astype(np.float32) + 0.1
    whole = stylizer.stylize(img, wmap, tile=0)
    tiled = stylizer.stylize(img, wmap, tile=64)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    np.testing.assert_array_equal(tiled[..., 3], img[..., 3])


def test_large_images_are_tiled_automatically(stylizer, monkeypatch):
    calls = []
    original = Stylizer._forward_tiled
    monkeypatch.setattr(stylizer_module, "AUTO_TILE_PIXELS", 64 * 64)
    monkeypatch.setattr(Stylizer, "_forward_tiled", lambda self, *a: calls.append(a[2]) or original(self, *a))
    stylizer.stylize(smooth_image(80, 80), W)
    assert calls == [stylizer_module.DEFAULT_TILE]


@pytest.mark.parametrize("options", [{}, {"preserve_color": True}, {"brush_size": 2.0, "detail": 0.5},
                                     {"strength": 0.5}, {"tile": 64}])
def test_the_callers_image_is_never_modified(stylizer, options):
    """In-range display images go to the network without a copy: nothing may write into them."""
    img = smooth_image(130, 150)
    before = img.copy()
    stylizer.stylize(img, W, **options)
    np.testing.assert_array_equal(img, before)

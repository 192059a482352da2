"""The border margin: every path pads a picture the same way, and its edges are painted like its inside."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pastiche_core import Stylizer
from pastiche_core.inference import padding
from pastiche_core.model.modelfile import resolve_model_path


@pytest.mark.parametrize("n", [1, 2, 5, 9, 16, 100, 511])
def test_index_maps_mirror_like_torch_reflect_padding(n):
    m = padding.BORDER_MARGIN
    idx = padding.padded_indices(n, m)
    assert len(idx) == padding.padded_length(n, m) and len(idx) % padding.MULTIPLE == 0
    assert idx.min() >= 0 and idx.max() <= n - 1
    x = torch.arange(n, dtype=torch.float32)[None, None]
    if m < n:
        want = F.pad(x, (m, m), mode="reflect")
        want = F.pad(want, (0, len(idx) - want.shape[-1]), mode="reflect")
        assert (want[0, 0].long().numpy() == idx).all()
    else:  # too short to mirror: the edge pixel repeats
        assert set(idx[:m].tolist()) == {0}
    flat = padding.padded_indices(n, m, mirror=False)
    assert (flat[:m] == 0).all() and (flat[m:m + n] == np.arange(n)).all() and (flat[m + n:] == n - 1).all()


DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.png"  # the project's own render


def _scene(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.45 + 0.3 * np.sin(x / 37.0 + c) * np.cos(y / 23.0 - c) for c in range(3)], axis=2)
    return np.clip(img + 0.03 * np.random.default_rng(0).standard_normal((h, w, 3), dtype=np.float32), 0, 1)


def test_the_margin_paints_a_pictures_edges_like_its_inside():
    """A crop of the demo render, stylized alone, against the same pixels
    stylized inside the whole render: with the margin, the crop's outer pixels
    come closer to how the network paints the inside (without it, the network
    draws a frame of lines along the edges)."""
    stylizer = Stylizer(resolve_model_path(None), device="cpu")
    scene = np.asarray(Image.open(DEMO).convert("RGB"), dtype=np.float32) / 255.0
    crop = (slice(64, 320), slice(96, 416))
    band = np.zeros((256, 320), bool)
    band[:4], band[-4:], band[:, :4], band[:, -4:] = True, True, True, True
    names = stylizer.style_names[::2]
    assert stylizer.border_margin == padding.BORDER_MARGIN == 8
    stylizer.border_margin = 0
    inside = [stylizer.stylize(scene, {n: 1.0})[crop] for n in names]
    errors = {}
    for margin in (0, 8):
        stylizer.border_margin = margin
        alone = [stylizer.stylize(np.ascontiguousarray(scene[crop]), {n: 1.0}) for n in names]
        errors[margin] = float(np.mean([np.abs(a - b)[band].mean() for a, b in zip(alone, inside, strict=True)]))
    assert errors[8] < 0.9 * errors[0], errors  # measured: 0.095 against 0.115


def test_tiles_and_batches_see_the_same_margin():
    stylizer = Stylizer(resolve_model_path(None), device="cpu")
    img = _scene(150, 230)
    mix = {stylizer.style_names[0]: 0.5, stylizer.style_names[1]: 0.5}
    whole = stylizer.stylize(img, mix, tile=0)
    assert np.abs(stylizer.stylize(img, mix, tile=64) - whole).max() <= 1.0 / 255.0
    pair = stylizer.stylize_batch([img, img[::-1].copy()], mix, tile=0)
    assert np.abs(pair[0] - whole).max() <= 1e-5

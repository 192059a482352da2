"""Every inference path agrees with the plain float32 network within 1/255, up to 4K.

The plain path is the trained ``StyleNetwork`` itself, untiled; the others are
the fast twin untiled, and the streamed tiles (fast twin's convolutions and
norms, whole-image statistics). A light-architecture model with distinct,
randomized styles stands in for a trained one (it amplifies float differences
more than a trained network does, so this is a strict check).
"""

import numpy as np
import pytest
import torch

from pastiche_core import Architecture, Style, Stylizer, new_model

ONE_LEVEL = 1.0 / 255.0
MIX = {"a": 0.6, "b": 0.4}


def _picture(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.5 + 0.4 * np.sin(x / 53.0 + c) * np.cos(y / 31.0 - c) for c in range(3)], axis=2)
    img += 0.04 * np.random.default_rng(h + w).standard_normal((h, w, 3), dtype=np.float32)
    return np.clip(img, 0, 1)


def _light_model():
    model = new_model([Style("a"), Style("b")], Architecture.preset("light", 2), seed=3)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for norm in model.network.norms():
            norm.gamma.copy_(1.0 + 0.3 * torch.randn(norm.gamma.shape, generator=g))
            norm.beta.copy_(0.3 * torch.randn(norm.beta.shape, generator=g))
    return model


@pytest.mark.slow
@pytest.mark.parametrize("size", [(512, 512), (1080, 1920), (2160, 3840)], ids=["512", "1080p", "4k"])
def test_fast_and_tiled_paths_match_the_plain_network(size):
    model = _light_model()
    fast = Stylizer(model, device="cpu")
    plain = Stylizer(model, device="cpu")
    plain.fast_network = None  # the trained network as it is, no rewriting
    img = _picture(*size)
    want = plain.stylize(img, MIX, tile=0)
    assert want.std() > 0.02  # a real picture, not a flat one (else the test proves little)
    untiled = fast.stylize(img, MIX, tile=0)
    assert np.abs(untiled - want).max() <= ONE_LEVEL
    tile = 1024 if size[0] > 1100 else 256
    tiled = fast.stylize(img, MIX, tile=tile)
    assert np.abs(tiled - want).max() <= ONE_LEVEL
    assert np.abs(tiled - want).mean() < 0.1 * ONE_LEVEL


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision, tolerance", [("fp32", ONE_LEVEL), ("fp16", 4 * ONE_LEVEL)])
def test_cuda_paths_match_the_cpu_plain_network(precision, tolerance):
    model = _light_model()
    plain = Stylizer(model, device="cpu")
    plain.fast_network = None
    gpu = Stylizer(_light_model(), device="cuda", precision=precision)
    img = _picture(1080, 1920)
    want = plain.stylize(img, MIX, tile=0)
    assert np.abs(gpu.stylize(img, MIX, tile=0) - want).max() <= tolerance
    assert np.abs(gpu.stylize(img, MIX, tile=512) - want).max() <= tolerance

"""Fixtures for the core tests: tiny models made on the fly, no shared assets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pastiche_core import Architecture, Style, new_model, save_model

TINY = dict(channels=(8, 16, 32), num_residual=1)


def make_model(names=("ink", "ochre", "cobalt"), seed=0, tiny=True):
    """A randomly initialized model whose styles really differ (random gamma/beta)."""
    arch = Architecture(num_styles=len(names), **(TINY if tiny else {}))
    model = new_model([Style(n, {"artist": f"Artist {n}", "title": f"Study in {n}", "year": "1900",
                                 "licence": "public domain"}) for n in names], arch, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for norm in model.network.norms():
            norm.gamma.copy_(1.0 + 0.5 * torch.randn(norm.gamma.shape, generator=g))
            norm.beta.copy_(0.5 * torch.randn(norm.beta.shape, generator=g))
    return model


@pytest.fixture
def model():
    return make_model()


@pytest.fixture
def model_file(tmp_path, model):
    return save_model(model, tmp_path / "tiny.safetensors")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def smooth_image(h, w, channels=3, seed=0):
    """A photo-like test image: smooth gradients plus a little texture."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([
        0.5 + 0.4 * np.sin(x / max(w, 1) * 6.0 + c) * np.cos(y / max(h, 1) * 4.0 - c) for c in range(3)
    ], axis=2)
    img = np.clip(base + 0.05 * r.standard_normal((h, w, 3)), 0, 1).astype(np.float32)
    if channels == 4:
        alpha = np.clip(x / max(w - 1, 1), 0, 1)[..., None].astype(np.float32)
        img = np.concatenate([img, alpha], axis=2)
    return img

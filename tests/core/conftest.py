"""Fixtures for the core tests: tiny models made on the fly, no shared assets."""

from __future__ import annotations

import numpy as np
import pytest

from pastiche_core import save_model

from ..model_factory import randomized_model


def make_model(names=("ink", "ochre", "cobalt"), seed=0, tiny=True):
    """A randomly initialized model whose styles really differ (random gamma/beta)."""
    credits = {n: {"artist": f"Artist {n}", "title": f"Study in {n}", "year": "1900",
                   "licence": "public domain"} for n in names}
    return randomized_model(names, seed, table_seed=seed + 1, tiny=tiny, credits=credits)


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

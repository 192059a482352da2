"""Tiny models whose styles really differ, made by the tests (no shared assets).

An untrained model has gamma=1, beta=0 for every style, so all styles look
alike; randomizing the per-style tables gives distinct, non-identity styles.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pastiche_core import Architecture, Style, new_model, save_model
from pastiche_core.model.modelfile import PasticheModel

TINY = {"channels": (8, 16, 32), "num_residual": 1}


def randomized_model(styles=("a", "b"), seed: int = 0, *, table_seed: int | None = None,
                     gamma_spread: float = 0.5, beta_spread: float = 0.5, tiny: bool = True,
                     credits: dict[str, dict[str, str]] | None = None) -> PasticheModel:
    """Weights from ``seed``; the style tables from ``table_seed`` (default: ``seed``)."""
    arch = Architecture(num_styles=len(styles), **(TINY if tiny else {}))
    credits = credits or {}
    model = new_model([Style(s, credits.get(s, {})) for s in styles], arch, seed=seed)
    g = torch.Generator().manual_seed(seed if table_seed is None else table_seed)
    with torch.no_grad():
        for norm in model.network.norms():
            norm.gamma.copy_(1.0 + gamma_spread * torch.randn(norm.gamma.shape, generator=g))
            norm.beta.copy_(beta_spread * torch.randn(norm.beta.shape, generator=g))
    return model


def write_randomized_model(path: str | os.PathLike, styles=("a", "b"), seed: int = 0, **options) -> Path:
    return save_model(randomized_model(styles, seed, **options), path)

"""Perceptual losses: content (feature distance), style (Gram matrices), total variation.

Every term is per sample, so a batch can mix styles and per-style weights.
Each feature or Gram distance is divided by the squared norm of its target:
the loss then means the same for both VGG input conventions (whose feature
scales differ by ~50x) and every style layer weighs in comparably, so one
set of default weights works everywhere. Gram matrices are normalized by
size (C * H * W) and always computed in float32, also under autocast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..errors import PasticheError
from .vgg import VGGFeatures, check_layers

_EPS = 1e-8


@dataclass
class LossConfig:
    """Which VGG layers and how much of each term. Defaults: docs/training.md
    ("Loss layers and weights") gives the measurement behind them."""

    content_layer: str = "relu3_1"
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e-4
    # Per-layer multipliers (same length as style_layers), 1.0 each by default.
    layer_weights: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        self.style_layers = tuple(self.style_layers)
        self.layer_weights = tuple(float(w) for w in self.layer_weights) or (1.0,) * len(self.style_layers)
        self.validate()

    def validate(self) -> None:
        if not self.style_layers:
            raise PasticheError("at least one style layer is needed")
        check_layers([self.content_layer, *self.style_layers])
        if len(self.layer_weights) != len(self.style_layers):
            raise PasticheError(
                f"{len(self.layer_weights)} layer weights for {len(self.style_layers)} style layers"
            )
        for name in ("content_weight", "style_weight", "tv_weight"):
            v = getattr(self, name)
            if not (v >= 0 and v < float("inf")):
                raise PasticheError(f"{name.replace('_', ' ')} must be a finite number >= 0, got {v}")

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.content_layer, *self.style_layers)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["style_layers"] = list(self.style_layers)
        d["layer_weights"] = list(self.layer_weights)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LossConfig:
        known = {k: d[k] for k in ("content_layer", "style_layers", "content_weight", "style_weight",
                                   "tv_weight", "layer_weights") if k in d}
        return cls(**known)


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrices divided by C * H * W, in float32."""
    b, c, h, w = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.float().reshape(b, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def relative_distance(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample ||x - t||^2 / ||t||^2 over all but the batch dimension, in float32."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, target = x.float(), target.float()
        dims = tuple(range(1, x.dim()))
        return ((x - target) ** 2).sum(dims) / ((target ** 2).sum(dims) + _EPS)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared difference of neighbouring pixels."""
    x = x.float()
    dh = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean((1, 2, 3))
    dw = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean((1, 2, 3))
    return dh + dw


@dataclass
class LossTerms:
    """Per-sample weighted terms (B,) and their batch mean ``total``."""

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor

    @property
    def per_sample(self) -> torch.Tensor:
        return self.content + self.style + self.tv

    @property
    def total(self) -> torch.Tensor:
        return self.per_sample.mean()

    def means(self) -> dict[str, float]:
        """Batch means as floats (synchronizes with the device)."""
        return {"loss": float(self.total.detach()), "content": float(self.content.detach().mean()),
                "style": float(self.style.detach().mean()), "tv": float(self.tv.detach().mean())}


class PerceptualLoss(nn.Module):
    """Content + style + TV loss for a batch whose samples may each have another style.

    ``style_grams`` holds the targets: layer -> (N, C, C) for N styles. A
    batch names its styles by index (B,), or passes (B, N) mix weights, in
    which case the target Gram is the mix of the styles' Grams (blending
    Grams equals blending the per-style losses up to a constant).
    """

    def __init__(self, vgg: VGGFeatures, config: LossConfig):
        super().__init__()
        missing = [n for n in config.layers if n not in vgg.layers]
        if missing:
            raise PasticheError(f"the loss network was built without layer(s) {', '.join(missing)}")
        self.vgg = vgg
        self.config = config

    @torch.no_grad()
    def style_grams(self, images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Targets for a list of style images, each (1, 3, H, W) in [0, 1] (sizes may differ)."""
        per_layer: dict[str, list[torch.Tensor]] = {n: [] for n in self.config.style_layers}
        for img in images:
            feats = self.vgg(img.float())
            for n in self.config.style_layers:
                per_layer[n].append(gram(feats[n])[0])
        return {n: torch.stack(g) for n, g in per_layer.items()}

    def forward(self, output: torch.Tensor, content: torch.Tensor, style_grams: dict[str, torch.Tensor],
                style: torch.Tensor, coefficients: torch.Tensor | None = None,
                content_features: torch.Tensor | None = None) -> LossTerms:
        """``output``/``content``: (B, 3, H, W) in [0, 1]. ``style``: (B,) indices or
        (B, N) weights into ``style_grams``. ``coefficients``: (N,) per-style
        multipliers of the style weight."""
        cfg = self.config
        if content_features is None:
            with torch.no_grad():
                content_features = self.vgg(content)[cfg.content_layer]
        feats = self.vgg(output)
        content_term = cfg.content_weight * relative_distance(feats[cfg.content_layer], content_features)
        style_term = output.new_zeros(output.shape[0], dtype=torch.float32)
        for name, lw in zip(cfg.style_layers, cfg.layer_weights, strict=True):
            targets = style_grams[name]
            if style.dim() == 1:
                target = targets[style]
            else:
                target = torch.einsum("bn,ncd->bcd", style.float(), targets)
            style_term = style_term + lw * relative_distance(gram(feats[name]), target)
        style_term = cfg.style_weight * style_term
        if coefficients is not None:
            coeff = coefficients[style] if style.dim() == 1 else style.float() @ coefficients
            style_term = style_term * coeff
        tv_term = cfg.tv_weight * total_variation(output) if cfg.tv_weight else style_term * 0
        return LossTerms(content_term, style_term, tv_term)

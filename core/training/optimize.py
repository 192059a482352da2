"""Gatys et al. style transfer: optimize the pixels themselves.

Slow (hundreds of VGG passes per image) but works with any style image, no
training, and reaches lower losses than a feed-forward network: it is the
quality reference ``pastiche evaluate`` compares networks against. The
losses are the training losses (core/losses.py), so the numbers compare.

Multi-scale: the image is solved at 1/2^(k-1), ..., 1/2, 1 of the output
size, each scale starting from the previous result upsampled, which settles
the large structures cheaply before the fine ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ImageError, PasticheError, WeightsError
from ..inference import colour
from ..perceptual.losses import LossConfig, LossTerms, PerceptualLoss
from ..perceptual.vgg import VGGFeatures

METHODS = ("lbfgs", "adam")
_MIN_SIDE = 32


@dataclass
class OptimizeSettings:
    size: int = 512              # long side of the result, pixels
    scales: int = 3              # coarse-to-fine passes (1 = single scale)
    iterations: int = 200        # per scale
    method: str = "lbfgs"
    lr: float | None = None      # None: 1.0 for L-BFGS, 0.02 for Adam (pixel units)
    style_scale: float = 1.0     # style image long side relative to the result's
    preserve_color: bool = False
    init: str = "content"        # or "noise"
    seed: int = 0
    loss: LossConfig = field(default_factory=LossConfig)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise PasticheError(f"unknown optimizer {self.method!r}; use lbfgs or adam")
        if self.init not in ("content", "noise"):
            raise PasticheError(f"unknown init {self.init!r}; use content or noise")
        if self.size < _MIN_SIDE:
            raise PasticheError(f"size must be at least {_MIN_SIDE} pixels, got {self.size}")
        if self.scales < 1 or self.iterations < 1:
            raise PasticheError("scales and iterations must be at least 1")
        if not self.style_scale > 0:
            raise PasticheError(f"style scale must be > 0, got {self.style_scale}")
        self.loss.validate()


@dataclass
class OptimizeResult:
    image: np.ndarray                        # H x W x 3 float32 display sRGB
    losses: dict[str, float]                 # at the finest scale, on the final (clipped) image
    initial_losses: dict[str, float]         # of the starting image at the finest scale
    history: list[dict] = field(default_factory=list)


def _to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img[..., :3].transpose(2, 0, 1)))[None].float().to(device)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _fit(h: int, w: int, long_side: float) -> tuple[int, int]:
    s = long_side / max(h, w)
    return max(_MIN_SIDE // 2, round(h * s)), max(_MIN_SIDE // 2, round(w * s))


def normalized_style_weights(weights: list[float]) -> torch.Tensor:
    w = torch.tensor([float(v) for v in weights], dtype=torch.float64)
    if not torch.isfinite(w).all() or (w < 0).any():
        raise WeightsError(f"style weights must be finite and >= 0, got {weights}")
    if w.sum() <= 0:
        raise WeightsError("style weights are all zero")
    return (w / w.sum()).float()


def check_optimize_input(img: np.ndarray, what: str) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] not in (3, 4) or 0 in img.shape:
        raise ImageError(f"{what}: expected an H x W x 3 image, got {getattr(img, 'shape', type(img))}")
    if not np.isfinite(img).all():
        raise ImageError(f"{what} holds NaN or infinite values")


def optimize(content: np.ndarray, styles: list[tuple[np.ndarray, float]], vgg: VGGFeatures,
             settings: OptimizeSettings | None = None,
             progress: Callable[[int, int, dict], None] | None = None) -> OptimizeResult:
    """Stylize ``content`` (H x W x 3 display sRGB in [0, 1]) with a blend of ``styles``.

    ``styles``: (image, weight) pairs; the Gram targets are blended with the
    normalized weights. ``progress(scale, iteration, losses)`` is called now and then.
    """
    s = settings or OptimizeSettings()
    s.validate()
    check_optimize_input(content, "content image")
    if not styles:
        raise PasticheError("no style images given")
    for i, (img, _) in enumerate(styles):
        check_optimize_input(img, f"style image #{i + 1}")
    device = next(vgg.parameters()).device
    mix = normalized_style_weights([w for _, w in styles])[None].to(device)
    loss = PerceptualLoss(vgg, s.loss)
    c_full = _to_tensor(np.clip(content, 0, 1), device)
    style_full = [_to_tensor(np.clip(img, 0, 1), device) for img, _ in styles]
    h, w = content.shape[:2]
    sizes = [s.size / 2 ** k for k in reversed(range(s.scales))]
    gen = torch.Generator(device="cpu").manual_seed(s.seed)
    x: torch.Tensor | None = None
    history: list[dict] = []
    initial: dict[str, float] = {}
    final: dict[str, float] = {}
    for k, long_side in enumerate(sizes):
        hw = _fit(h, w, long_side)
        c = _resize(c_full, hw)
        grams = loss.style_grams([_resize(t, _fit(*t.shape[-2:], long_side * s.style_scale)) for t in style_full])
        with torch.no_grad():
            c_feat = vgg(c)[s.loss.content_layer]
        if x is None:
            x = c.clone() if s.init == "content" else torch.rand(c.shape, generator=gen).to(device)
        else:
            x = _resize(x, hw)
        x = x.detach().requires_grad_(True)

        def terms_of(img: torch.Tensor, c=c, grams=grams, c_feat=c_feat) -> LossTerms:
            return loss(img, c, grams, mix, content_features=c_feat)

        if k == len(sizes) - 1:
            with torch.no_grad():
                initial = terms_of(x.clamp(0, 1)).means()
        x = _solve(x, terms_of, s, k, progress, history)
        if k == len(sizes) - 1:
            with torch.no_grad():
                final = terms_of(x).means()
    assert x is not None
    out = x.detach()[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
    if s.preserve_color:
        ref = _resize(c_full, out.shape[:2])[0].permute(1, 2, 0).cpu().numpy()
        out = colour.preserve_colour(out, ref)
    return OptimizeResult(out, final, initial, history)


def _solve(x: torch.Tensor, terms_of: Callable[[torch.Tensor], LossTerms], s: OptimizeSettings, scale: int,
           progress: Callable[[int, int, dict], None] | None, history: list[dict]) -> torch.Tensor:
    every = max(1, s.iterations // 10)
    if s.method == "adam":
        opt = torch.optim.Adam([x], lr=s.lr or 0.02)
        for it in range(1, s.iterations + 1):
            opt.zero_grad(set_to_none=True)
            terms = terms_of(x)
            terms.total.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)  # projected gradient: stay a displayable image
            if it % every == 0 or it == s.iterations:
                rec = {"scale": scale, "iteration": it, **terms.means()}
                history.append(rec)
                if progress:
                    progress(scale, it, rec)
        return x.detach()
    opt = torch.optim.LBFGS([x], lr=s.lr or 1.0, max_iter=s.iterations, history_size=50,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")
    count = [0]

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        terms = terms_of(x)
        terms.total.backward()
        count[0] += 1
        if count[0] % every == 0:
            rec = {"scale": scale, "iteration": count[0], **terms.means()}
            history.append(rec)
            if progress:
                progress(scale, count[0], rec)
        return terms.total

    opt.step(closure)
    return x.detach().clamp(0, 1)

"""Brush Size and Detail: the network at a reduced size, its result brought
back edge-aware, and the input's fine structure optionally put back.

A feed-forward network paints strokes of a fixed size in pixels. Running it
on the picture divided by the brush size s paints strokes s times larger
(about s^2 cheaper, too); the result is brought back to full size with a
joint bilateral upsampling (Kopf, Cohen, Lischinski and Uyttendaele 2007)
guided by the full-resolution picture, so object outlines follow the
full-resolution edges instead of a blurred bicubic copy. Chosen by
measurement against bicubic and He et al.'s fast guided filter
(benchmarks/brush.py, numbers in docs/brush.md): it cuts bicubic's error at
object outlines five times; the guided filter only halves it and smooths the
strokes themselves (each window's output must be a linear function of the guide).

Detail adds back ``detail`` x the full-resolution input's luminance high
frequencies: the input minus a Gaussian low-pass at the strokes' scale.

Everything here works on display RGB, the picture the network sees; colour
spaces, alpha, preserve colour and strength stay with the stylizer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BrushError

MIN_BRUSH = 0.5
MAX_BRUSH = 4.0
# Joint bilateral upsampling: the 2 x 2 nearest low-resolution pixels (the
# cheapest window; 3 x 3 and 4 x 4 cost 2-4x the time for edges within 15 %);
# spatial sigma in low-resolution pixels, range sigma in display RGB. At brush
# size 2 on benchmarks/brush.py's scene: edge error 5x below bicubic's, the
# strokes within 0.01 of what the network painted (docs/brush.md).
JBU_WINDOW = 2
JBU_SIGMA_SPACE = 0.5
JBU_SIGMA_RANGE = 0.05
# Where no neighbour matches the guide's colour (a feature too thin to survive
# the downscale), the spatial weights alone decide: the range weight's floor.
_RANGE_FLOOR = 1e-3
# Detail's low-pass, in full-resolution pixels per unit of brush size: the
# default model's strokes are 2-4 pixels wide, so structure finer than about
# 1.5 pixels x s is what the network repaints and detail puts back.
DETAIL_SIGMA = 1.5
_LUMA = (0.2126, 0.7152, 0.0722)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise BrushError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise BrushError(f"{name} must be a finite number, got {v}")
    return v


def check_brush(brush_size: Any, detail: Any) -> tuple[float, float]:
    """Validated (brush size, detail) as floats."""
    s = _number("brush size", brush_size)
    if not MIN_BRUSH <= s <= MAX_BRUSH:
        raise BrushError(f"brush size must be between {MIN_BRUSH:g} and {MAX_BRUSH:g} "
                         f"(1 = strokes as trained), got {s:g}")
    d = _number("detail", detail)
    if not 0.0 <= d <= 1.0:
        raise BrushError(f"detail must be between 0 and 1, got {d:g}")
    return s, d


def network_size(shape: tuple[int, int], brush_size: float, min_side: int) -> tuple[int, int]:
    """(height, width) the network runs at for a picture of ``shape``; a
    reduction below the network's ``min_side`` is refused, naming the limit."""
    h, w = shape
    if brush_size == 1.0:
        return h, w
    nh, nw = max(1, round(h / brush_size)), max(1, round(w / brush_size))
    if brush_size > 1.0 and min(nh, nw) < min_side:
        largest = min(h, w) / min_side
        hint = (f"the largest brush size for this {w} x {h} picture is {math.floor(largest * 100) / 100:g}"
                if largest >= 1.0 else f"this {w} x {h} picture allows no brush size above 1")
        raise BrushError(f"brush size {brush_size:g} would run the network at {nw} x {nh} pixels, "
                         f"below its minimum side of {min_side} pixels; {hint}")
    return nh, nw


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """H x W x C numpy -> (1, C, H, W) float32 on ``device``."""
    arr = np.ascontiguousarray(image, dtype=np.float32)
    if not arr.flags.writeable:  # e.g. a worker's shared-memory view: torch must not alias it
        arr = arr.copy()
    return torch.from_numpy(arr).to(device).permute(2, 0, 1)[None]


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).float().cpu().numpy()


def resize_t(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) to ``size``: antialiased when shrinking (each output pixel
    averages what it covers, so fine texture cannot alias into the network's
    input), bicubic when enlarging."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if size[0] <= x.shape[-2] and size[1] <= x.shape[-1]:
        return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def resize(image: np.ndarray, size: tuple[int, int], device: torch.device | str = "cpu") -> np.ndarray:
    """H x W x C numpy version of resize_t."""
    return _to_numpy(resize_t(_to_tensor(image, torch.device(device)), size))


def resize_weights(weights: Any, size: tuple[int, int]) -> Any:
    """A per-pixel H x W x N weight map resampled to ``size`` (weights per
    pixel stay a mix); global weights unchanged."""
    if not (isinstance(weights, np.ndarray) and weights.ndim == 3) or weights.shape[:2] == tuple(size):
        return weights
    m = resize(np.clip(weights.astype(np.float32), 0.0, None), size)
    return np.clip(m, 0.0, None)


def _grid(n_out: int, n_in: int, device: torch.device) -> torch.Tensor:
    """Each output pixel's centre in input pixel coordinates (align_corners=False)."""
    return (torch.arange(n_out, device=device, dtype=torch.float32) + 0.5) * (n_in / n_out) - 0.5


def joint_bilateral_upsample_t(low: torch.Tensor, guide_low: torch.Tensor, guide: torch.Tensor, *,
                               sigma_space: float = JBU_SIGMA_SPACE,
                               sigma_range: float = JBU_SIGMA_RANGE,
                               window: int = JBU_WINDOW) -> torch.Tensor:
    """Upsample ``low`` (1, C, h, w) to the guide's size: each full-resolution
    pixel averages its ``window`` x ``window`` nearest low-resolution pixels
    (2, 3 or 4), weighted by distance and by how close each one's guide colour
    (``guide_low``: the picture the network saw) is to its own (``guide``), so
    samples from across an object's outline barely count and it stays crisp."""
    H, W = guide.shape[-2:]
    h, w = low.shape[-2:]
    c = low.shape[1]
    device = low.device
    v, u = _grid(H, h, device), _grid(W, w, device)
    # Odd windows centre on the nearest pixel, even ones on the pixels around.
    first = -(window // 2) if window % 2 else 1 - window // 2
    vb, ub = (v.round(), u.round()) if window % 2 else (v.floor(), u.floor())
    both = torch.cat([low.float(), guide_low.float()], 1)  # one gather for samples and guide
    guide = guide.float()
    num = torch.zeros((1, c, H, W), device=device, dtype=torch.float32)
    den = torch.zeros((1, 1, H, W), device=device, dtype=torch.float32)
    inv_s, inv_r = -0.5 / sigma_space**2, -0.5 / sigma_range**2
    for dy in range(first, first + window):
        yy = vb + dy
        wy = torch.exp((v - yy).square() * inv_s)[:, None]
        rows = both.index_select(2, yy.clamp(0, h - 1).long())
        for dx in range(first, first + window):
            xx = ub + dx
            wx = torch.exp((u - xx).square() * inv_s)[None, :]
            sample = rows.index_select(3, xx.clamp(0, w - 1).long())
            d2 = (sample[:, c:] - guide).square_().sum(1, keepdim=True)
            weight = d2.mul_(inv_r).exp_().add_(_RANGE_FLOOR).mul_(wy * wx)
            num.addcmul_(weight, sample[:, :c])
            den.add_(weight)
    return num / den


def bicubic_upsample_t(low: torch.Tensor, guide_low: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Plain bicubic, the baseline (guides unused)."""
    return F.interpolate(low, size=guide.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)


def _box_t(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)


def fast_guided_upsample_t(low: torch.Tensor, guide_low: torch.Tensor, guide: torch.Tensor, *,
                           radius: int = 1, eps: float = 1e-3) -> torch.Tensor:
    """He and Sun's fast guided filter (2015) with the luminance as guide: a
    local linear model out = a * I + b fitted at low resolution, a and b
    upsampled and applied to the full-resolution guide. (A candidate, measured
    against in benchmarks/brush.py.)"""
    luma = torch.tensor(_LUMA, device=low.device).view(1, 3, 1, 1)
    i_low = (guide_low * luma).sum(1, keepdim=True)
    i_full = (guide * luma).sum(1, keepdim=True)
    mean_i, mean_p = _box_t(i_low, radius), _box_t(low, radius)
    cov = _box_t(i_low * low, radius) - mean_i * mean_p
    var = _box_t(i_low * i_low, radius) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    size = guide.shape[-2:]
    a_up = F.interpolate(_box_t(a, radius), size=size, mode="bilinear", align_corners=False)
    b_up = F.interpolate(_box_t(b, radius), size=size, mode="bilinear", align_corners=False)
    return (a_up * i_full + b_up).clamp(0, 1)


UPSAMPLERS = {"joint_bilateral": joint_bilateral_upsample_t, "bicubic": bicubic_upsample_t,
              "fast_guided": fast_guided_upsample_t}
UPSAMPLER = "joint_bilateral"


def _gaussian_blur_t(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    # Reflect padding needs the pad below the side; replicate beyond it.
    mode = "reflect" if r < min(x.shape[-2:]) else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def detail_band_t(image: torch.Tensor, brush_size: float) -> torch.Tensor:
    """The luminance high frequencies of (1, 3, H, W) ``image`` finer than the strokes."""
    luma = (image * torch.tensor(_LUMA, device=image.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return luma - _gaussian_blur_t(luma, DETAIL_SIGMA * brush_size)


def restore(styled: np.ndarray, network_in: np.ndarray, full: np.ndarray, brush_size: float,
            detail: float, device: torch.device | str = "cpu", upsampler: str = UPSAMPLER) -> np.ndarray:
    """The network's display-RGB output ``styled`` (at the size of
    ``network_in``, the picture it saw) brought back to the size of ``full``
    (the full-resolution display RGB), plus ``detail`` x its fine structure."""
    dev = torch.device(device)
    with torch.inference_mode():
        y = _to_tensor(styled, dev)
        guide = _to_tensor(full, dev)
        size = tuple(full.shape[:2])
        if tuple(y.shape[-2:]) != size:
            if y.shape[-2] < size[0] or y.shape[-1] < size[1]:
                y = UPSAMPLERS[upsampler](y, _to_tensor(network_in, dev), guide)
            else:  # brush size below 1: the network painted a larger picture
                y = resize_t(y, size)  # type: ignore[arg-type]
        if detail > 0.0:
            y = y + detail * detail_band_t(guide, brush_size)
        return _to_numpy(y.clamp_(0.0, 1.0))


def stroke_width(image: np.ndarray, highpass_sigma: float = 16.0) -> float:
    """A measured stroke scale in pixels: the half-width at half maximum of
    the radially averaged autocorrelation of the luminance's high frequencies
    (the picture minus its Gaussian low-pass of ``highpass_sigma``). Larger
    strokes stay correlated over more pixels, so this grows with the brush size."""
    rgb = np.asarray(image, dtype=np.float32)[..., :3]
    t = _to_tensor(rgb, torch.device("cpu"))
    with torch.inference_mode():
        luma = (t * torch.tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        high = (luma - _gaussian_blur_t(luma, highpass_sigma))[0, 0].double()
        high = high - high.mean()
        spectrum = torch.fft.rfft2(high)
        ac = torch.fft.irfft2(spectrum.abs().square(), s=high.shape)
    ac = np.fft.fftshift(ac.numpy())
    ac = ac / ac.max()
    h, w = ac.shape
    y, x = np.indices(ac.shape)
    radius = np.hypot(y - h // 2, x - w // 2).round().astype(int)
    counts = np.bincount(radius.ravel())
    profile = np.bincount(radius.ravel(), ac.ravel()) / np.maximum(counts, 1)
    below = np.nonzero(profile < 0.5)[0]
    if len(below) == 0:
        return float(len(profile))
    r = int(below[0])
    # Linear interpolation between the last radius above one half and the first below.
    return float(r - 1 + (profile[r - 1] - 0.5) / (profile[r - 1] - profile[r]))

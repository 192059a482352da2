"""Temporal coherence for animations, from the renderer's exact motion vectors.

Stylizing frames one by one flickers: strokes swim and colours pulse. A
renderer knows where every pixel was one frame ago (Blender's Vector pass),
so instead of guessing optical flow we warp the previous frame's stylization
along the true motion and blend it in where that pixel was visible.

Blender's Vector pass (checked with a Cycles render of a quad moving a known
number of pixels per frame, bpy 5.0.1; see docs/temporal.md) holds 4 channels
in pixels, in Blender's image space (x right, y *up*):
  xy = position in the previous frame - position in this frame
  zw = position in this frame - position in the next frame
so a pixel at p sits at p + xy in frame t-1 and at p - zw in frame t+1.
Arrays read from an EXR file run top-down (row 0 at the top), so there the
y components change sign; Blender's own pixel buffers run bottom-up.

Design (the measurements behind each choice: docs/temporal.md,
benchmarks/temporal.py), constrained by render farms:
- The state carried to frame t is a function of the ``history`` frames
  before it *alone* (default 1: frame t-1): their own per-frame
  stylizations warped into frame t-1's grid, its statistics and its motion.
  A chunk that starts at frame s primes frames s-history .. s-1 and then
  yields exactly the frames an unchunked render gives. (A recursive blend
  with the previous *temporal* output remembers the whole history, so the
  output would depend on where chunks split.)
- Output t = S_t + blend * valid * (warp(S_{t-1}) - S_t), where S is each
  frame's own per-frame stylization, warp() moves frame t-1's along the true
  motion and ``valid`` marks pixels visible in frame t-1 (forward/backward
  consistency of the two frames' vectors). Disoccluded pixels keep S_t.
- The blend puts back the local contrast that averaging two misaligned
  stroke textures removes (contrast_preserving_blend), and warps with
  bicubic resampling, which keeps small strokes sharp at sub-pixel motion.
- Optionally (``stats_blend``, off by default: it costs a second pass)
  frame t's instance-norm statistics are pulled towards frame t-1's so
  global colour cannot pulse.
- On a static scene every term is exactly the per-frame result, so static
  frames stay bit-identical (the lerp form a + w * (b - a) keeps a == b exact).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..errors import ImageError
from ..inference import brush, colour
from ..inference.arguments import check_options
from ..inference.mixing import WeightsLike
from ..inference.regions import StyleRegions
from ..inference.stylizer import Stylizer
from ..model.modelfile import PasticheModel
from ..model.network import NormStats

VectorRows = Literal["top_down", "bottom_up"]
VECTOR_ROWS = ("top_down", "bottom_up")

# Earlier frames blended into each frame; the state is re-created by priming
# this many frames before a chunk. More removes more flicker but changes the
# style more on fast motion and costs a primed frame each (docs/temporal.md).
DEFAULT_HISTORY = 1
MAX_HISTORY = 4
# Weight of the warped previous frame where it is valid. For flicker that is
# independent between frames 0.5 would minimise the warping error of a two-frame
# window, but on a pan the default model's strokes don't line up from frame to
# frame and blending them costs style: 0.4 meets both benchmark targets with it
# (warping error x0.46, style loss x1.09; docs/temporal.md).
DEFAULT_BLEND = 0.4
# Weight of frame t-1's instance-norm statistics in frame t's. Off by default:
# it costs a second network pass per frame and helps only footage whose
# statistics move between frames.
DEFAULT_STATS_BLEND = 0.0
# Below this fraction of pixels visible in the previous frame, treat the frame
# as a cut: blending across a cut would only smear the previous shot in.
CUT_FRACTION = 0.1
# An earlier frame stylized with another style mix is blended in less: its
# weight is scaled by 1 - d / MIX_CUT, where d is the L1 distance between the
# two frames' normalized mixes (0 to 2; pixel mean for weight maps). A keyed
# switch from one style to another (d = 2) or half-way (d = 1) is then a cut
# for the style, so the output follows the keys at once instead of dragging
# the old style along; a slow keyed fade (d = 0.2 a frame over 10 frames)
# keeps 80 % of the blend.
MIX_CUT = 1.0
# Window radius (pixels, a 3 x 3 window: the default model's 3-4 px strokes) of
# the local contrast measured by contrast_preserving_blend, and how earlier
# stylizations are resampled along the motion (bilinear blurs small strokes).
CONTRAST_RADIUS = 1
STYLIZED_WARP = "bicubic"
_VAR_EPS = 1e-6


# -- motion -------------------------------------------------------------------

@dataclass(frozen=True)
class Motion:
    """Per-pixel motion of one frame in array coordinates (x = column, y = row).

    ``to_prev[r, c]`` is (dx, dy) such that pixel (c, r) of this frame was at
    (c + dx, r + dy) in the previous frame; ``to_next`` likewise for the next.
    """

    to_prev: np.ndarray
    to_next: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.to_prev.shape[:2]  # type: ignore[return-value]

    @classmethod
    def still(cls, height: int, width: int) -> Motion:
        zero = np.zeros((height, width, 2), np.float32)
        return cls(zero, zero)


def motion_from_vector_pass(vector: np.ndarray, rows: VectorRows = "top_down") -> Motion:
    """Blender's 4-channel Vector pass -> Motion. ``rows`` says how the array's
    rows run: "top_down" as read from an EXR/PNG file, "bottom_up" as in
    Blender's own pixel buffers (Image.pixels, render results)."""
    if rows not in VECTOR_ROWS:
        raise ImageError(f"unknown row order {rows!r}; use one of {VECTOR_ROWS}")
    if not isinstance(vector, np.ndarray) or vector.ndim != 3 or vector.shape[2] != 4:
        shape = getattr(vector, "shape", type(vector).__name__)
        raise ImageError(f"the Vector pass must be an H x W x 4 array, got {shape}")
    v = vector.astype(np.float32, copy=False)
    bad = ~np.isfinite(v)
    if bad.any():
        raise ImageError(f"the Vector pass holds {int(bad.sum())} NaN or infinite value(s)")
    # Blender's y points up; in a top-down array the row index grows downward.
    ysign = -1.0 if rows == "top_down" else 1.0
    to_prev = np.stack([v[..., 0], ysign * v[..., 1]], axis=-1)
    to_next = np.stack([-v[..., 2], -ysign * v[..., 3]], axis=-1)
    return Motion(np.ascontiguousarray(to_prev), np.ascontiguousarray(to_next))


def scale_motion(motion: Motion, size: tuple[int, int]) -> Motion:
    """Motion resampled to an image of ``size`` (the network's, for a brush
    size), its vectors scaled by the same factors; itself at the same size."""
    h, w = motion.shape
    if (h, w) == tuple(size):
        return motion
    factor = np.array([size[1] / w, size[0] / h], np.float32)
    # Averaging neighbours' vectors, like the pixels they move; where that mixes
    # two objects' motion the forward/backward check marks the pixels invalid.
    return Motion(*(np.ascontiguousarray(brush.resize(v, size) * factor)
                    for v in (motion.to_prev, motion.to_next)))


# The pixel work runs in torch, on the stylizer's device in temporal mode; the
# numpy functions below wrap the same code for the metric and for callers.

def _warp_t(image: torch.Tensor, offsets: torch.Tensor, exact: bool = True,
            mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """``exact``: explicit bilinear weights, so integer motion moves pixels
    bit-exactly (the metric relies on it). Otherwise grid_sample, about five
    times faster, whose coordinate normalization errs by ~1e-4 pixel; pixels
    that did not move are then copied, so still frames stay bit-exact.
    ``mode`` (grid_sample path only): "bicubic" keeps more of a stroke
    texture's fine detail than bilinear, which at half-pixel motion is a
    [0.5, 0.5] blur (see STYLIZED_WARP)."""
    h, w = offsets.shape[:2]
    ys = torch.arange(h, device=offsets.device, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=offsets.device, dtype=torch.float32)[None, :]
    sx = xs + offsets[..., 0]
    sy = ys + offsets[..., 1]
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    if not exact:
        grid = torch.stack([sx * (2.0 / max(w - 1, 1)) - 1.0, sy * (2.0 / max(h - 1, 1)) - 1.0], dim=-1)
        img = image.reshape(h, w, -1).permute(2, 0, 1)[None]
        sampled = torch.nn.functional.grid_sample(img, grid[None].to(img.dtype), mode=mode,
                                                  padding_mode="border", align_corners=True)
        sampled = sampled[0].permute(1, 2, 0).reshape(image.shape)
        still = (offsets == 0).all(dim=-1)
        still = still.reshape(still.shape + (1,) * (image.dim() - 2))
        return torch.where(still, image, sampled), inside
    img = image.reshape(h * w, -1)
    sx = sx.clamp(0, w - 1)
    sy = sy.clamp(0, h - 1)
    x0f, y0f = sx.floor(), sy.floor()
    fx = (sx - x0f).reshape(-1, 1).to(img.dtype)
    fy = (sy - y0f).reshape(-1, 1).to(img.dtype)
    x0, y0 = x0f.long().reshape(-1), y0f.long().reshape(-1)
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    top = img[y0 * w + x0] * (1 - fx) + img[y0 * w + x1] * fx
    bottom = img[y1 * w + x0] * (1 - fx) + img[y1 * w + x1] * fx
    out = top * (1 - fy) + bottom * fy
    return out.reshape(image.shape), inside


def _visible_t(to_prev: torch.Tensor, prev_to_next: torch.Tensor, exact: bool = True) -> torch.Tensor:
    back, inside = _warp_t(prev_to_next, to_prev, exact)
    a, b = to_prev, back
    err = ((a + b) ** 2).sum(-1)
    tol = 0.01 * ((a * a).sum(-1) + (b * b).sum(-1)) + 0.5
    return inside & (err <= tol)


def _box_1d_t(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Mean over [i - r, i + r] along ``dim``, the window shrinking at the
    borders; from a running sum over a zero-padded copy, so the cost does not
    grow with the radius."""
    n = x.shape[dim]
    # Summing in float32 (several times faster than float64 on CPU, and all MPS
    # has) errs by ~1e-5 relative over a 4K row: plenty for a contrast gain.
    pad = [0, 0] * (x.dim() - 1 - dim) + [radius + 1, radius]
    total = torch.cumsum(torch.nn.functional.pad(x, pad), dim=dim)
    window = total.narrow(dim, 2 * radius + 1, n) - total.narrow(dim, 0, n)
    idx = torch.arange(n, device=x.device)
    count = ((idx + radius + 1).clamp(max=n) - (idx - radius).clamp(min=0)).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = n
    return window / count.reshape(shape)


def _local_mean_t(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Box mean over a (2r+1)^2 window of an H x W x C tensor, per channel."""
    return _box_1d_t(_box_1d_t(x, radius, 0), radius, 1)


def _contrast_preserving_blend_t(base: torch.Tensor, other: torch.Tensor, weight: torch.Tensor,
                                 radius: int) -> torch.Tensor:
    blended = base + weight * (other - base)
    mean_a, mean_b = _local_mean_t(base, radius), _local_mean_t(other, radius)
    var_a = _local_mean_t((base - mean_a) ** 2, radius)
    var_b = _local_mean_t((other - mean_b) ** 2, radius)
    mean_blend = mean_a + weight * (mean_b - mean_a)
    var_blend = _local_mean_t((blended - mean_blend) ** 2, radius)
    target = var_a + weight * (var_b - var_a)
    # Never sharpen beyond what mixing unrelated textures can have lost.
    max_gain = torch.rsqrt(((1 - weight) ** 2 + weight**2).clamp(min=0.5))
    gain = torch.sqrt((target + _VAR_EPS) / (var_blend + _VAR_EPS))
    gain = torch.minimum(gain.clamp(min=1.0), max_gain)
    return blended + (gain - 1.0) * (blended - mean_blend)


def warp(image: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward warp: out[r, c] = image sampled bilinearly at (c + dx, r + dy).

    Returns (warped, inside) where ``inside`` is False where the sample falls
    outside the image. Zero offsets return the image bit-exactly (the
    fractional weights are exactly 1 and 0), which static scenes rely on.
    """
    h, w = offsets.shape[:2]
    if image.shape[:2] != (h, w):
        raise ImageError(f"motion is {w} x {h} but the image is {image.shape[1]} x {image.shape[0]}")
    out, inside = _warp_t(torch.from_numpy(np.ascontiguousarray(image)),
                          torch.from_numpy(np.ascontiguousarray(offsets, dtype=np.float32)))
    return out.numpy(), inside.numpy()


def visible_in_previous(motion: Motion, previous: Motion) -> np.ndarray:
    """Boolean H x W mask: pixels of this frame that were visible in the
    previous one. A pixel at p maps to q = p + to_prev(p) in frame t-1; if it
    was visible there, frame t-1's forward motion at q brings it back to p.
    Disoccluded pixels (and those entering from outside the frame) fail this
    round trip. Tolerance from Sundaram, Brox and Keutzer (2010), as used by
    Ruder et al. (2016) for video style transfer."""
    if previous.shape != motion.shape:
        raise ImageError(f"motion of consecutive frames differs in size: {previous.shape} vs {motion.shape}")
    return _visible_t(torch.from_numpy(motion.to_prev), torch.from_numpy(previous.to_next)).numpy()


def contrast_preserving_blend(base: np.ndarray, other: np.ndarray, weight: np.ndarray,
                              radius: int = CONTRAST_RADIUS) -> np.ndarray:
    """base + weight * (other - base) with the local contrast put back.

    Averaging two stroke textures that do not line up (the flicker being
    removed) lowers their contrast and washes the style out: for unrelated
    textures a 50/50 mix keeps only half the variance. Here the blend's local
    deviations from its local mean are scaled so its local variance is the
    blend of the inputs' local variances (the variance-preserving blend of
    Heitz and Neyret 2018, made local, with the inputs' variances measured
    instead of assumed). Equal
    inputs give the plain blend exactly, so static frames stay bit-identical.
    ``weight`` is H x W x 1 in [0, 1].
    """
    t = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (base, other, weight)]
    return _contrast_preserving_blend_t(*t, radius).numpy()


# -- instance-norm statistics ----------------------------------------------------

def blend_stats(current: NormStats, previous: NormStats, weight: float) -> NormStats:
    """Per-layer lerp of recorded (mean, var) towards the previous frame's.
    Identical inputs give identical outputs (a + w * (b - a) with b == a)."""
    if len(current.recorded) != len(previous.recorded):
        raise ValueError("statistics come from different networks")
    out = []
    for (m1, v1), (m0, v0) in zip(current.recorded, previous.recorded, strict=True):
        if m1.shape != m0.shape:
            raise ValueError("statistics come from different networks")
        out.append((m1 + weight * (m0 - m1), v1 + weight * (v0 - v1)))
    return NormStats(out)


def mix_similarity(mix: torch.Tensor, other: torch.Tensor) -> float:
    """1 for the same style mix, falling to 0 at MIX_CUT (see there)."""
    if mix.shape != other.shape:
        return 0.0
    distance = float((mix - other).abs().sum(dim=1).mean())
    return max(0.0, 1.0 - distance / MIX_CUT)


def _same_stats(a: NormStats, b: NormStats) -> bool:
    return len(a.recorded) == len(b.recorded) and all(
        torch.equal(m1, m0) and torch.equal(v1, v0)
        for (m1, v1), (m0, v0) in zip(a.recorded, b.recorded, strict=True))


# -- the temporal stylizer --------------------------------------------------------

@dataclass
class HistoryFrame:
    """One earlier frame's own per-frame stylization, warped into the latest
    frame's pixel grid, and where that warp is valid (visible all the way)."""

    stylized: torch.Tensor  # display RGB, H x W x 3, float32 on the stylizer's device
    valid: torch.Tensor     # bool H x W
    mix: torch.Tensor       # the style mix it was stylized with (Stylizer.mix_tensor)


@dataclass
class TemporalState:
    """What the next frame needs: a function of the last ``history`` frames
    alone (their own stylizations and motion), never of earlier outputs."""

    frames: list[HistoryFrame]  # newest first; frames[0] is the latest frame itself
    stats: NormStats            # the latest frame's own instance-norm statistics
    to_next: torch.Tensor       # the latest frame's forward motion (H x W x 2, array coordinates)


class TemporalStylizer:
    """Stylizes the frames of one animation in order, keeping them stable.

        ts = TemporalStylizer("model.safetensors")
        for f in range(s - ts.history, s):                # re-create the state
            ts.prime(frame[f], vector[f], weights)
        for f in range(s, e + 1):
            out = ts.step(frame[f], vector[f], weights)

    ``vector`` is Blender's Vector pass of the same frame (H x W x 4), with
    rows in the same order as the image (``vector_rows``). Frames must come in
    order without gaps; after a jump call ``reset`` and prime again.

    ``history``: how many earlier frames are blended in (their state is
    re-created by priming that many frames). ``blend``: weight of the previous
    frame; older ones follow so that at 0.5 every frame in the window counts
    the same.
    """

    def __init__(self, stylizer: Stylizer | PasticheModel | str | os.PathLike, *,
                 blend: float = DEFAULT_BLEND, history: int = DEFAULT_HISTORY,
                 stats_blend: float = DEFAULT_STATS_BLEND, preserve_contrast: bool = True,
                 vector_rows: VectorRows = "top_down", device: str = "auto", precision: str = "auto"):
        for name, value in (("blend", blend), ("stats_blend", stats_blend)):
            if not (np.isfinite(value) and 0.0 <= value <= 1.0):
                raise ImageError(f"{name} must be between 0 and 1, got {value}")
        if isinstance(history, bool) or not isinstance(history, int) or not 1 <= history <= MAX_HISTORY:
            raise ImageError(f"history must be a whole number of frames from 1 to {MAX_HISTORY}, got {history!r}")
        if vector_rows not in VECTOR_ROWS:
            raise ImageError(f"unknown row order {vector_rows!r}; use one of {VECTOR_ROWS}")
        self.stylizer = stylizer if isinstance(stylizer, Stylizer) else Stylizer(stylizer, device, precision)
        self.blend = float(blend)
        self.history = history
        self.stats_blend = float(stats_blend)
        self.preserve_contrast = bool(preserve_contrast)
        self.vector_rows: VectorRows = vector_rows
        self.state: TemporalState | None = None
        # With style regions: one state per layer (0 = the base mix, k = region k).
        self.layer_states: dict[int, TemporalState | None] | None = None
        # Fraction of pixels blended with the previous frame in the last step (for reports).
        self.last_valid_fraction = 0.0

    @property
    def style_names(self) -> list[str]:
        return self.stylizer.style_names

    def reset(self) -> None:
        """Forget earlier frames (a cut, a jump, a new animation)."""
        self.state = None
        self.layer_states = None

    # -- public ------------------------------------------------------------------
    def prime(self, image: np.ndarray, vector: np.ndarray,
              weights: WeightsLike | np.ndarray | StyleRegions | None = None,
              *, colour_space: colour.ColourSpace = "srgb", premultiplied: bool = False,
              brush_size: float = 1.0) -> None:
        """Feed a frame before the first one to render, without producing it
        (one network pass). After priming the ``history`` frames before frame
        s, the state is exactly the one an unchunked run has at s. Give it the
        frame's brush size: the state lives at the network's size."""
        s, _ = brush.check_brush(brush_size, 0.0)
        if isinstance(weights, StyleRegions):
            self._regions_frame(image, vector, weights, colour_space, premultiplied, 1.0, False, s, 0.0,
                                produce=False)
            return
        self._leave_regions()
        rgb, net_rgb, mix, motion = self._prepare(image, vector, weights, colour_space, premultiplied, s)
        own, stats = self._record(net_rgb, mix)
        self._advance(own, stats, motion, mix)

    def step(self, image: np.ndarray, vector: np.ndarray,
             weights: WeightsLike | np.ndarray | StyleRegions | None = None,
             *, colour_space: colour.ColourSpace = "srgb", premultiplied: bool = False,
             strength: float = 1.0, preserve_color: bool = False,
             brush_size: float = 1.0, detail: float = 0.0) -> np.ndarray:
        """Stylize the next frame; same arguments and result as Stylizer.stylize
        plus this frame's Vector pass. With a brush size the network, the
        motion and the blending all work at the network's size (the Vector
        pass scaled to it); the blended result is brought back to full size
        like Stylizer.stylize's. A brush size that changes the network's size
        from the previous frame's starts afresh, like a cut.

        With StyleRegions every layer (the base mix, each region) keeps a
        temporal state of its own over the whole frame, and each frame's own
        coverage blends them: the regions follow the objects because each
        frame's map comes from that frame's render."""
        opts = check_options(colour_space=colour_space, premultiplied=premultiplied,
                             strength=strength, preserve_color=preserve_color)
        strength, preserve_color = opts.strength, opts.preserve_color
        s, d = brush.check_brush(brush_size, detail)
        if isinstance(weights, StyleRegions):
            out = self._regions_frame(image, vector, weights, colour_space, premultiplied, float(strength),
                                      preserve_color, s, d, produce=True)
            assert out is not None
            return out
        self._leave_regions()
        rgb, net_rgb, mix, motion = self._prepare(image, vector, weights, colour_space, premultiplied, s)
        display = self._display(net_rgb, mix, motion).cpu().numpy()
        if s != 1.0 or d > 0.0:
            display = self.stylizer.restore_brush(display, net_rgb, rgb, s, d)
        return Stylizer.from_network_rgb(image, rgb, display, colour_space, premultiplied,
                                          float(strength), preserve_color)

    def _display(self, net_rgb: np.ndarray, mix: torch.Tensor, motion: Motion) -> torch.Tensor:
        """This frame at the network's size, blended with the earlier ones (device tensor)."""
        own, stats = self._record(net_rgb, mix)
        prev_stats = self.state.stats if self.state is not None else None
        prev_mix = self.state.frames[0].mix if self.state is not None else None
        earlier = self._advance(own, stats, motion, mix)
        self.last_valid_fraction = float(earlier[0].valid.float().mean()) if earlier else 0.0
        if earlier:
            return self._combine(net_rgb, mix, own, stats, prev_stats, prev_mix, earlier)
        return own

    # -- style regions -------------------------------------------------------------
    def _leave_regions(self) -> None:
        """A frame without regions after frames with them starts afresh (and vice versa)."""
        if self.layer_states is not None:
            self.layer_states = None
            self.state = None

    def _regions_frame(self, image: np.ndarray, vector: np.ndarray, regions: StyleRegions,
                       colour_space: colour.ColourSpace, premultiplied: bool, strength: float,
                       preserve_color: bool, s: float, d: float, produce: bool) -> np.ndarray | None:
        # Layers are keyed by their place (0 = base, k = region k) so a keyed mix
        # change inside a region is treated like one in a whole frame.
        layers = regions.layers(image.shape[:2], self.style_names, strength, merge=False)
        coverage, mixes = layers.coverage, layers.mixes
        if self.layer_states is None:
            self.layer_states = {}
            self.state = None
        rgb, net_rgb, _, motion = self._prepare(image, vector, mixes[0], colour_space, premultiplied, s)
        size = net_rgb.shape[:2]
        net_cov = brush.resize_weights(coverage, size) if tuple(size) != coverage.shape[:2] else coverage
        net_cov = torch.from_numpy(np.ascontiguousarray(
            net_cov / np.maximum(net_cov.sum(axis=2, keepdims=True), 1e-12))).to(self.stylizer.placement.device)
        out: torch.Tensor | None = None
        states: dict[int, TemporalState | None] = {}
        fractions = []
        for k, (key, m) in enumerate(zip(layers.keys, mixes, strict=True)):
            self.state = self.layer_states.get(key)
            mix = self.stylizer.mix_tensor(m, size)
            y = self._display(net_rgb, mix, motion)
            fractions.append(self.last_valid_fraction)
            states[key] = self.state
            part = net_cov[..., k:k + 1] * y
            out = part if out is None else out + part
        # Layers absent from this frame lose their history (it would be stale when they return).
        self.layer_states = states
        self.state = None
        self.last_valid_fraction = min(fractions) if fractions else 0.0
        if not produce:
            return None
        assert out is not None
        display = out.cpu().numpy()
        if s != 1.0 or d > 0.0:
            display = self.stylizer.restore_brush(display, net_rgb, rgb, s, d)
        return Stylizer.from_network_rgb(image, rgb, display, colour_space, premultiplied,
                                          layers.strength_map(), preserve_color)

    # -- internals -------------------------------------------------------------------
    def _prepare(self, image: np.ndarray, vector: np.ndarray, weights, colour_space, premultiplied,
                 brush_size: float = 1.0):
        """(full-size display RGB, the network's input, mix, motion at the network's size)."""
        from ..inference.stylizer import check_stylizer_input

        check_options(colour_space=colour_space, premultiplied=premultiplied)
        check_stylizer_input(image)
        h, w = image.shape[:2]
        size = self.stylizer.network_size((h, w), brush_size)
        if self.stylizer.needs_tiling(size, None):
            raise ImageError(f"temporal mode stylizes whole frames; {size[1]} x {size[0]} is above the "
                             "untiled limit, render smaller, raise the brush size or use per-frame mode")
        motion = motion_from_vector_pass(vector, self.vector_rows)
        if motion.shape != (h, w):
            raise ImageError(f"the Vector pass is {motion.shape[1]} x {motion.shape[0]} "
                             f"but the frame is {w} x {h}")
        rgb = Stylizer.to_network_rgb(image, colour_space, premultiplied)
        net_rgb = self.stylizer.to_network_size(rgb, size)
        mix = self.stylizer.mix_tensor(self.stylizer.weights_at(weights, (h, w), size), size)
        return rgb, net_rgb, mix, scale_motion(motion, size)

    def _record(self, rgb: np.ndarray, mix: torch.Tensor) -> tuple[torch.Tensor, NormStats]:
        """Per-frame stylization, recording its instance-norm statistics."""
        stats = NormStats()
        y = self._run_network(rgb, mix, stats)
        return y, NormStats(stats.recorded)

    def _run_network(self, rgb: np.ndarray, mix: torch.Tensor, stats: NormStats) -> torch.Tensor:
        """H x W x 3 float32 display RGB, left on the stylizer's device."""
        return self.stylizer.network_pass(rgb, mix, stats)

    def _device_motion(self, motion: Motion) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.stylizer.placement.device
        return (torch.from_numpy(motion.to_prev).to(device), torch.from_numpy(motion.to_next).to(device))

    def _advance(self, own: torch.Tensor, stats: NormStats, motion: Motion,
                 mix: torch.Tensor) -> list[HistoryFrame]:
        """Move the state on to this frame; return the earlier frames warped
        into it (empty at the start, after a cut or a change of size)."""
        earlier: list[HistoryFrame] = []
        prev = self.state
        to_prev, to_next = self._device_motion(motion)
        if prev is not None and prev.frames[0].stylized.shape == own.shape:
            visible = _visible_t(to_prev, prev.to_next, exact=False)
            if float(visible.float().mean()) >= CUT_FRACTION:
                for old in prev.frames[:self.history]:
                    warped, _ = _warp_t(old.stylized, to_prev, exact=False, mode=STYLIZED_WARP)
                    # An older frame is usable where it was valid one frame ago and still visible now.
                    still, _ = _warp_t(old.valid.float(), to_prev, exact=False)
                    earlier.append(HistoryFrame(warped, visible & (still > 0.999), old.mix))
        mine = HistoryFrame(own, torch.ones(own.shape[:2], dtype=torch.bool, device=own.device), mix)
        self.state = TemporalState([mine, *earlier][:self.history], stats, to_next)
        return earlier

    def _combine(self, rgb, mix, own, stats, prev_stats: NormStats | None,
                 prev_mix: torch.Tensor | None, earlier: list[HistoryFrame]) -> torch.Tensor:
        styl = own
        stats_blend = self.stats_blend * (mix_similarity(mix, prev_mix) if prev_mix is not None else 1.0)
        if stats_blend > 0.0 and prev_stats is not None and not _same_stats(stats, prev_stats):
            # Replaying the recorded statistics reproduces ``own`` exactly, so
            # the second pass is only needed when the statistics moved.
            styl = self._run_network(rgb, mix, blend_stats(stats, prev_stats, stats_blend))
        out = styl
        for j, old in enumerate(earlier):
            # A running mean: frame t-1-j gets 1/(j+2) of what came before, so at
            # blend 0.5 all frames of the window weigh the same.
            w = self.blend * 2.0 / (j + 2) * mix_similarity(mix, old.mix)
            if w <= 0.0:
                continue
            weight = (w * old.valid.float())[..., None]
            if self.preserve_contrast:
                out = _contrast_preserving_blend_t(out, old.stylized, weight, CONTRAST_RADIUS)
            else:
                out = out + weight * (old.stylized - out)
        return out

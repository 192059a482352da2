"""Style regions: parts of one picture painted with different style mixes.

    regions = StyleRegions(coverage, [{"the_scream": 1.0}], base={"starry_night": 1.0})
    out = stylizer.stylize(image, regions)

``coverage`` is H x W x K, one soft mask per region (0-1, summing to at most 1
per pixel); what the masks leave uncovered gets the ``base`` mix. Each region
should look as if the whole frame had been stylized with its mix.

Two ways to get there (docs/regions.md has the measurements):
- "composite" (default): one network pass per distinct mix over the whole
  frame, the results blended by the masks. Exact: the instance-norm statistics
  of each pass are those of a single-mix run, so inside a region the pixels
  are those of its single-mix result; at the edges the masks' soft coverage
  blends two finished pictures, so there is no seam and no halo.
- "blend": one pass with a per-pixel weight map (each pixel's scale and shift
  mixed). Cheaper for many regions, but every norm's statistics are pooled
  over the whole frame, so each region's look leaks into the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import WeightsError
from .mixing import WeightsLike, normalize_weights

RegionMethod = Literal["composite", "blend"]
METHODS: tuple[str, ...] = ("composite", "blend")
# Soft masks (antialiasing, Cryptomatte) may overshoot 1 by rounding; more is an overlap.
_OVERLAP_TOLERANCE = 1e-3


@dataclass
class RegionLayers:
    """StyleRegions checked against one image: layer 0 is the base wherever it is used."""

    coverage: np.ndarray      # H x W x L float32, each pixel sums to 1
    mixes: list[np.ndarray]   # L normalized mixes
    strengths: np.ndarray     # L strengths
    keys: list[int]           # each layer's place: 0 = base, k = the k-th region

    def strength_map(self) -> float | np.ndarray:
        """The strength: one number when every layer has the same, else H x W x 1 per pixel."""
        if float(self.strengths.min()) == float(self.strengths.max()):
            return float(self.strengths[0])
        return (self.coverage * self.strengths).sum(axis=2, keepdims=True).astype(np.float32)

    def weight_map(self, coverage: np.ndarray | None = None) -> np.ndarray:
        """The H x W x N per-pixel weight map these layers mean (the "blend" method)."""
        c = self.coverage if coverage is None else coverage
        return np.einsum("hwl,ln->hwn", c, np.stack(self.mixes).astype(np.float32)).astype(np.float32)


@dataclass
class StyleRegions:
    """Soft masks with a style mix (and strength) each; the rest gets ``base``."""

    coverage: np.ndarray                      # H x W x K float, 0-1
    mixes: Sequence[WeightsLike]              # K mixes, as Stylizer weights
    base: WeightsLike | None = None           # the mix where the masks leave room
    strengths: Sequence[float] | None = None  # K region strengths (default 1)
    method: RegionMethod = "composite"
    names: Sequence[str] = field(default_factory=tuple)  # for messages: "mask.png", "index 3"

    def layers(self, shape: tuple[int, int], style_names: Sequence[str], base_strength: float,
               merge: bool = True) -> RegionLayers:
        """The checked layers for an image of ``shape``, the base first. Layers
        no pixel uses are dropped; with ``merge``, layers with the same mix
        and strength become one (one network pass each)."""
        if self.method not in METHODS:
            raise WeightsError(f"unknown region method {self.method!r}; use one of {', '.join(METHODS)}")
        cov = np.asarray(self.coverage)
        if cov.ndim == 2:
            cov = cov[..., None]
        k = len(self.mixes)
        if cov.ndim != 3 or cov.shape[2] != k:
            raise WeightsError(f"style regions: coverage must be H x W x {k} (one mask per mix), "
                               f"got shape {cov.shape}")
        if k == 0:
            raise WeightsError("style regions: no region given")
        if cov.shape[:2] != tuple(shape):
            raise WeightsError(f"the style map is {cov.shape[1]} x {cov.shape[0]} but the image is "
                               f"{shape[1]} x {shape[0]}")
        if not np.issubdtype(cov.dtype, np.floating) and not np.issubdtype(cov.dtype, np.integer):
            raise WeightsError(f"style regions: coverage must hold numbers, got dtype {cov.dtype}")
        cov = cov.astype(np.float32, copy=False)
        lo, hi = float(cov.min()), float(cov.max())  # NaN propagates; infinity fails the range
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise WeightsError("style regions: the coverage holds NaN or infinite values")
        if lo < 0 or hi > 1 + _OVERLAP_TOLERANCE:
            raise WeightsError("style regions: coverage must be between 0 and 1")
        planes = [np.minimum(cov[..., i], 1.0) for i in range(k)]
        total = planes[0] if k == 1 else np.sum(cov, axis=2)
        if k > 1 and float(total.max()) > 1 + _OVERLAP_TOLERANCE:
            over = total > 1 + _OVERLAP_TOLERANCE
            raise WeightsError(f"style regions overlap: {int(over.sum())} pixel(s) are covered more than "
                               f"once (masks summing to up to {float(total.max()):.3g}); each pixel's "
                               "masks must sum to at most 1")
        strengths = [1.0] * k if self.strengths is None else [float(s) for s in self.strengths]
        if len(strengths) != k:
            raise WeightsError(f"style regions: {len(strengths)} strength(s) for {k} region(s)")
        if not all(np.isfinite(s) and 0.0 <= s <= 1.0 for s in strengths):
            raise WeightsError(f"style regions: strengths must be between 0 and 1, got {strengths}")
        mixes = [self._mix(m, i, style_names) for i, m in enumerate(self.mixes)]
        rest = np.clip(1.0 - total, 0.0, 1.0)
        if self.base is None and float(rest.max()) > _OVERLAP_TOLERANCE:
            if len(style_names) != 1:
                raise WeightsError("style regions leave part of the image uncovered and no base mix was "
                                   "given for it")
        base = (normalize_weights(self.base, style_names) if self.base is not None
                else np.ones(len(style_names)))
        all_cov = [rest, *planes]
        all_mix, all_strength = [base, *mixes], [float(base_strength), *strengths]
        # Merge layers with one mix and strength; drop empty ones.
        keep_cov: list[np.ndarray] = []
        keep_mix: list[np.ndarray] = []
        keep_strength: list[float] = []
        keys: list[int] = []
        for i, c in enumerate(all_cov):
            if float(c.max()) <= 0.0:
                continue
            for j, (m, s) in enumerate(zip(keep_mix, keep_strength, strict=True)):
                if merge and s == all_strength[i] and np.allclose(m, all_mix[i], atol=1e-9):
                    keep_cov[j] = keep_cov[j] + c
                    break
            else:
                keep_cov.append(c)
                keep_mix.append(all_mix[i])
                keep_strength.append(all_strength[i])
                keys.append(i)
        coverage = np.stack(keep_cov, axis=2)
        if hi > 1.0 or (k > 1 and float(total.max()) > 1.0):
            # Rounding overshoot within the tolerance: make each pixel's layers sum to 1.
            coverage /= np.maximum(coverage.sum(axis=2, keepdims=True), 1e-12)
        return RegionLayers(coverage, keep_mix, np.asarray(keep_strength, dtype=np.float32), keys)

    def _mix(self, mix: WeightsLike, i: int, style_names: Sequence[str]) -> np.ndarray:
        try:
            return normalize_weights(mix, style_names)
        except WeightsError as e:
            label = self.names[i] if i < len(self.names) else f"region {i + 1}"
            raise WeightsError(f"style map {label}: {e}") from None

    def weight_map(self, shape: tuple[int, int], style_names: Sequence[str]) -> np.ndarray:
        """The H x W x N per-pixel weight map of the "blend" method."""
        return self.layers(shape, style_names, 1.0).weight_map()


def is_regions(weights: object) -> bool:
    return isinstance(weights, StyleRegions)


# -- building regions from files (CLI) --------------------------------------------------

def mask_from_pixels(pixels: np.ndarray) -> np.ndarray:
    """A 0-1 mask from a painted image: white is inside. An image with a
    (non-opaque) alpha channel uses the alpha."""
    p = np.asarray(pixels, dtype=np.float32)
    if p.ndim == 2:
        return np.clip(p, 0.0, 1.0)
    if p.shape[2] == 4 and float(p[..., 3].min()) < 1.0:
        return np.clip(p[..., 3], 0.0, 1.0)
    return np.clip(p[..., :3].mean(axis=2), 0.0, 1.0)


def parse_mix_text(text: str) -> dict[str, float]:
    """``name=0.7,other=0.3`` or a bare ``name`` (weight 1)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, w = part.rpartition("=")
        if not sep:
            out[part] = 1.0
            continue
        try:
            out[name.strip()] = float(w)
        except ValueError:
            raise WeightsError(f"bad mix {text!r}: weight {w!r} is not a number") from None
    if not out:
        raise WeightsError(f"bad mix {text!r}: expected NAME=WEIGHT[,NAME=WEIGHT...]")
    return out


def read_index_mapping(path: str | os.PathLike) -> dict[int, dict[str, float]]:
    """A JSON object from index (as text) to a mix: ``{"1": {"the_scream": 1}, "2": "great_wave"}``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise WeightsError(f"cannot read the style map mapping {p}: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"the style map mapping {p} is not valid JSON: {e}") from None
    if not isinstance(data, Mapping) or not data:
        raise WeightsError(f"the style map mapping {p} must be a JSON object from index to mix")
    out: dict[int, dict[str, float]] = {}
    for key, mix in data.items():
        try:
            index = int(key)
        except ValueError:
            raise WeightsError(f"the style map mapping {p}: key {key!r} is not a whole number") from None
        if index < 0:
            raise WeightsError(f"the style map mapping {p}: index {index} is negative")
        if isinstance(mix, str):
            out[index] = parse_mix_text(mix)
        elif isinstance(mix, Mapping) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in mix.values()):
            out[index] = {str(k): float(v) for k, v in mix.items()}
        else:
            raise WeightsError(f"the style map mapping {p}: index {index} must map to an object "
                               f"name -> weight or to 'name=w,...', got {mix!r:.60}")
    return out


def regions_from_index(index: np.ndarray, mapping: Mapping[int, WeightsLike], base: WeightsLike | None,
                       label: str = "index image") -> StyleRegions:
    """One region per mapped index value; unmapped values (0 included, unless
    mapped) get ``base``. Index images have hard edges."""
    idx = np.asarray(index)
    if idx.ndim == 3:
        idx = idx[..., 0]
    present = set(np.unique(idx).tolist())
    used = [i for i in sorted(mapping) if i in present]
    if not used:
        raise WeightsError(f"{label}: none of the mapped indices ({', '.join(map(str, sorted(mapping)))}) "
                           f"occur in the image (it holds {', '.join(map(str, sorted(present)[:8]))})")
    coverage = np.stack([(idx == i).astype(np.float32) for i in used], axis=2)
    return StyleRegions(coverage, [mapping[i] for i in used], base=base,
                        names=tuple(f"{label} index {i}" for i in used))

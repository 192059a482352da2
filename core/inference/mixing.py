"""Style weights: validation and normalization, global or per pixel.

Every path from a user (CLI flag, Blender slider, API call) to the network
goes through here, so a mix means the same thing everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import WeightsError

WeightsLike = Mapping[str, float] | Sequence[float] | np.ndarray


def normalize_weights(weights: WeightsLike, style_names: Sequence[str]) -> np.ndarray:
    """Return float64 weights of length N that are finite, >= 0 and sum to 1.

    ``weights`` is a mapping of style name to weight (styles left out weigh
    0) or a sequence with one weight per style, in the model's order.
    """
    n = len(style_names)
    if isinstance(weights, Mapping):
        unknown = [k for k in weights if k not in style_names]
        if unknown:
            close = [m for k in unknown for m in difflib.get_close_matches(k, list(style_names), n=1)]
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise WeightsError(f"unknown style(s) {', '.join(map(repr, unknown))}{hint}; "
                               f"the model has: {', '.join(style_names)}")
        vec = np.zeros(n, dtype=np.float64)
        for name, w in weights.items():
            vec[style_names.index(name)] = _as_float(w, name)
    elif isinstance(weights, (str, bytes)) or not isinstance(weights, (Sequence, np.ndarray)):
        raise WeightsError(
            f"weights must be a mapping of style name to weight or a list with one weight per "
            f"style, got {type(weights).__name__} {weights!r:.60}")
    else:
        try:
            vec = np.asarray(weights, dtype=np.float64).reshape(-1) if len(weights) else np.zeros(0)
        except (TypeError, ValueError):
            raise WeightsError(f"weights must be numbers, got {weights!r:.60}") from None
        if vec.shape[0] != n:
            raise WeightsError(f"got {vec.shape[0]} weights for a model with {n} styles")
    return _check_and_normalize(vec)


def normalize_weight_map(weight_map: np.ndarray, num_styles: int) -> np.ndarray:
    """Validate an H x W x N per-pixel weight map and normalize each pixel to sum 1."""
    m = np.asarray(weight_map)
    if m.ndim != 3 or m.shape[2] != num_styles:
        raise WeightsError(f"a weight map must be H x W x {num_styles}, got shape {m.shape}")
    if m.shape[0] == 0 or m.shape[1] == 0:
        raise WeightsError("the weight map is empty")
    m = m.astype(np.float32)
    if not np.isfinite(m).all():
        raise WeightsError("the weight map holds NaN or infinite values")
    if (m < 0).any():
        raise WeightsError("the weight map holds negative weights")
    total = m.sum(axis=2, keepdims=True)
    if (total <= 0).any():
        bad = int((total[..., 0] <= 0).sum())
        raise WeightsError(f"{bad} pixel(s) of the weight map have all weights zero")
    return m / total


def parse_style_args(items: Sequence[str], style_names: Sequence[str] = ()) -> dict[str, float]:
    """Parse CLI ``NAME=WEIGHT`` (or bare ``NAME``, weight 1) into a mapping.

    Style names may themselves hold '=': an item that is exactly one of
    ``style_names`` is that style at weight 1; otherwise the split is at the
    last '=', and only when what follows it is a number.
    """
    out: dict[str, float] = {}
    for item in items:
        if item in style_names:
            out[item] = 1.0
            continue
        head, sep, tail = item.rpartition("=")
        if sep:
            try:
                weight = float(tail)
            except ValueError:
                known = ", and no style has that name" if style_names else ""
                raise WeightsError(f"bad --style {item!r}: weight {tail!r} is not a number{known}") from None
            name = head.strip()
        else:
            name, weight = item.strip(), 1.0
        if not name:
            raise WeightsError(f"bad --style {item!r}: expected NAME=WEIGHT")
        out[name] = weight
    return out


def _as_float(w: object, name: str) -> float:
    try:
        return float(w)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise WeightsError(f"weight for style {name!r} is not a number: {w!r}") from None


def _check_and_normalize(vec: np.ndarray) -> np.ndarray:
    if vec.size == 0:
        raise WeightsError("no style weights given")
    if not np.isfinite(vec).all():
        raise WeightsError("style weights must be finite (got NaN or infinity)")
    if (vec < 0).any():
        raise WeightsError("style weights must be non-negative")
    total = vec.sum()
    if total <= 0:
        raise WeightsError("style weights sum to zero: give at least one style a positive weight")
    return vec / total

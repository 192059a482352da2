"""Validation of the Stylizer's keyword arguments, shared by every public entry point.

Python callers (scripts, the worker, the CLI) can pass anything: a string for a
strength, a float for a batch size. Each check turns a wrong type or an
out-of-range value into an ArgumentError that names the argument, instead of a
raw TypeError from deep inside numpy or torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

from ..errors import ArgumentError
from . import colour


@dataclass(frozen=True)
class StylizeOptions:
    """The checked, normalized options of one stylize call."""

    colour_space: colour.ColourSpace
    premultiplied: bool
    strength: float
    preserve_color: bool
    tile: int | None
    batch_size: int


def _real(name: str, value: object) -> float:
    # bool is an int subclass: strength=True is almost surely a mistake
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ArgumentError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ArgumentError(f"{name} must be finite, got {value!r}")
    return v


def _int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ArgumentError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    if int(value) < minimum:
        raise ArgumentError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ArgumentError(f"{name} must be True or False, got {value!r}")
    return value


def check_options(*, colour_space: object = "srgb", premultiplied: object = False,
                  strength: object = 1.0, preserve_color: object = False, tile: object = None,
                  batch_size: object = 1,
                  min_tile: int = 64) -> StylizeOptions:
    """Check every keyword argument of Stylizer.stylize / stylize_batch."""
    if colour_space not in colour.COLOUR_SPACES:
        raise ArgumentError(f"unknown colour space {colour_space!r}; use one of {colour.COLOUR_SPACES}")
    s = _real("strength", strength)
    if not 0.0 <= s <= 1.0:
        raise ArgumentError(f"strength must be between 0 and 1, got {strength}")
    t = None if tile is None else _int("tile", tile, 0)
    if t is not None and 0 < t < min_tile:
        raise ArgumentError(f"tile size must be 0 (never tile) or at least {min_tile} pixels, got {t}")
    return StylizeOptions(
        colour_space=colour_space,  # type: ignore[arg-type]  # checked above
        premultiplied=_bool("premultiplied", premultiplied),
        strength=s,
        preserve_color=_bool("preserve_color", preserve_color),
        tile=t,
        batch_size=_int("batch_size", batch_size, 1),
    )

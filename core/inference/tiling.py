"""Tile geometry for images too large to stylize in one pass.

The tiles partition the (padded) image: every pixel belongs to exactly one,
so statistics pooled over the tiles are whole-image statistics, and each
output pixel is written once. A tile is computed with a halo of neighbouring
pixels around it, as wide as the receptive field of the layers it runs
through (tiled_pass.py), so no tile edge sees padding where the image has
content: tiles need no overlap and no blending.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


# Tile edges sit on multiples of the network's total downsampling, so every
# layer's grid lines up with the whole image's.
ALIGN = 4


def _cuts(length: int, tile: int) -> list[int]:
    """Edges of about equal pieces of ``length`` (a multiple of ALIGN), none much
    longer than ``tile``, on multiples of ALIGN."""
    n = max(1, -(-length // tile))
    return [i * length // n // ALIGN * ALIGN for i in range(n)] + [length]


def partition(height: int, width: int, tile: int) -> list[Tile]:
    """Tiles of at most about ``tile`` pixels a side (up to ALIGN - 1 more) that
    partition ``height`` x ``width``, row by row; both must be multiples of ALIGN."""
    if tile < ALIGN:
        raise ValueError(f"tile size must be at least {ALIGN}, got {tile}")
    if height % ALIGN or width % ALIGN:
        raise ValueError(f"the padded image must be a multiple of {ALIGN}, got {width} x {height}")
    ys, xs = _cuts(height, tile), _cuts(width, tile)
    return [Tile(y0, y1, x0, x1) for y0, y1 in zip(ys[:-1], ys[1:], strict=True)
            for x0, x1 in zip(xs[:-1], xs[1:], strict=True)]


def expand(t: Tile, halo: int, height: int, width: int, align: int = ALIGN) -> Tile:
    """``t`` with ``halo`` more pixels on every side, clipped to the image; ``halo``
    must be a multiple of ``align`` so the crop stays on the grid."""
    if halo % align:
        raise ValueError(f"halo {halo} is not a multiple of {align}")
    return Tile(max(0, t.y0 - halo), min(height, t.y1 + halo), max(0, t.x0 - halo), min(width, t.x1 + halo))

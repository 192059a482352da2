"""Seamless tiling for images too large to stylize in one pass.

Two things make naive tiling seam: instance-norm statistics that differ per
tile (each tile gets its own colour cast), and the borders of each tile
seeing padding instead of neighbours. The stylizer fixes the first by
streaming the network layer by layer over all tiles and pooling each layer's
statistics over the regions the tiles own (``owned_regions``: a partition of
the image, so the pooled sums are whole-image sums); this module fixes the
second with overlapping tiles blended by feathered weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


# Tile starts sit on multiples of the network's total downsampling, so every
# layer's grid lines up with the whole image's.
ALIGN = 4


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread, aligned tile starts: neighbours overlap by at least
    ``overlap`` and no tile mostly repeats the previous one (a fixed stride
    can leave the last tile overlapping its neighbour by up to a whole tile)."""
    if length <= tile:
        return [0]
    step = tile - overlap - ALIGN  # aligning moves a start down by up to ALIGN - 1
    n = math.ceil((length - tile) / step) + 1
    starts = [int(i * (length - tile) / (n - 1)) // ALIGN * ALIGN for i in range(n - 1)]
    starts.append(length - tile)  # the last tile ends flush with the image
    return sorted(set(starts))


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Cover the image with tiles of at most ``tile`` pixels a side overlapping by ``overlap``."""
    if tile <= 0:
        raise ValueError(f"tile size must be positive, got {tile}")
    if not 0 <= overlap < tile - ALIGN:
        raise ValueError(f"overlap must be in [0, tile - {ALIGN}), got {overlap} for tile {tile}")
    return [
        Tile(y, min(y + tile, height), x, min(x + tile, width))
        for y in _starts(height, tile, overlap)
        for x in _starts(width, tile, overlap)
    ]


def _ramp(length: int, overlap: int, fade_start: bool, fade_end: bool) -> np.ndarray:
    w = np.ones(length, dtype=np.float32)
    n = min(overlap, length)
    if n > 0:
        ramp = (np.arange(n, dtype=np.float32) + 0.5) / n
        if fade_start:
            w[:n] = np.minimum(w[:n], ramp)
        if fade_end:
            w[length - n:] = np.minimum(w[length - n:], ramp[::-1])
    return w


def feather(tile: Tile, height: int, width: int, overlap: int) -> np.ndarray:
    """Blend weights for one tile: a linear ramp over the overlap on every
    edge that borders another tile, flat 1 on edges at the image border."""
    h, w = tile.shape
    wy = _ramp(h, overlap, tile.y0 > 0, tile.y1 < height)
    wx = _ramp(w, overlap, tile.x0 > 0, tile.x1 < width)
    return wy[:, None] * wx[None, :]


def _cuts(spans: list[tuple[int, int]], length: int) -> list[int]:
    """Boundaries between consecutive spans, at the middle of each overlap,
    rounded down to ALIGN; the first is 0, the last ``length``."""
    mids = [(b[0] + a[1]) // 2 // ALIGN * ALIGN for a, b in zip(spans[:-1], spans[1:], strict=True)]
    return [0, *mids, length]


def owned_regions(tiles: list[Tile], height: int, width: int) -> list[Tile]:
    """The part of the image each tile owns: a partition of ``height`` x ``width``
    (which may exceed the tiles' extent, e.g. the image padded to ALIGN), cut in
    the middle of each overlap on multiples of ALIGN, so that sums over the owned
    regions are whole-image sums at every layer's resolution (1, 1/2, 1/4)."""
    rows = sorted({(t.y0, t.y1) for t in tiles})
    cols = sorted({(t.x0, t.x1) for t in tiles})
    ry, rx = _cuts(rows, height), _cuts(cols, width)
    iy = {span: i for i, span in enumerate(rows)}
    ix = {span: i for i, span in enumerate(cols)}
    owned = []
    for t in tiles:
        i, j = iy[(t.y0, t.y1)], ix[(t.x0, t.x1)]
        owned.append(Tile(ry[i], ry[i + 1], rx[j], rx[j + 1]))
    return owned

"""How a picture is padded before the network sees it, the same for every path.

Two reasons to pad:
- The network downsamples twice, so its input must be a multiple of 4 (and at
  least 16 pixels: its 9x9 convolutions reflect-pad by 4).
- Trained on crops, the network paints a frame along a picture's edges: lines
  a few pixels wide, lighter or darker than the picture next to them. Run on
  the picture mirrored out by ``BORDER_MARGIN`` pixels on every side and
  cropped back, the edges are painted like the inside (docs/performance.md,
  "Border margin", has the before and after).

The padding is described as index maps (padded position -> source position),
so the untiled pass (one gather) and the tiled pass (a gather per tile) pick
exactly the same pixels.
"""

from __future__ import annotations

import numpy as np
import torch

MULTIPLE = 4
MIN_SIDE = 16
# A multiple of MULTIPLE, so the picture keeps its place on the network's downsampling
# grid (a 2- or 6-pixel margin shifts every stroke by half a grid cell).
BORDER_MARGIN = 8


def padded_length(n: int, margin: int) -> int:
    """The padded side for a source side ``n``: the margin on both ends, then up to the multiple."""
    return max(MIN_SIDE, -(-(n + 2 * margin) // MULTIPLE) * MULTIPLE)


def padded_indices(n: int, margin: int, mirror: bool = True) -> np.ndarray:
    """Source index of each padded position along one side (int64, ``padded_length(n)`` long).

    The margin mirrors the picture without repeating the edge pixel (torch's
    "reflect"), and the padding up to the multiple, at the end only, mirrors
    that. A side too short to mirror, or ``mirror=False`` (weight maps),
    repeats the edge pixel instead."""
    if n < 1:
        raise ValueError(f"a side of {n} pixels cannot be padded")
    inner = n + 2 * margin
    j = np.arange(padded_length(n, margin), dtype=np.int64)
    if mirror and margin < n and len(j) - inner < inner:
        return _reflect(_reflect(j, inner) - margin, n)
    return np.clip(j - margin, 0, n - 1)


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    """Indices up to n - 1 beyond either end of [0, n) mirrored back into it."""
    i = np.abs(i)
    return np.where(i >= n, 2 * (n - 1) - i, i)


class Padding:
    """The padding of one picture size: index maps for rows and columns, and the crop back."""

    def __init__(self, h: int, w: int, margin: int = BORDER_MARGIN):
        self.size, self.margin = (h, w), margin
        self.rows, self.cols = padded_indices(h, margin), padded_indices(w, margin)
        self.shape = (len(self.rows), len(self.cols))
        self._flat = (padded_indices(h, margin, mirror=False), padded_indices(w, margin, mirror=False))

    def image(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, H, W), mirrored; channels-last in memory."""
        return _gather(x, self.rows, self.cols, self.margin)

    def weights(self, m: torch.Tensor) -> torch.Tensor:
        """A per-pixel mix (B, N, h, w) -> (B, N, H, W), edge pixels repeated."""
        return _gather(m, *self._flat, self.margin)

    def crop(self, y: torch.Tensor) -> torch.Tensor:
        """The network's (B, C, H, W) output -> the picture's (B, C, h, w)."""
        (h, w), m = self.size, self.margin
        return y[..., m:m + h, m:m + w]


def _gather(x: torch.Tensor, rows: np.ndarray, cols: np.ndarray, margin: int) -> torch.Tensor:
    """``x`` padded by the index maps. Inside the margin both maps are the identity, so
    the picture is copied as one block and only the border strips are gathered (a
    gather of every pixel cost 3.5 ms at 512 x 512 and 61 ms at 1080p, one thread)."""
    b, c, h, w = x.shape
    m = margin
    src = x.permute(0, 2, 3, 1)  # (B, h, w, C): a view of a channels-last tensor
    out = src.new_empty((b, len(rows), len(cols), c))
    out[:, m:m + h, m:m + w] = src
    side = np.r_[0:m, m + w:len(cols)]
    if len(side):
        out[:, m:m + h, _index(side, x)] = src[:, :, _index(cols[side], x)]
    ends = np.r_[0:m, m + h:len(rows)]
    if len(ends):  # whole padded rows, copied from the rows already filled
        out[:, _index(ends, x)] = out[:, _index(rows[ends] + m, x)]
    return out.permute(0, 3, 1, 2)


def _index(i: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(i, dtype=np.int64)).to(like.device)

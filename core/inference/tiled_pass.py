"""The network over an image too large for one pass, exactly, in memory bounded by the tile.

Instance norm needs every layer's statistics over the whole image, so a tile
can't simply run on its own. Here the network runs in three stages, each
sweeping the tiles once per norm layer and pooling that layer's statistics
over the part of the image each tile owns (a partition, so the pooled sums
are whole-image sums):

1. Down: each tile of the input, with a halo as wide as the downsampling
   layers' receptive field, runs through them; earlier layers are recomputed
   on every sweep, so no full- or half-resolution activation outlives its
   tile. The last layer's output is stored whole, at a quarter of the
   resolution.
2. Residual blocks, at quarter resolution on two whole-image buffers (the
   block's input and its hidden layer): each convolution reads its tile plus
   a one-pixel halo from a buffer and writes the tile's own part.
3. Up: tiles of the quarter-resolution result, with the halo the upsampling
   and output layers need, run to the output, and each tile's own part is
   written straight into the output array.

Every halo covers the receptive field it stands for, so each output pixel is
computed from exactly the inputs an untiled pass uses: the result equals an
untiled pass up to float rounding, and tiles need no overlap or blending.
Memory: the input and output arrays, the two quarter-resolution buffers
(kept on the CPU, so GPU memory is bounded by the tile) and one tile's
activations. The price is recomputation: 1.5x the CPU time of an untiled
pass at 8K, 2.5-3x at 1080p and 4K (docs/performance.md has the measurements).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..errors import NetworkOutputError
from ..model.fast_network import FastStyleNetwork, exact_stats
from ..model.network import ConvNorm, NormStats, StyleNetwork
from .padding import BORDER_MARGIN, MULTIPLE, Padding
from .tiling import Tile, expand, partition

# The network downsamples twice: tile edges sit on multiples of 4 (padding.MULTIPLE) so
# every layer's grid lines up with the whole image's.


def down_halo(first_kernel: int) -> int:
    """Input pixels a quarter-resolution pixel of the downsampling stage depends on,
    beyond its own 4 x 4 block: the first kernel's reach plus one pixel of each 3x3
    stride-2 layer (at full and half resolution), rounded up to the grid."""
    reach = first_kernel // 2 + 1 + 2
    return -(-reach // MULTIPLE) * MULTIPLE


def up_halo(last_kernel: int) -> int:
    """Quarter-resolution pixels an output pixel depends on beyond its own block: one
    half-resolution pixel (2 output pixels) for the first upsampling layer, one for the
    second, and the output kernel's reach, in quarter-resolution pixels."""
    reach = 2 + 1 + last_kernel // 2
    return -(-reach // MULTIPLE)


class PooledStats:
    """Per-channel count, mean and sum of squared deviations pooled over regions,
    combined exactly (Chan, Golub and LeVeque's parallel algorithm) in float64 on
    the CPU, so a partition of an image gives the whole image's statistics."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        if x.shape[-2] * x.shape[-1] == 0:
            return
        n, mean, m2 = exact_stats(x)
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count = total

    def mean_var(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, variance), each (1, C, 1, 1) float32, as NormStats replays them."""
        assert self.mean is not None and self.m2 is not None, "no region was added"
        mean = self.mean[None, :, None, None]
        var = (self.m2 / self.count)[None, :, None, None]
        mean, var = mean.to(device, torch.float32), var.to(device, torch.float32)
        if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(var).all())):
            # Overflowing activations: the tiled pass would return a flat, finite but wrong picture.
            raise NetworkOutputError(
                "the network's activations overflowed to infinity (tiled pass): the model's weights "
                "are damaged or overflow (try fp32 precision, or re-download or retrain the model)")
        return mean, var


def _part(t: torch.Tensor, region: Tile, crop: Tile, scale: float) -> torch.Tensor:
    """The part of ``t`` (a crop's activation at 1/scale resolution) that covers ``region``."""
    return t[..., int((region.y0 - crop.y0) / scale):int((region.y1 - crop.y0) / scale),
             int((region.x0 - crop.x0) / scale):int((region.x1 - crop.x0) / scale)]


def _quarter(t: Tile) -> Tile:
    return Tile(t.y0 // 4, t.y1 // 4, t.x0 // 4, t.x1 // 4)


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive indices as a slice (a view, not a copy: most tiles are inside)."""
    if len(index) and index[-1] - index[0] == len(index) - 1 and bool((np.diff(index) == 1).all()):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


class TiledPass:
    """Runs ``network`` on one (h, w, 3) image tile by tile (module docstring)."""

    def __init__(self, network: StyleNetwork, fast: FastStyleNetwork | None,
                 device: torch.device, dtype: torch.dtype, channels_last: bool):
        self.net, self.fast = network, fast
        self.device, self.dtype, self.channels_last = device, dtype, channels_last
        self.layers: list[ConvNorm] = [*network.down, *(m for b in network.residual for m in (b.a, b.b)),
                                       *network.up, network.out]
        # The fast twin's convolutions where there is one: the same math (upsampling by
        # phases), faster, and rounding like an untiled fast pass.
        self.convs: list[Callable[[torch.Tensor], torch.Tensor]] = (
            [f.conv for f in fast._layers] if fast is not None else [m.pre_norm for m in self.layers])
        arch = network.arch
        self.down_halo = down_halo(arch.first_kernel)
        self.up_halo = up_halo(arch.last_kernel)

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray, mix: torch.Tensor, tile: int, margin: int = BORDER_MARGIN) -> np.ndarray:
        """``rgb``: (h, w, 3) float32; ``mix``: (1, N) or a (1, N, h, w) map; ``tile``:
        the largest tile side in pixels; ``margin``: the border margin (padding.py).
        Returns the (h, w, 3) float32 output."""
        h, w = rgb.shape[:2]
        # The untiled pass pads the whole image like this (padding.py); each crop gathers its part.
        self._pad = pad = Padding(h, w, margin)
        hp, wp = pad.shape
        self._rgb, self._size = rgb, (h, w)
        if mix.dim() == 4:  # a per-pixel map is image-sized: kept in CPU memory, cut per tile
            mix = pad.weights(mix.to("cpu"))
        self._mix = mix
        self._affine = self.fast.affine(mix) if self.fast is not None and mix.dim() == 2 else None
        tiles = partition(hp, wp, tile)
        q = self._down(tiles, hp, wp)
        self._residual(q, tiles)
        out = np.empty((h, w, 3), dtype=np.float32)
        self._up(q, tiles, hp, wp, out)
        self._rgb = self._mix = None  # type: ignore[assignment]
        return out

    # -- pieces ---------------------------------------------------------------------
    def _input(self, crop: Tile) -> torch.Tensor:
        """The padded input image's ``crop`` as a (1, 3, h, w) tensor on the device."""
        rows = _as_slice(self._pad.rows[crop.y0:crop.y1])
        cols = _as_slice(self._pad.cols[crop.x0:crop.x1])
        a = np.ascontiguousarray(self._rgb[rows][:, cols].transpose(2, 0, 1))
        a = torch.from_numpy(a)[None].to(self.device, self.dtype)
        return a.contiguous(memory_format=torch.channels_last) if self.channels_last else a

    def _buffer(self, channels: int, hq: int, wq: int) -> torch.Tensor:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return torch.empty((1, channels, hq, wq), dtype=self.dtype, device="cpu", memory_format=fmt)

    def _load(self, buf: torch.Tensor, crop_q: Tile) -> torch.Tensor:
        t = buf[..., crop_q.y0:crop_q.y1, crop_q.x0:crop_q.x1].to(self.device)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t.contiguous()

    def _norm(self, k: int, pre: torch.Tensor, region: Tile, whole: tuple[torch.Tensor, torch.Tensor],
              act: str, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Layer k's norm over ``pre`` (which covers full-resolution ``region``) with the
        whole image's statistics, then ``act`` ("relu", "none" or "sigmoid")."""
        stats = NormStats([whole])
        stats.start()
        if self._affine is not None and self.fast is not None:
            y = self.fast._norm(pre, self._affine[k], stats, relu=act == "relu", residual=residual)
        else:
            m = self._mix
            mix = m[..., region.y0:region.y1, region.x0:region.x1].to(pre.device) if m.dim() == 4 else m
            y = self.layers[k].norm(pre, mix, stats)
            if residual is not None:
                y = y.add_(residual)
            if act == "relu":
                y = y.relu_()
        return y.sigmoid_() if act == "sigmoid" else y

    def _chain(self, a: torch.Tensor, ks: list[int], crop: Tile,
               wholes: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Run layers ``ks`` (conv, norm, ReLU) over ``a``, the activation of ``crop``
        (at any resolution an activation covers the same full-resolution region)."""
        for k, whole in zip(ks, wholes, strict=True):
            a = self._norm(k, self.convs[k](a), crop, whole, "relu")
        return a

    # -- stage 1: down ------------------------------------------------------------------
    def _down(self, tiles: list[Tile], hp: int, wp: int) -> torch.Tensor:
        crops = [expand(t, self.down_halo, hp, wp) for t in tiles]
        scales = [1.0, 2.0, 4.0]
        wholes: list[tuple[torch.Tensor, torch.Tensor]] = []
        q = self._buffer(self.net.arch.channels[2], hp // 4, wp // 4)
        for k in range(3):
            pooled = PooledStats()
            for t, c in zip(tiles, crops, strict=True):
                a = self._chain(self._input(c), list(range(k)), c, wholes)
                p = _part(self.convs[k](a), t, c, scales[k])
                del a
                pooled.add(p)
                if k == 2:  # stored before its norm: the statistics are known only after the sweep
                    qt = _quarter(t)
                    q[..., qt.y0:qt.y1, qt.x0:qt.x1] = p.to("cpu")
            wholes.append(pooled.mean_var(self.device))
        for t in tiles:
            self._apply_norm(q, t, 2, wholes[2], "relu")
        return q

    def _apply_norm(self, buf: torch.Tensor, t: Tile, k: int, whole: tuple[torch.Tensor, torch.Tensor],
                    act: str, residual: torch.Tensor | None = None) -> None:
        qt = _quarter(t)
        view = buf[..., qt.y0:qt.y1, qt.x0:qt.x1]
        y = self._norm(k, self._load(buf, qt), t, whole, act, residual)
        view.copy_(y)

    # -- stage 2: residual blocks -------------------------------------------------------
    def _residual(self, x: torch.Tensor, tiles: list[Tile]) -> None:
        hq, wq = x.shape[-2:]
        quarters = [_quarter(t) for t in tiles]
        crops = [expand(qt, 1, hq, wq, align=1) for qt in quarters]
        hidden = self._buffer(x.shape[1], hq, wq)
        for block in range(len(self.net.residual)):
            ka, kb = 3 + 2 * block, 4 + 2 * block
            # a: convolve into the hidden buffer, pool, then normalize it in place.
            pooled = PooledStats()
            for qt, c in zip(quarters, crops, strict=True):
                p = _part(self.convs[ka](self._load(x, c)), qt, c, 1.0)
                pooled.add(p)
                hidden[..., qt.y0:qt.y1, qt.x0:qt.x1] = p.to("cpu")
            whole_a = pooled.mean_var(self.device)
            for t in tiles:
                self._apply_norm(hidden, t, ka, whole_a, "relu")
            # b: one sweep for the statistics, one to add the normalized result to x in
            # place (b reads only the hidden buffer, so x can be overwritten tile by tile).
            pooled = PooledStats()
            for qt, c in zip(quarters, crops, strict=True):
                pooled.add(_part(self.convs[kb](self._load(hidden, c)), qt, c, 1.0))
            whole_b = pooled.mean_var(self.device)
            for t, qt, c in zip(tiles, quarters, crops, strict=True):
                p = _part(self.convs[kb](self._load(hidden, c)), qt, c, 1.0)
                y = self._norm(kb, p, t, whole_b, "none", residual=self._load(x, qt))
                x[..., qt.y0:qt.y1, qt.x0:qt.x1] = y.to("cpu")
        del hidden

    # -- stage 3: up ----------------------------------------------------------------------
    def _up(self, q: torch.Tensor, tiles: list[Tile], hp: int, wp: int, out: np.ndarray) -> None:
        n = len(self.layers)
        ks = [n - 3, n - 2, n - 1]  # two upsampling layers and the output layer
        scales = [2.0, 1.0, 1.0]  # their outputs' resolution (full = 1)
        hq, wq = q.shape[-2:]
        crops_q = [expand(_quarter(t), self.up_halo, hq, wq, align=1) for t in tiles]
        crops = [Tile(c.y0 * 4, c.y1 * 4, c.x0 * 4, c.x1 * 4) for c in crops_q]
        wholes: list[tuple[torch.Tensor, torch.Tensor]] = []
        h, w = self._size
        m = self._pad.margin
        for i in range(4):  # three sweeps for the statistics, then the output
            pooled = PooledStats()
            for t, c, cq in zip(tiles, crops, crops_q, strict=True):
                a = self._chain(self._load(q, cq), ks[:min(i, 2)], c, wholes[:2])
                if i < 3:
                    pooled.add(_part(self.convs[ks[i]](a), t, c, scales[i]))
                    continue
                y = self._norm(ks[2], self.convs[ks[2]](a), c, wholes[2], "sigmoid")
                # The tile's own part, less the border margin, lands in the picture.
                y0, y1, x0, x1 = max(t.y0, m), min(t.y1, m + h), max(t.x0, m), min(t.x1, m + w)
                if y1 > y0 and x1 > x0:
                    y = _part(y, t, c, 1.0)[..., y0 - t.y0:y1 - t.y0, x0 - t.x0:x1 - t.x0]
                    out[y0 - m:y1 - m, x0 - m:x1 - m] = y[0].float().permute(1, 2, 0).cpu().numpy()
            if i < 3:
                wholes.append(pooled.mean_var(self.device))

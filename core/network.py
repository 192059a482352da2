"""The multi-style transformer network of Dumoulin, Shlens and Kudlur (2017).

A feed-forward image transformer whose every instance normalization is
*conditional*: each style owns a scale (gamma) and shift (beta) per channel.
Mixing styles mixes those tables, which is what makes interpolation cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5


@dataclass(frozen=True)
class Architecture:
    """Hyperparameters stored in every model file, so loading can rebuild the net."""

    num_styles: int
    channels: tuple[int, int, int] = (32, 64, 128)
    num_residual: int = 5
    first_kernel: int = 9
    last_kernel: int = 9

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        return cls(
            num_styles=int(d["num_styles"]),
            channels=tuple(int(c) for c in d["channels"]),  # type: ignore[arg-type]
            num_residual=int(d["num_residual"]),
            first_kernel=int(d["first_kernel"]),
            last_kernel=int(d["last_kernel"]),
        )


class NormStats:
    """Instance-norm statistics recorded on one pass and replayed on another.

    Tiles of a large image must share the statistics of the whole image, or
    each tile gets its own colour cast and seams appear. The stylizer records
    them on a (possibly downscaled) whole-image pass and replays them per tile.
    """

    def __init__(self, recorded: list[tuple[torch.Tensor, torch.Tensor]] | None = None):
        self.recorded: list[tuple[torch.Tensor, torch.Tensor]] = recorded if recorded is not None else []
        self._replay: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.replaying = recorded is not None

    def start(self) -> None:
        if self.replaying:
            self._replay = iter(self.recorded)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.replaying:
            assert self._replay is not None, "call start() before a replay pass"
            mean, var = next(self._replay)
            return mean.to(x.dtype), var.to(x.dtype)
        var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, unbiased=False)
        self.recorded.append((mean, var))
        return mean.to(x.dtype), var.to(x.dtype)


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose affine parameters are a convex mix of per-style rows.

    ``mix`` is either (B, N) global weights or (B, N, H, W) per-pixel weight
    maps; maps are block-averaged to this layer's resolution ('area'), which
    keeps them convex and makes a crop aligned to 4 pixels see the same
    weights as the whole image (tiling relies on that).
    """

    def __init__(self, num_styles: int, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, mix: torch.Tensor, stats: NormStats | None = None) -> torch.Tensor:
        if stats is None:
            # Statistics in float32: bf16/fp16 sums over a whole image lose too much precision.
            var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, unbiased=False)
            var, mean = var.to(x.dtype), mean.to(x.dtype)
        else:
            mean, var = stats(x)
        x = (x - mean) * torch.rsqrt(var + EPS)
        gamma, beta = self.gamma.to(x.dtype), self.beta.to(x.dtype)
        mix = mix.to(x.dtype)
        if mix.dim() == 2:
            g = (mix @ gamma)[:, :, None, None]
            b = (mix @ beta)[:, :, None, None]
        else:
            if mix.shape[-2:] != x.shape[-2:]:
                mix = F.interpolate(mix, size=x.shape[-2:], mode="area")
            g = torch.einsum("bnhw,nc->bchw", mix, gamma)
            b = torch.einsum("bnhw,nc->bchw", mix, beta)
        return torch.addcmul(b, x, g)


class ConvNorm(nn.Module):
    """Reflection-padded convolution followed by conditional instance norm."""

    def __init__(self, num_styles: int, cin: int, cout: int, kernel: int, stride: int = 1,
                 upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.pad = kernel // 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride)
        self.norm = ConditionalInstanceNorm2d(num_styles, cout)

    def pre_norm(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample, pad and convolve: everything before the norm (streamed tiling runs it alone)."""
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return self.conv(x)

    def forward(self, x: torch.Tensor, mix: torch.Tensor, stats: NormStats | None) -> torch.Tensor:
        return self.norm(self.pre_norm(x), mix, stats)


class ResidualBlock(nn.Module):
    def __init__(self, num_styles: int, channels: int):
        super().__init__()
        self.a = ConvNorm(num_styles, channels, channels, 3)
        self.b = ConvNorm(num_styles, channels, channels, 3)

    def forward(self, x: torch.Tensor, mix: torch.Tensor, stats: NormStats | None) -> torch.Tensor:
        return x + self.b(F.relu(self.a(x, mix, stats)), mix, stats)


class StyleNetwork(nn.Module):
    """conv9/32 - conv3s2/64 - conv3s2/128 - 5 residual - up/64 - up/32 - conv9/3 - sigmoid.

    Input and output are display-referred RGB in [0, 1], shape (B, 3, H, W),
    with H and W multiples of 4 (the stylizer pads to that).
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        n, (c1, c2, c3) = arch.num_styles, arch.channels
        self.down = nn.ModuleList([
            ConvNorm(n, 3, c1, arch.first_kernel),
            ConvNorm(n, c1, c2, 3, stride=2),
            ConvNorm(n, c2, c3, 3, stride=2),
        ])
        self.residual = nn.ModuleList([ResidualBlock(n, c3) for _ in range(arch.num_residual)])
        self.up = nn.ModuleList([
            ConvNorm(n, c3, c2, 3, upsample=True),
            ConvNorm(n, c2, c1, 3, upsample=True),
        ])
        self.out = ConvNorm(n, c1, 3, arch.last_kernel)

    @property
    def num_styles(self) -> int:
        return self.arch.num_styles

    def norms(self) -> list[ConditionalInstanceNorm2d]:
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d)]

    def forward(self, x: torch.Tensor, mix: torch.Tensor, stats: NormStats | None = None) -> torch.Tensor:
        if stats is not None:
            stats.start()
        for layer in self.down:
            x = F.relu(layer(x, mix, stats))
        for block in self.residual:
            x = block(x, mix, stats)
        for layer in self.up:
            x = F.relu(layer(x, mix, stats))
        return torch.sigmoid(self.out(x, mix, stats))

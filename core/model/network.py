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
    """Hyperparameters stored in every model file, so loading can rebuild the net.

    ``channels`` are the widths of the three downsampling stages (full, 1/2 and
    1/4 resolution; the residual blocks run at the last). ``up_channels`` are
    the widths of the two upsampling stages (1/2 and full resolution); they
    default to the mirror of the downsampling ones, which is what model files
    written before the field existed mean.
    """

    num_styles: int
    channels: tuple[int, int, int] = (32, 64, 128)
    num_residual: int = 5
    first_kernel: int = 9
    last_kernel: int = 9
    up_channels: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        up = self.up_channels if self.up_channels is not None else (self.channels[1], self.channels[0])
        object.__setattr__(self, "up_channels", tuple(int(c) for c in up))

    @property
    def up(self) -> tuple[int, int]:
        assert self.up_channels is not None  # filled in by __post_init__
        return self.up_channels  # type: ignore[return-value]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["up_channels"] = list(self.up)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        up = d.get("up_channels")
        return cls(
            num_styles=int(d["num_styles"]),
            channels=tuple(int(c) for c in d["channels"]),  # type: ignore[arg-type]
            num_residual=int(d["num_residual"]),
            first_kernel=int(d["first_kernel"]),
            last_kernel=int(d["last_kernel"]),
            up_channels=None if up is None else tuple(int(c) for c in up),  # type: ignore[arg-type]
        )

    @classmethod
    def preset(cls, name: str, num_styles: int) -> Architecture:
        """A named architecture (``full`` or ``light``) for ``num_styles`` styles."""
        try:
            fields = ARCHITECTURE_PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown architecture {name!r}; choose one of "
                             f"{', '.join(ARCHITECTURE_PRESETS)}") from None
        return cls(num_styles=num_styles, **fields)  # type: ignore[arg-type]

    @property
    def parameter_count(self) -> int:
        with torch.device("meta"):  # shapes only: no memory, whatever the size
            return sum(p.numel() for p in StyleNetwork(self).parameters())


# full: Dumoulin et al.'s network. light: as thin as the seed system's
# published 26-style model (docs/performance.md has the speed and quality
# measurements behind these widths).
ARCHITECTURE_PRESETS: dict[str, dict] = {
    "full": {"channels": (32, 64, 128), "num_residual": 5, "up_channels": (64, 32)},
    "light": {"channels": (16, 32, 32), "num_residual": 6, "up_channels": (16, 8)},
}


class NormStats:
    """Instance-norm statistics recorded on one pass and replayed on another.

    Tiles of a large image must share the statistics of the whole image, or
    each tile gets its own colour cast and seams appear. The stylizer records
    them exactly over the whole image (each tile adds the sums of the region it
    owns) and replays them per tile.
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
    """conv9/c1 - conv3s2/c2 - conv3s2/c3 - residual blocks - up/u1 - up/u2 - conv9/3 - sigmoid.

    The full architecture is 32, 64, 128, 5 blocks, 64, 32 (Dumoulin et al.).

    Input and output are display-referred RGB in [0, 1], shape (B, 3, H, W),
    with H and W multiples of 4 (the stylizer pads to that).
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        n, (c1, c2, c3), (u1, u2) = arch.num_styles, arch.channels, arch.up
        self.down = nn.ModuleList([
            ConvNorm(n, 3, c1, arch.first_kernel),
            ConvNorm(n, c1, c2, 3, stride=2),
            ConvNorm(n, c2, c3, 3, stride=2),
        ])
        self.residual = nn.ModuleList([ResidualBlock(n, c3) for _ in range(arch.num_residual)])
        self.up = nn.ModuleList([
            ConvNorm(n, c3, u1, 3, upsample=True),
            ConvNorm(n, u1, u2, 3, upsample=True),
        ])
        self.out = ConvNorm(n, u2, 3, arch.last_kernel)

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

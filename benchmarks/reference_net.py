"""The plain reference network the inference benchmark measures against.

This is the straightforward transformer network of the PyTorch
fast-neural-style example (Johnson et al. layout, as used by Dumoulin et al.),
written the obvious way: reflection pad + conv, ``nn.InstanceNorm2d`` with
affine parameters, ReLU, residual blocks, nearest upsample + conv, a 9x9 output
conv and a sigmoid. Eager float32, no tricks. It has exactly the layer sizes of
``pastiche_core.model.network.StyleNetwork`` so both do the same arithmetic, and
``from_style_network`` loads one style mix of a StyleNetwork into it, so the
benchmark can also check that both produce the same picture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pastiche_core.model.network import Architecture, StyleNetwork


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class UpsampleConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(self.pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.in1(self.conv1(x)))
        out = self.in2(self.conv2(out))
        return out + residual


class ReferenceNet(nn.Module):
    """conv9/c1 - conv3s2/c2 - conv3s2/c3 - residual blocks - up/u1 - up/u2 - conv9/3 - sigmoid."""

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 128), num_residual: int = 5,
                 first_kernel: int = 9, last_kernel: int = 9, up_channels: tuple[int, int] | None = None):
        super().__init__()
        c1, c2, c3 = channels
        u1, u2 = up_channels or (c2, c1)
        self.conv1 = ConvLayer(3, c1, first_kernel)
        self.in1 = nn.InstanceNorm2d(c1, affine=True)
        self.conv2 = ConvLayer(c1, c2, 3, stride=2)
        self.in2 = nn.InstanceNorm2d(c2, affine=True)
        self.conv3 = ConvLayer(c2, c3, 3, stride=2)
        self.in3 = nn.InstanceNorm2d(c3, affine=True)
        self.res = nn.Sequential(*[ResidualBlock(c3) for _ in range(num_residual)])
        self.deconv1 = UpsampleConvLayer(c3, u1, 3)
        self.in4 = nn.InstanceNorm2d(u1, affine=True)
        self.deconv2 = UpsampleConvLayer(u1, u2, 3)
        self.in5 = nn.InstanceNorm2d(u2, affine=True)
        self.deconv3 = ConvLayer(u2, 3, last_kernel)
        self.in6 = nn.InstanceNorm2d(3, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return torch.sigmoid(self.in6(self.deconv3(y)))


def _copy(conv: nn.Conv2d, norm: nn.InstanceNorm2d, src, mix: torch.Tensor) -> None:
    conv.weight.copy_(src.conv.weight)
    conv.bias.copy_(src.conv.bias)
    norm.weight.copy_(mix @ src.norm.gamma)
    norm.bias.copy_(mix @ src.norm.beta)


@torch.no_grad()
def from_style_network(net: StyleNetwork, mix: torch.Tensor) -> ReferenceNet:
    """A ReferenceNet computing ``net(x, mix)`` for one global mix (N,) of styles."""
    a: Architecture = net.arch
    ref = ReferenceNet(a.channels, a.num_residual, a.first_kernel, a.last_kernel, a.up)
    mix = mix.to(torch.float32)
    _copy(ref.conv1.conv, ref.in1, net.down[0], mix)
    _copy(ref.conv2.conv, ref.in2, net.down[1], mix)
    _copy(ref.conv3.conv, ref.in3, net.down[2], mix)
    for block, src in zip(ref.res, net.residual, strict=True):
        _copy(block.conv1.conv, block.in1, src.a, mix)
        _copy(block.conv2.conv, block.in2, src.b, mix)
    _copy(ref.deconv1.conv, ref.in4, net.up[0], mix)
    _copy(ref.deconv2.conv, ref.in5, net.up[1], mix)
    _copy(ref.deconv3.conv, ref.in6, net.out, mix)
    return ref.eval()

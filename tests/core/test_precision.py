"""Half precision is accurate enough: fp16/bf16 against float32, emulated on CPU.

GPUs run the network in float16 and channels-last (devices.placement). No GPU
is needed here: the same code path (FastStyleNetwork in half precision with
the batch-wide "generic" norm used for GPU batches, and the per-sample one)
runs on the CPU, whose fp16/bf16 kernels round like the GPU's storage format.
Tolerances are on the [0, 1] output: fp16 within 3/255 at worst and 0.5/255 on
average; bf16 (8-bit mantissa) within 20/255 and 3/255.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from pastiche_core import Architecture, StyleNetwork, Stylizer
from pastiche_core.inference.devices import placement
from pastiche_core.model.fast_network import FastStyleNetwork

from .conftest import make_model, smooth_image

TOLERANCE = {torch.float16: (3 / 255, 0.5 / 255), torch.bfloat16: (20 / 255, 3 / 255)}
MIX = torch.tensor([[0.6, 0.1, 0.3]])


@pytest.fixture(scope="module")
def deep_net():
    # All 5 residual blocks, so rounding errors accumulate through the full depth.
    torch.manual_seed(7)
    net = StyleNetwork(Architecture(num_styles=3, channels=(8, 16, 32), num_residual=5))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for n in net.norms():
            n.gamma.copy_(1.0 + 0.5 * torch.randn(n.gamma.shape, generator=g))
            n.beta.copy_(0.5 * torch.randn(n.beta.shape, generator=g))
    return net.eval().requires_grad_(False)


def _image():
    return torch.from_numpy(smooth_image(48, 64).transpose(2, 0, 1).copy())[None]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("norm_kernel", ["batchnorm", "generic"])
def test_half_precision_fast_network_is_close_to_float32(deep_net, dtype, norm_kernel):
    x = _image()
    with torch.no_grad():
        want = deep_net(x, MIX)
        half_net = copy.deepcopy(deep_net).to(dtype)
        plain_half = half_net(x.to(dtype), MIX).float()
    got = FastStyleNetwork(half_net, channels_last=True, norm_kernel=norm_kernel)(x, MIX)
    assert got.dtype == dtype
    err = (got.float() - want).abs()
    worst, mean = TOLERANCE[dtype]
    assert err.max().item() < worst and err.mean().item() < mean
    # The optimized path is no less accurate than the plain network in the same precision.
    plain_err = (plain_half - want).abs()
    assert err.mean().item() < 1.5 * plain_err.mean().item() + 1e-4


def test_half_precision_keeps_large_activations_finite(deep_net):
    # Statistics are taken in float32: an fp16 variance above 65504 would be inf.
    x = _image()
    half_net = copy.deepcopy(deep_net)
    conv = half_net.down[0].conv
    with torch.no_grad():
        first = conv(F.pad(x, (4,) * 4, mode="reflect"))
        conv.weight.mul_(600.0 / first.std().item())  # first activations with std ~600
        conv.bias.mul_(600.0 / first.std().item())
        half_net.to(torch.float16)
        big = conv(F.pad(x.half(), (4,) * 4, mode="reflect"))
    assert torch.isfinite(big).all() and torch.isinf(torch.var_mean(big, dim=(2, 3))[0]).any()
    for kernel in ("batchnorm", "generic"):
        got = FastStyleNetwork(half_net, norm_kernel=kernel)(x, MIX)
        assert torch.isfinite(got).all()


def test_stylizer_in_half_precision_on_cpu_matches_float32():
    img = smooth_image(40, 52)
    w = {"ink": 0.5, "ochre": 0.5}
    full = Stylizer(make_model(), device="cpu", precision="fp32").stylize(img, w)
    half = Stylizer(make_model(), device="cpu", precision="fp16")
    assert half.placement.dtype == torch.float16
    err = abs(half.stylize(img, w) - full)
    assert err.max() < 3 / 255 and err.mean() < 0.5 / 255


def test_automatic_precision_is_float32_on_cpu_and_half_on_gpus():
    assert placement("cpu").dtype == torch.float32
    if torch.cuda.is_available():
        p = placement("cuda")
        assert p.dtype == torch.float16 and p.channels_last


def test_one_precision_parser_for_inference_and_training():
    import torch

    from pastiche_core.errors import PasticheError
    from pastiche_core.inference.devices import parse_precision, placement
    from pastiche_core.training.train import training_placement

    assert parse_precision("half") == parse_precision("fp16") == torch.float16
    assert parse_precision("bfloat16") == torch.bfloat16 and parse_precision("auto") is None
    assert placement("cpu", "bf16").dtype == torch.bfloat16
    assert training_placement("cpu", "float32").amp_dtype is None
    assert training_placement("cpu", "bf16").amp_dtype == torch.bfloat16
    for bad in ("fp8", "", None):
        with pytest.raises(PasticheError, match="unknown precision"):
            placement("cpu", bad)
        with pytest.raises(PasticheError, match="unknown precision"):
            training_placement("cpu", bad)


def test_cpu_training_uses_bf16_only_where_the_cpu_multiplies_it_natively(monkeypatch):
    import torch

    from pastiche_core.inference import devices
    from pastiche_core.training import train

    zen3 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
    zen4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
    sapphire = "flags\t: avx512f amx_tile amx_bf16\n"
    assert not devices.cpu_has_native_bf16(zen3)
    assert devices.cpu_has_native_bf16(zen4) and devices.cpu_has_native_bf16(sapphire)
    assert not devices.cpu_has_native_bf16("no flags line at all")

    monkeypatch.setattr(train, "cpu_has_native_bf16", lambda: True)
    auto = train.training_placement("cpu", "auto")
    assert auto.amp_dtype == torch.bfloat16 and auto.channels_last  # NHWC: oneDNN's fast bf16 layout
    assert train.training_placement("cpu", "fp32").amp_dtype is None  # asked for: kept
    assert not train.training_placement("cpu", "fp32").channels_last
    assert not train.training_placement("cpu", "auto", channels_last=False).channels_last

    monkeypatch.setattr(train, "cpu_has_native_bf16", lambda: False)
    plain = train.training_placement("cpu", "auto")
    assert plain.amp_dtype is None and not plain.channels_last

"""The inference-optimized network computes exactly what the plain StyleNetwork does."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pastiche_core import Stylizer
from pastiche_core.model.fast_network import FastStyleNetwork, _interleave_phases, phase_weights
from pastiche_core.model.network import NormStats

from .conftest import make_model, smooth_image

MIX = torch.tensor([[0.5, 0.2, 0.3]])


def _plain_upsample_conv(x, w, b):
    x = F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), w, b)


def _phase_upsample_conv(x, w, b):
    pw, pb = phase_weights(w, b)
    z = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), pw, pb)
    return _interleave_phases(z, w.shape[0])


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 4, 1, 6), (1, 2, 8, 8)])
def test_phase_upsampling_equals_upsample_reflect_pad_conv(shape):
    g = torch.Generator().manual_seed(shape[2] * 10 + shape[3])
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    w = torch.randn(5, shape[1], 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    want = _plain_upsample_conv(x, w, b)
    got = _phase_upsample_conv(x, w, b)
    assert got.shape == want.shape == (shape[0], 5, 2 * shape[2], 2 * shape[3])
    # An exact identity: only float64 summation-order rounding differs.
    assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_phase_weights_fold_every_tap_once_and_keep_dtype():
    w = torch.randn(4, 3, 3, 3)
    pw, pb = phase_weights(w, torch.zeros(4))
    assert pw.shape == (16, 3, 2, 2) and pw.dtype == torch.float32 and pb.shape == (16,)
    # Each phase's taps sum to the whole kernel's sum (every tap folded exactly once).
    for p in range(4):
        assert torch.allclose(pw[4 * p:4 * (p + 1)].sum(dim=(2, 3)), w.sum(dim=(2, 3)), atol=1e-5)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("norm_kernel", ["batchnorm", "generic"])
def test_fast_network_matches_plain_network(channels_last, norm_kernel):
    net = make_model().network.eval().requires_grad_(False)
    fast = FastStyleNetwork(net, channels_last=channels_last, norm_kernel=norm_kernel)
    x = torch.rand(2, 3, 28, 36, generator=torch.Generator().manual_seed(3))
    mix = torch.tensor([[0.5, 0.2, 0.3], [0.0, 1.0, 0.0]])  # a different mix per sample
    with torch.no_grad():
        want = net(x, mix)
    got = fast(x, mix)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert (got - want).abs().max().item() < 2e-5
    # The two samples really are styled differently (the test could fail).
    assert (got[0] - got[1]).abs().mean().item() > 1e-3


def test_fast_network_matches_full_size_architecture():
    net = make_model(tiny=False).network.eval().requires_grad_(False)
    x = torch.rand(1, 3, 32, 24, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = net(x, MIX)
    assert (FastStyleNetwork(net)(x, MIX) - want).abs().max().item() < 2e-5


def test_norm_stats_recorded_by_either_network_replay_in_the_other():
    net = make_model().network.eval().requires_grad_(False)
    fast = FastStyleNetwork(net)
    whole = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    tile = whole[..., 8:24, 4:28]
    with torch.no_grad():
        plain_rec, fast_rec = NormStats(), NormStats()
        net(whole, MIX, plain_rec)
        fast(whole, MIX, fast_rec)
        assert len(plain_rec.recorded) == len(fast_rec.recorded) == 3 + 2 * 1 + 2 + 1
        for (m1, v1), (m2, v2) in zip(plain_rec.recorded, fast_rec.recorded, strict=True):
            assert m1.shape == m2.shape and v1.shape == v2.shape
            assert torch.allclose(m1, m2, rtol=1e-4, atol=1e-5) and torch.allclose(v1, v2, rtol=1e-4, atol=1e-5)
        want = net(tile, MIX, NormStats(plain_rec.recorded))
        # Replaying whole-image statistics differs from the tile's own (else the test proves nothing).
        assert (want - net(tile, MIX)).abs().max().item() > 1e-3
        for rec in (plain_rec, fast_rec):
            for kernel in ("batchnorm", "generic"):
                got = FastStyleNetwork(net, norm_kernel=kernel)(tile, MIX, NormStats(rec.recorded))
                assert (got - want).abs().max().item() < 2e-5
        # A replaying NormStats can be reused pass after pass.
        replay = NormStats(fast_rec.recorded)
        assert torch.equal(fast(tile, MIX, replay), fast(tile, MIX, replay))


def test_affine_parameters_are_cached_per_mix():
    net = make_model().network.eval().requires_grad_(False)
    fast = FastStyleNetwork(net)
    a = fast.affine(MIX)
    assert fast.affine(MIX.clone()) is a
    b = fast.affine(torch.tensor([[0.2, 0.5, 0.3]]))
    assert b is not a and not torch.allclose(a[0][0], b[0][0])
    gamma0 = MIX @ net.down[0].norm.gamma
    assert torch.allclose(a[0][0], gamma0)
    for i in range(40):  # bounded: old mixes are evicted
        fast.affine(torch.tensor([[i / 40, 1 - i / 40, 0.0]]))
    assert len(fast._affine_cache) <= 16


def test_fast_network_rejects_weight_maps_and_wrong_style_counts():
    fast = FastStyleNetwork(make_model().network.eval())
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="global mix"):
        fast(x, torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="global mix"):
        fast(x, torch.tensor([[0.5, 0.5]]))


def test_stylizer_uses_the_fast_network_and_matches_the_plain_one():
    model = make_model()
    fast = Stylizer(model, device="cpu")
    assert fast.fast_network is not None
    plain = Stylizer(make_model(), device="cpu")
    plain.fast_network = None
    w = {"ink": 0.7, "cobalt": 0.3}
    img = smooth_image(45, 61)
    np.testing.assert_allclose(fast.stylize(img, w), plain.stylize(img, w), atol=5e-5)
    # Tiled: whole-image statistics recorded and replayed by the fast network.
    big = smooth_image(150, 170, seed=2)
    np.testing.assert_allclose(fast.stylize(big, w, tile=64),
                               plain.stylize(big, w, tile=64), atol=5e-5)
    # Batches of frames.
    frames = [smooth_image(40, 48, seed=s) for s in range(3)]
    for a, b in zip(fast.stylize_batch(frames, w, batch_size=2), plain.stylize_batch(frames, w), strict=True):
        np.testing.assert_allclose(a, b, atol=5e-5)
    # Weight maps take the plain network: same result either way.
    wmap = np.zeros((45, 61, 3), np.float32)
    wmap[:, :30, 0] = 1.0
    wmap[:, 30:, 2] = 1.0
    np.testing.assert_allclose(fast.stylize(img, wmap), plain.stylize(img, wmap), atol=1e-6)


# -- architectures other than the full one, and the fused single-image pass ---------

def _randomized(arch):
    from pastiche_core.model.network import StyleNetwork

    torch.manual_seed(7)
    net = StyleNetwork(arch).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(8)
    for norm in net.norms():
        norm.gamma.copy_(1.0 + 0.5 * torch.randn(norm.gamma.shape, generator=g))
        norm.beta.copy_(0.5 * torch.randn(norm.beta.shape, generator=g))
    return net


@pytest.mark.parametrize("fields", [
    {"preset": "light"},
    {"channels": (8, 12, 20), "num_residual": 2, "up_channels": (6, 5), "first_kernel": 5, "last_kernel": 3},
])
def test_fast_network_matches_thin_architectures(fields):
    from pastiche_core.model.network import Architecture

    arch = (Architecture.preset(fields["preset"], 3) if "preset" in fields
            else Architecture(num_styles=3, **fields))
    net = _randomized(arch)
    assert net.up[1].conv.out_channels == arch.up[1] and net.out.conv.in_channels == arch.up[1]
    x = torch.rand(1, 3, 44, 52, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        want = net(x, MIX)
    fast = FastStyleNetwork(net)
    assert (fast(x, MIX) - want).abs().max().item() < 2e-5
    # Recorded statistics match the plain network's, layer by layer.
    plain_rec, fast_rec = NormStats(), NormStats()
    with torch.no_grad():
        net(x, MIX, plain_rec)
    fast(x, MIX, fast_rec)
    for (m1, v1), (m2, v2) in zip(plain_rec.recorded, fast_rec.recorded, strict=True):
        assert torch.allclose(m1, m2, rtol=1e-4, atol=1e-5) and torch.allclose(v1, v2, rtol=1e-4, atol=1e-5)


def test_light_preset_is_thin():
    from pastiche_core.model.network import Architecture

    light, full = Architecture.preset("light", 20), Architecture.preset("full", 20)
    assert light.parameter_count < 200_000 < 1_000_000 < full.parameter_count
    with pytest.raises(ValueError, match="unknown architecture"):
        Architecture.preset("huge", 2)


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("pad", [1, 4])
def test_border_fill_equals_torch_padding(mode, pad):
    from pastiche_core.model.fast_network import _padded_copy

    x = torch.randn(1, 5, 9, 11, generator=torch.Generator().manual_seed(pad))
    want = F.pad(x, (pad,) * 4, mode=mode)
    got = _padded_copy(x.contiguous(memory_format=torch.channels_last), mode, pad)
    assert torch.equal(got, want)


def test_exact_statistics_of_a_large_offset_activation():
    """One float32 reduction over millions of values drifts; the chunked one must not."""
    from pastiche_core.model.fast_network import _phase_stats, exact_stats

    g = torch.Generator().manual_seed(11)
    y = (torch.randn(1, 4, 1500, 2000, generator=g) * 3 + 20).contiguous(memory_format=torch.channels_last)
    n, mean, m2 = exact_stats(y)
    var_ref, mean_ref = torch.var_mean(y.double(), dim=(0, 2, 3), unbiased=False)
    assert n == 1500 * 2000
    assert torch.allclose(mean, mean_ref, rtol=1e-6, atol=0)
    assert torch.allclose(m2 / n, var_ref, rtol=1e-5, atol=0)
    # Phase statistics equal those of the interleaved image.
    z = (torch.randn(1, 4 * 3, 31, 41, generator=g) * 2 + 5).contiguous(memory_format=torch.channels_last)
    img = _interleave_phases(z.contiguous(), 3).double()
    var_i, mean_i = torch.var_mean(img, dim=(0, 2, 3), unbiased=False)
    mean_p, var_p = _phase_stats(z, 3)
    assert torch.allclose(mean_p, mean_i, rtol=1e-6) and torch.allclose(var_p, var_i, rtol=1e-5)


@pytest.mark.parametrize("kernel", [1, 3, 5, 7, 9])
def test_space_to_depth_output_convolution_equals_the_full_resolution_one(kernel):
    """The output convolution run on the last upsampling layer's phases equals it run
    on the interleaved, reflect-padded full-resolution picture."""
    from pastiche_core.model.fast_network import FastStyleNetwork as Fast
    from pastiche_core.model.fast_network import space_to_depth_weights

    g = torch.Generator().manual_seed(kernel)
    y = torch.rand(1, 5, 24, 30, generator=g, dtype=torch.float64) + 0.5  # positive: the ReLU keeps it
    w = torch.randn(3, 5, kernel, kernel, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    want = F.conv2d(F.pad(y, (kernel // 2,) * 4, mode="reflect"), w, b)
    # The phases as the last upsampling layer leaves them: (1, 4C, H/2 + 1, W/2 + 1).
    z = torch.zeros(1, 20, 13, 16, dtype=torch.float64)
    for a in (0, 1):
        for c in (0, 1):
            z[:, (2 * a + c) * 5:(2 * a + c + 1) * 5, a:a + 12, c:c + 15] = y[:, :, a::2, c::2]
    fake = Fast.__new__(Fast)
    fake._out_half_pad = (kernel // 2 + kernel // 2 % 2) // 2
    one, zero = torch.ones(1, 5, 1, 1, dtype=torch.float64), torch.zeros(1, 5, 1, 1, dtype=torch.float64)
    s = fake._space_to_depth_buffer(z, 5, one, zero)  # identity affine
    ws, bs = space_to_depth_weights(w, b)
    zs = F.conv2d(s.contiguous(), ws, bs)
    assert zs.shape == (1, 12, 12, 15)
    got = torch.empty_like(want)
    for a in (0, 1):
        for c in (0, 1):
            got[:, :, a::2, c::2] = zs[:, (2 * a + c) * 3:(2 * a + c + 1) * 3]
    assert torch.allclose(got, want, atol=1e-10)

"""An inference-only twin of ``StyleNetwork`` for one global style mix.

``FastStyleNetwork(net)`` takes a trained ``StyleNetwork`` (already on its
device and dtype) and computes ``net(x, mix, stats)`` for (B, N) global mixes
with less work. Each change is exact math, so the result equals the plain
network up to float rounding (tests/core/test_fast_network.py,
tests/core/test_exact_paths.py; docs/performance.md has the figures):

* Mixed gamma/beta are per-channel vectors for a global mix, computed once per
  mix (a small cache keyed by the weights), not two matmuls per layer per call.
* Nearest-2x upsample + reflect-pad(1) + conv3x3 is computed as replicate-pad(1)
  at low resolution + one 2x2 convolution with 4x the output channels (one
  group per output phase). The upsampled image's reflect border equals the
  low-res replicate border, so this is exact, does 16/36 of the multiply-adds
  and never builds the 4x larger upsampled tensor.
* Single frames take a fused pass (``_fused``): each layer's normalized output
  is written straight into the next layer's padded buffer, the phases are
  interleaved by that write, and the output convolution runs on the last
  upsampling layer's phases (space-to-depth) at half resolution.
* Statistics are exact: chunked float32 reductions combined in float64.
* Channels-last layout: oneDNN and cuDNN convolutions run faster on NHWC.
* Batches and the tiling stream use ``_norm``: batch-norm kernels per sample on
  the CPU, a batch-wide float32 ``var_mean`` and in-place affine on GPUs.

Per-pixel weight maps are not handled here: the stylizer uses the plain
network for those. ``NormStats`` recording and replay (seamless tiling) are
supported and interchangeable with the plain network's recordings.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F

from .network import EPS, ConvNorm, NormStats, StyleNetwork

# Rows of a 3x3 kernel folded into the 2 low-res taps of each output phase:
# output row 2i uses input rows i-1 (k0) and i (k1 + k2); row 2i+1 uses i
# (k0 + k1) and i+1 (k2). Same for columns.
_PHASE_FOLD = (((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)),
               ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
_MIX_CACHE_SIZE = 16
_FLOAT_PROBE = torch.empty(0, dtype=torch.float32)


def phase_weights(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Cout, Cin, 3, 3) upsample-conv weights -> (4*Cout, Cin, 2, 2) phase weights.

    Output channel group p = 2*a + b holds the phase (row parity a, column
    parity b); applied to the replicate-padded low-res input, phase (a, b) of
    output pixel (i, j) sits at (i + a, j + b) of that group.
    """
    fold = torch.tensor(_PHASE_FOLD, dtype=torch.float64)  # (2 phases, 2 taps, 3 rows)
    w = weight.to(torch.float64)
    phases = [torch.einsum("yk,oikl,xl->oiyx", fold[a], w, fold[b]) for a in (0, 1) for b in (0, 1)]
    return torch.cat(phases).to(weight.dtype), bias.repeat(4)


def space_to_depth_weights(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Cout, Cin, K, K) stride-1 weights with a reflect border of K // 2 -> the same
    convolution on the space-to-depth picture: (4 Cout, 4 Cin, Q + 1, Q + 1) weights,
    where the picture's border is Q = K // 2 rounded up to even (Q / 2 per phase).

    Output group 2a + b is output phase (a, b); input group 2a' + b' is input
    phase (a', b'); full-resolution tap ky of output row 2i + a reads padded row
    2i + a + ky + Q - K // 2, i.e. phase row i + u of parity a' with
    2u + a' = a + ky + Q - K // 2.
    """
    cout, cin, k, _ = weight.shape
    r = k // 2
    q = r + r % 2
    taps = q + 1
    w = weight.to(torch.float64)
    out = torch.zeros(4 * cout, 4 * cin, taps, taps, dtype=torch.float64)
    for a in (0, 1):
        for b in (0, 1):
            for a2 in (0, 1):
                for b2 in (0, 1):
                    for u in range(taps):
                        ky = 2 * u + a2 - a - (q - r)
                        if not 0 <= ky < k:
                            continue
                        for v in range(taps):
                            kx = 2 * v + b2 - b - (q - r)
                            if 0 <= kx < k:
                                out[(2 * a + b) * cout:(2 * a + b + 1) * cout,
                                    (2 * a2 + b2) * cin:(2 * a2 + b2 + 1) * cin, u, v] = w[:, :, ky, kx]
    return out.to(weight.dtype), bias.repeat(4)


class _Layer:
    """One conv + conditional instance norm, with weights ready for inference."""

    def __init__(self, layer: ConvNorm, memory_format: torch.memory_format):
        conv = layer.conv
        self.stride = conv.stride[0]
        self.upsample = layer.upsample
        if self.upsample:
            assert conv.kernel_size == (3, 3), "phase upsampling is derived for 3x3 kernels"
            weight, bias = phase_weights(conv.weight.detach(), conv.bias.detach())
            self.pad = 1
        else:
            weight, bias = conv.weight.detach(), conv.bias.detach()
            self.pad = conv.kernel_size[0] // 2
        self.weight = weight.contiguous(memory_format=memory_format)
        self.bias = bias.contiguous()
        self.gamma_table = layer.norm.gamma.detach()
        self.beta_table = layer.norm.beta.detach()
        self.channels = conv.out_channels

    def conv_prepadded(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution of an input that already carries its padding; for
        upsampling layers the (B, 4C, H+1, W+1) phase groups, not yet interleaved."""
        return F.conv2d(x, self.weight, self.bias, stride=1 if self.upsample else self.stride)

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.pad(x, (1, 1, 1, 1), mode="replicate")
            z = F.conv2d(x, self.weight, self.bias)
            return _interleave_phases(z, self.channels)
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.conv2d(x, self.weight, self.bias, stride=self.stride)


def _interleave_phases(z: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, 4C, H+1, W+1) phase groups -> (B, C, 2H, 2W) image."""
    b, _, h1, w1 = z.shape
    h, w = h1 - 1, w1 - 1
    fmt = torch.channels_last if _is_channels_last(z) else torch.contiguous_format
    out = torch.empty((b, channels, 2 * h, 2 * w), dtype=z.dtype, device=z.device, memory_format=fmt)
    for a in (0, 1):
        for c in (0, 1):
            p = 2 * a + c
            out[:, :, a::2, c::2] = z[:, p * channels:(p + 1) * channels, a:a + h, c:c + w]
    return out


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1


class FastStyleNetwork:
    """Computes ``StyleNetwork(x, mix, stats)`` for global (B, N) mixes, faster.

    Built once per network (the weight transforms do not depend on the mix);
    weights are shared snapshots, so rebuild it if the network is retrained.
    """

    def __init__(self, net: StyleNetwork, *, channels_last: bool | None = None,
                 norm_kernel: str | None = None):
        p = next(net.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.num_styles = net.num_styles
        self.channels_last = (self.device.type in ("cpu", "cuda")) if channels_last is None else channels_last
        # "batchnorm": batch-norm kernels per sample (fast and two-pass accurate on CPU and GPU);
        # "generic": batch-wide var_mean + in-place affine, used for batches on GPUs (no concat copy).
        self.norm_kernel = norm_kernel or "batchnorm"
        if self.norm_kernel not in ("batchnorm", "generic"):
            raise ValueError(f"unknown norm kernel {self.norm_kernel!r}")
        if self.device.type == "cuda":
            # Frames and tiles repeat the same few shapes: let cuDNN pick the fastest kernels once.
            torch.backends.cudnn.benchmark = True
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        with torch.no_grad():
            self.down = [_Layer(m, fmt) for m in net.down]
            self.residual = [(_Layer(b.a, fmt), _Layer(b.b, fmt)) for b in net.residual]
            self.up = [_Layer(m, fmt) for m in net.up]
            self.out = _Layer(net.out, fmt)
        self._layers = [*self.down, *(x for pair in self.residual for x in pair), *self.up, self.out]
        # The padding each layer's input needs: the phase convolutions read a replicate border.
        self._input_pad = [("replicate", 1) if layer.upsample else ("reflect", layer.pad)
                           for layer in self._layers]
        k = net.out.conv.kernel_size[0]
        self._out_half_pad = (k // 2 + k // 2 % 2) // 2
        w, b = space_to_depth_weights(net.out.conv.weight.detach(), net.out.conv.bias.detach())
        # Zero output channels up to a multiple of 16: oneDNN runs the 12-channel (RGB x 4
        # phases) convolution a quarter slower than the same one with 16 (AVX2 and AVX-512).
        extra = -w.shape[0] % 16
        w = torch.cat([w, w.new_zeros((extra, *w.shape[1:]))])
        b = torch.cat([b, b.new_zeros(extra)])
        self._out_s2d = (w.contiguous(memory_format=fmt), b.contiguous())
        self._affine_cache: OrderedDict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()

    # -- per-mix affine parameters -------------------------------------------------
    def affine(self, mix: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Mixed (gamma, beta) per layer, each (B, C) in float32, cached per mix."""
        if mix.dim() != 2 or mix.shape[1] != self.num_styles:
            raise ValueError(f"expected a (B, {self.num_styles}) global mix, got shape {tuple(mix.shape)}")
        key = (tuple(mix.shape), tuple(mix.detach().to("cpu", torch.float64).flatten().tolist()))
        hit = self._affine_cache.get(key)
        if hit is not None:
            self._affine_cache.move_to_end(key)
            return hit
        m = mix.detach().to(self.device, torch.float32)
        with torch.no_grad():
            params = [(m @ layer.gamma_table.float(), m @ layer.beta_table.float()) for layer in self._layers]
        self._affine_cache[key] = params
        if len(self._affine_cache) > _MIX_CACHE_SIZE:
            self._affine_cache.popitem(last=False)
        return params

    # -- forward -----------------------------------------------------------------------
    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, mix: torch.Tensor, stats: NormStats | None = None) -> torch.Tensor:
        if mix.dim() == 2 and mix.shape[0] == 1 and x.shape[0] > 1:
            mix = mix.expand(x.shape[0], -1)
        params = self.affine(mix)
        if stats is not None:
            stats.start()
        x = x.to(self.device, self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.channels_last and (x.shape[0] == 1 or self.device.type == "cpu"):
            return torch.cat([self._fused(x[i:i + 1], [(g[i:i + 1], b[i:i + 1]) for g, b in params], stats, i)
                              for i in range(x.shape[0])]) if x.shape[0] > 1 else self._fused(x, params, stats, 0)
        it = iter(params)
        for layer in self.down:
            x = self._norm(layer.conv(x), next(it), stats, relu=True)
        for a, b in self.residual:
            h = self._norm(a.conv(x), next(it), stats, relu=True)
            x = self._norm(b.conv(h), next(it), stats, relu=False, residual=x)
        for layer in self.up:
            x = self._norm(layer.conv(x), next(it), stats, relu=True)
        y = self._norm(self.out.conv(x), next(it), stats, relu=False)
        return y.sigmoid_()

    # -- the fused single-image pass ---------------------------------------------------
    # Each layer writes its normalized output straight into the padded input buffer of
    # the next layer (borders filled by copying rows and columns), and the phase
    # convolutions' outputs are interleaved by the same write: no separate pad, norm,
    # interleave or ReLU pass over full-resolution tensors. The last upsampling layer's
    # phases are never interleaved at all: they form the space-to-depth picture of its
    # full-resolution output, and the output convolution runs on that at half
    # resolution (few-channel full-resolution convolutions are slow on CPUs).
    # Statistics are exact (chunked float32 reductions combined in float64), so
    # large frames agree with the plain network.
    def _fused(self, x: torch.Tensor, params: list[tuple[torch.Tensor, torch.Tensor]],
               stats: NormStats | None, sample: int) -> torch.Tensor:
        layers = self._layers
        last = len(layers) - 1
        buf = _padded_copy(x, *self._input_pad[0])
        block_in: torch.Tensor | None = None
        first_res, end_res = len(self.down), len(self.down) + 2 * len(self.residual)
        for k in range(last):
            layer = layers[k]
            z = layer.conv_prepadded(buf)
            sc, sh = self._scale_shift(params[k], *self._stats(z, "phases" if layer.upsample else "plain",
                                                                layer.channels, stats, sample), z.dtype)
            if k == last - 1 and layer.upsample:
                buf = self._space_to_depth_buffer(z, layer.channels, sc, sh)
                continue
            mode, pad = self._input_pad[k + 1]
            h, w = z.shape[-2:]
            if layer.upsample:
                h, w = 2 * (h - 1), 2 * (w - 1)
            nxt = torch.empty((1, layer.channels, h + 2 * pad, w + 2 * pad), dtype=z.dtype, device=z.device,
                              memory_format=torch.channels_last)
            inner = nxt[:, :, pad:pad + h, pad:pad + w]
            if layer.upsample:
                c = layer.channels
                for a in (0, 1):
                    for b in (0, 1):
                        p = 2 * a + b
                        torch.addcmul(sh, z[:, p * c:(p + 1) * c, a:a + h // 2, b:b + w // 2], sc,
                                      out=inner[:, :, a::2, b::2])
            else:
                torch.addcmul(sh, z, sc, out=inner)
            if first_res <= k < end_res and (k - first_res) % 2 == 1:  # a residual block's end
                assert block_in is not None
                inner.add_(block_in)
            else:
                inner.relu_()
            _fill_border(nxt, mode, pad)
            if first_res <= k + 1 < end_res and (k + 1 - first_res) % 2 == 0:
                block_in = inner  # the next layer starts a residual block
            buf = nxt
        out = layers[last]
        if layers[last - 1].upsample:
            weight, bias = self._out_s2d
            # (1, 16, H/2, W/2): the output's four phases (4 x 3 channels), then zero padding
            zs = F.conv2d(buf, weight, bias)
            sc, sh = self._scale_shift(params[last], *self._stats(zs, "space_to_depth", 3, stats, sample),
                                       zs.dtype)
            # Normalize and squash the four phases together (one contiguous pass over all
            # channels, the padding's scale and shift zero), then interleave them with one
            # pixel-shuffle copy.
            extra = zs.shape[1] - 12
            sc, sh = (torch.cat([t.repeat(1, 4, 1, 1), t.new_zeros((1, extra, 1, 1))], 1) for t in (sc, sh))
            torch.addcmul(sh, zs, sc, out=zs).sigmoid_()
            h, w = zs.shape[-2:]
            y = torch.empty((1, 3, 2 * h, 2 * w), dtype=zs.dtype, device=zs.device,
                            memory_format=torch.channels_last)
            y.permute(0, 2, 3, 1).view(h, 2, w, 2, 3).copy_(
                zs[:, :12].permute(0, 2, 3, 1).reshape(h, w, 2, 2, 3).permute(0, 2, 1, 3, 4))
            return y
        z = out.conv_prepadded(buf)
        sc, sh = self._scale_shift(params[last], *self._stats(z, "plain", 3, stats, sample), z.dtype)
        return torch.addcmul(sh, z, sc, out=z).sigmoid_()

    @staticmethod
    def _scale_shift(affine: tuple[torch.Tensor, torch.Tensor], mean: torch.Tensor, var: torch.Tensor,
                     dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The norm and its mixed affine folded into one per-channel scale and shift (1, C, 1, 1)."""
        gamma, beta = affine
        scale = gamma[0] * torch.rsqrt(var + EPS)
        shift = beta[0] - mean * scale
        return scale.to(dtype)[None, :, None, None], shift.to(dtype)[None, :, None, None]

    def _space_to_depth_buffer(self, z: torch.Tensor, channels: int, sc: torch.Tensor,
                               sh: torch.Tensor) -> torch.Tensor:
        """The normalized, rectified output of the last upsampling layer as its
        space-to-depth picture (group p = 2a + b holds full-resolution pixels
        (2i + a, 2j + b)), with the output convolution's reflect border.

        A reflect border of the full-resolution picture keeps each pixel's row and
        column parity, so each phase group gets a border of its own rows: mirrored
        about its edge row (reflect) on one side, including it (symmetric) on the other.
        """
        h, w = z.shape[-2] - 1, z.shape[-1] - 1
        q = self._out_half_pad
        s = torch.empty((1, 4 * channels, h + 2 * q, w + 2 * q), dtype=z.dtype, device=z.device,
                        memory_format=torch.channels_last)
        for a in (0, 1):
            for b in (0, 1):
                p = 2 * a + b
                group = s[:, p * channels:(p + 1) * channels]
                inner = group[:, :, q:q + h, q:q + w]
                torch.addcmul(sh, z[:, p * channels:(p + 1) * channels, a:a + h, b:b + w], sc, out=inner)
                _fill_sides(group, q, top="symmetric" if a else "reflect", bottom="reflect" if a else "symmetric",
                            left="symmetric" if b else "reflect", right="reflect" if b else "symmetric")
        return s.relu_()  # the border mirrors the interior, so one contiguous pass rectifies both

    def _stats(self, z: torch.Tensor, kind: str, channels: int, stats: NormStats | None,
               sample: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (mean, variance), each (C,) float32, of a layer's output,
        recorded into or replayed from ``stats``. ``kind``: "plain" (z is the
        output), "phases" (z holds the upsampling phase groups, one row and column
        more than each phase's region), "space_to_depth" (z holds four equal phase groups, then zero padding)."""
        if stats is not None and stats.replaying:
            mean, var = stats(_FLOAT_PROBE.to(z.device))
            j = sample if mean.shape[0] > 1 else 0
            return mean[j].flatten(), var[j].flatten()
        if kind == "phases":
            mean, var = _phase_stats(z, channels)
        else:
            count, mean, m2 = exact_stats(z)
            if kind == "space_to_depth":  # z: four phase groups of ``channels``, then zero padding
                groups = slice(0, 4 * channels)
                count, mean, m2 = _combine([count] * 4, mean[groups].reshape(4, channels),
                                           m2[groups].reshape(4, channels))
            var = m2 / count
        mean, var = mean.to(z.device, torch.float32), var.to(z.device, torch.float32)
        if stats is not None:
            stats.recorded.append((mean[None, :, None, None], var[None, :, None, None]))
        return mean, var

    def _norm(self, y: torch.Tensor, affine: tuple[torch.Tensor, torch.Tensor], stats: NormStats | None,
              relu: bool, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Instance norm with the mixed affine, then the residual add and/or ReLU, in place.

        Statistics are always float32 (fp16 variances of large activations
        would overflow), recorded into / replayed from ``stats`` like the plain network.
        """
        gamma, beta = affine
        replay = stats is not None and stats.replaying
        if replay:
            assert stats is not None
            # NormStats casts to the probe's dtype: a float32 probe keeps the recorded precision.
            mean, var = stats(_FLOAT_PROBE.to(y.device))
        per_sample = self.norm_kernel == "batchnorm" and (y.shape[0] == 1 or y.device.type == "cpu")
        if per_sample:
            outs, means, vars_ = [], [], []
            for i in range(y.shape[0]):
                yi = y[i:i + 1]
                if replay:
                    j = i if mean.shape[0] > 1 else 0
                    o = F.batch_norm(yi, mean[j].flatten(), var[j].flatten(), gamma[i], beta[i], False, 0.0, EPS)
                else:
                    o, m, invstd = torch.native_batch_norm(yi, gamma[i], beta[i], None, None, True, 0.0, EPS)
                    means.append(m)
                    vars_.append(invstd.pow(-2) - EPS)
                outs.append(o)
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
            if not replay and stats is not None:
                stats.recorded.append((torch.stack(means).float()[:, :, None, None],
                                       torch.stack(vars_).float()[:, :, None, None]))
        else:
            if not replay:
                var, mean = torch.var_mean(y if y.dtype == torch.float32 else y.float(), dim=(2, 3),
                                           keepdim=True, unbiased=False)
                if stats is not None:
                    stats.recorded.append((mean, var))
            scale = gamma[:, :, None, None] * torch.rsqrt(var + EPS)
            shift = beta[:, :, None, None] - mean * scale
            out = y.mul_(scale.to(y.dtype)).add_(shift.to(y.dtype))
        if residual is not None:
            out = out.add_(residual)
        if relu:
            out = out.relu_()
        return out


# Pixels per chunk for exact statistics: float32 sums over at most this many values per
# channel stay accurate to ~1e-6; the chunks are combined in float64.
_STATS_CHUNK_PIXELS = 1 << 16
# The CPU statistics kernel vectorizes over channels, so a few-channel activation runs
# it at a fraction of its speed (3-16 channels: 3-6x slower per value than 256). Each
# chunk is therefore read as rows of k consecutive pixels, k * C >= this many columns,
# and the k groups of every channel combined exactly afterwards.
_STATS_MIN_COLUMNS = 256


def exact_stats(y: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(count, mean, sum of squared deviations) per channel of a (1, C, H, W) tensor,
    mean and M2 in float64 on the CPU.

    One float32 reduction over a whole 4K frame loses up to 0.4% of the variance;
    reductions over chunks of at most 65,536 pixels of a channels-last tensor are
    exact enough, and Chan's parallel formula combines them exactly.
    """
    _, c, h, w = y.shape
    if y.device.type != "cpu":
        var, mean = torch.var_mean(y.float(), dim=(0, 2, 3), unbiased=False)
        n = h * w
        return n, mean.to("cpu", torch.float64), var.to("cpu", torch.float64) * n
    yf = y if y.dtype == torch.float32 else y.float()
    pixels = yf.permute(0, 2, 3, 1).reshape(h * w, c)  # a view when y is channels-last
    k = 1
    while k * c < _STATS_MIN_COLUMNS:
        k *= 2
    means, m2s, counts = [], [], []

    def add(part: torch.Tensor, groups: int) -> None:
        rows = part.shape[0] // groups
        m, v = torch.batch_norm_update_stats(part.reshape(rows, groups * c), None, None, 0.0)
        means.append(m.view(groups, c))
        m2s.append((v * rows).view(groups, c))
        counts.extend([rows] * groups)

    for p0 in range(0, h * w, _STATS_CHUNK_PIXELS):
        part = pixels[p0:p0 + _STATS_CHUNK_PIXELS]
        whole = part.shape[0] // k * k
        if whole:
            add(part[:whole], k)
        if whole < part.shape[0]:
            add(part[whole:], 1)
    return _combine(counts, torch.cat(means).double(), torch.cat(m2s).double())


def _combine(counts: list[int], means: torch.Tensor, m2s: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Chan, Golub and LeVeque's combination of (K, C) partial statistics."""
    n = torch.tensor(counts, dtype=torch.float64)[:, None]
    total = float(n.sum())
    mean = (means * n).sum(0) / total
    m2 = m2s.sum(0) + (n * (means - mean).square()).sum(0)
    return int(total), mean, m2


def _phase_stats(z: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, variance) per output channel of the image the phase groups of ``z``
    interleave into, without interleaving: each phase's region is the whole group
    less one row and one column, removed exactly in float64."""
    _, _, h1, w1 = z.shape
    h, w = h1 - 1, w1 - 1
    n_f, mean_f, m2_f = exact_stats(z)
    counts, means, m2s = [], [], []
    for a in (0, 1):
        for b in (0, 1):
            p = 2 * a + b
            g = slice(p * channels, (p + 1) * channels)
            r_ex, c_ex = (h if a == 0 else 0), (w if b == 0 else 0)
            keep_rows = slice(0, h) if a == 0 else slice(1, h1)
            edge = torch.cat([z[0, g, r_ex, :], z[0, g, keep_rows, c_ex]], dim=1).double().cpu()
            n_e = edge.shape[1]
            m_e = edge.mean(1)
            m2_e = (edge - m_e[:, None]).square().sum(1)
            n_p = n_f - n_e
            m_p = (mean_f[g] * n_f - m_e * n_e) / n_p
            m2_p = m2_f[g] - m2_e - (m_e - m_p).square() * (n_e * n_p / n_f)
            counts.append(n_p)
            means.append(m_p)
            m2s.append(m2_p)
    total, mean, m2 = _combine(counts, torch.stack(means), torch.stack(m2s))
    return mean, (m2 / total).clamp_min(0.0)


def _padded_copy(x: torch.Tensor, mode: str, pad: int) -> torch.Tensor:
    """``x`` copied into a channels-last buffer with a ``mode`` border of ``pad`` pixels."""
    b, c, h, w = x.shape
    out = torch.empty((b, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    out[:, :, pad:pad + h, pad:pad + w] = x
    _fill_border(out, mode, pad)
    return out


def _fill_border(buf: torch.Tensor, mode: str, pad: int) -> None:
    """Fill a buffer's ``pad``-pixel border from its interior, exactly as
    ``F.pad(interior, mode=mode)`` would ('reflect' or 'replicate')."""
    if pad == 0:
        return
    h, w = buf.shape[-2] - 2 * pad, buf.shape[-1] - 2 * pad
    top, bottom = slice(0, pad), slice(pad + h, 2 * pad + h)
    cols = slice(pad, pad + w)
    if mode == "reflect":
        buf[:, :, top, cols] = buf[:, :, pad + 1:2 * pad + 1, cols].flip(2)
        buf[:, :, bottom, cols] = buf[:, :, h - 1:pad + h - 1, cols].flip(2)
        buf[:, :, :, 0:pad] = buf[:, :, :, pad + 1:2 * pad + 1].flip(3)
        buf[:, :, :, pad + w:] = buf[:, :, :, w - 1:pad + w - 1].flip(3)
    elif mode == "replicate":
        buf[:, :, top, cols] = buf[:, :, pad:pad + 1, cols]
        buf[:, :, bottom, cols] = buf[:, :, pad + h - 1:pad + h, cols]
        buf[:, :, :, 0:pad] = buf[:, :, :, pad:pad + 1]
        buf[:, :, :, pad + w:] = buf[:, :, :, pad + w - 1:pad + w]
    else:
        raise ValueError(f"unknown padding mode {mode!r}")


def _fill_sides(buf: torch.Tensor, pad: int, *, top: str, bottom: str, left: str, right: str) -> None:
    """Fill a buffer's ``pad``-pixel border from its interior, each side mirrored
    about its edge row or column ("reflect") or including it ("symmetric")."""
    h, w = buf.shape[-2] - 2 * pad, buf.shape[-1] - 2 * pad
    cols = slice(pad, pad + w)
    first = {"reflect": slice(pad + 1, 2 * pad + 1), "symmetric": slice(pad, 2 * pad)}
    last_rows = {"reflect": slice(h - 1, pad + h - 1), "symmetric": slice(h, pad + h)}
    last_cols = {"reflect": slice(w - 1, pad + w - 1), "symmetric": slice(w, pad + w)}
    buf[:, :, 0:pad, cols] = buf[:, :, first[top], cols].flip(2)
    buf[:, :, pad + h:, cols] = buf[:, :, last_rows[bottom], cols].flip(2)
    buf[:, :, :, 0:pad] = buf[:, :, :, first[left]].flip(3)
    buf[:, :, :, pad + w:] = buf[:, :, :, last_cols[right]].flip(3)

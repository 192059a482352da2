"""The public inference API: load a model once, stylize many images.

    stylizer = Stylizer("model.safetensors")
    out = stylizer.stylize(pixels, {"starry_night": 0.7, "great_wave": 0.3},
                           colour_space="linear", premultiplied=True)

Input is a numpy float image H x W x 3 or 4; the result has the same shape
and dtype. Everything between (colour conversion, alpha, padding, tiling,
device and precision) happens here so every caller gets the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..errors import ArgumentError, BrushError, ImageError, NetworkOutputError, WeightsError
from ..model.fast_network import FastStyleNetwork
from ..model.modelfile import PasticheModel, load_model
from ..model.network import NormStats
from . import brush, colour
from .arguments import check_options
from .devices import Placement, placement
from .mixing import WeightsLike, normalize_weight_map, normalize_weights
from .padding import BORDER_MARGIN, MIN_SIDE, Padding
from .regions import RegionLayers, StyleRegions
from .tiled_pass import TiledPass

MAX_PIXELS = 16384 * 16384
DEFAULT_TILE = 512  # measured: 8K at 512 is faster than at 1024 and peaks 230 MB lower
# Images above this many pixels are tiled automatically to bound memory: 4K (UHD and
# DCI) runs whole, 8K is tiled. Measured at UHD 4K on the CPU (float32): untiled peaks at
# 2.0 GB (light network) and 4.5 GB (full), tiled at 0.8 GB but takes 3x the time.
AUTO_TILE_PIXELS = 4096 * 2304


def check_stylizer_input(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ImageError(f"expected a float image with values in [0, 1], got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ImageError(f"expected an H x W x 3 or H x W x 4 image, got shape {image.shape}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ImageError(f"the image is empty ({h} x {w})")
    if h * w > MAX_PIXELS:
        raise ImageError(f"the image is {w} x {h}, more than the supported {MAX_PIXELS} pixels")
    bad = ~np.isfinite(image)
    if bad.any():
        raise ImageError(f"the image holds {int(bad.sum())} NaN or infinite value(s)")


def check_network_output(out: np.ndarray) -> np.ndarray:
    """Fail loudly instead of returning a black or NaN picture as if it were a result.

    The network ends in a sigmoid, so finite inputs give values in [0, 1]; NaN or
    infinity means overflowing weights (a damaged or badly trained model)."""
    bad = ~np.isfinite(out)
    if bad.any():
        raise NetworkOutputError(
            f"the network produced {int(bad.sum())} NaN or infinite value(s) of {out.size}: "
            "the model's weights are damaged or overflow (try fp32 precision, or re-download "
            "or retrain the model)")
    return out


class Stylizer:
    """A loaded model on a device, ready to stylize images and frames."""

    def __init__(self, model: PasticheModel | str | os.PathLike, device: str = "auto",
                 precision: str = "auto"):
        self.placement: Placement = placement(device, precision)
        if not isinstance(model, PasticheModel):
            model = load_model(model)
        self.model = model
        net = model.network.to(self.placement.device, self.placement.dtype).eval().requires_grad_(False)
        if self.placement.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.network = net
        # Inference-optimized twin for global mixes (exact same math, see fast_network.py);
        # per-pixel weight maps use the plain network. Set to None to use the plain one always.
        # Apple MPS keeps the plain network: the fast path is not tested there.
        self.fast_network: FastStyleNetwork | None = (
            FastStyleNetwork(net) if self.placement.device.type in ("cpu", "cuda") else None)
        # Pixels mirrored out around every picture before the network runs (padding.py).
        self.border_margin = BORDER_MARGIN

    @property
    def style_names(self) -> list[str]:
        return self.model.style_names

    # -- weights -----------------------------------------------------------
    def mix_vector(self, weights: WeightsLike | None) -> np.ndarray:
        """Normalized global weights; a one-style model needs none."""
        if weights is None:
            if len(self.style_names) == 1:
                return np.ones(1)
            raise WeightsError(f"no style weights given; the model has: {', '.join(self.style_names)}")
        return normalize_weights(weights, self.style_names)

    def mix_vector_or_map(self, weights: WeightsLike | np.ndarray | StyleRegions | None) -> None:
        """Validate weights (global or a per-pixel map) without running anything."""
        if isinstance(weights, StyleRegions):
            return  # checked against each image's size in _stylize_regions
        if isinstance(weights, np.ndarray) and weights.ndim == 3:
            normalize_weight_map(weights, len(self.style_names))
        else:
            self.mix_vector(weights)

    def mix_tensor(self, weights: WeightsLike | np.ndarray | None, shape: tuple[int, int]) -> torch.Tensor:
        p = self.placement
        if isinstance(weights, np.ndarray) and weights.ndim == 3:
            m = normalize_weight_map(weights, len(self.style_names))
            if m.shape[:2] != shape:
                raise WeightsError(f"the weight map is {m.shape[1]} x {m.shape[0]} but the image is {shape[1]} x {shape[0]}")
            return torch.from_numpy(np.ascontiguousarray(m.transpose(2, 0, 1)))[None].to(p.device, torch.float32)
        return torch.from_numpy(self.mix_vector(weights)).to(p.device, torch.float32)[None]

    # -- public API ----------------------------------------------------------
    def stylize(self, image: np.ndarray, weights: WeightsLike | np.ndarray | StyleRegions | None = None, *,
                colour_space: colour.ColourSpace = "srgb", premultiplied: bool = False,
                strength: float = 1.0, preserve_color: bool = False,
                tile: int | None = None,
                brush_size: float = 1.0, detail: float = 0.0) -> np.ndarray:
        """Stylize one image. ``weights``: mapping name -> weight, a sequence
        in model order, an H x W x N per-pixel weight map, or StyleRegions
        (regions.py: soft masks with a mix each). ``tile``: None
        tiles automatically above ~9.4 megapixels (larger than 4K), 0 never tiles, N tiles at N
        pixels. ``premultiplied`` says how a 4th (alpha) channel is stored.
        ``brush_size`` (0.5-4): stroke scale, the network runs at the image
        size divided by it (brush.py); ``detail`` (0-1): how much of the
        input's fine structure is put back."""
        return self.stylize_batch([image], weights, colour_space=colour_space,
                                  premultiplied=premultiplied, strength=strength,
                                  preserve_color=preserve_color, tile=tile,
                                  brush_size=brush_size, detail=detail)[0]

    def stylize_batch(self, images: Sequence[np.ndarray],
                      weights: WeightsLike | np.ndarray | StyleRegions | None = None, *,
                      colour_space: colour.ColourSpace = "srgb", premultiplied: bool = False,
                      strength: float = 1.0, preserve_color: bool = False,
                      tile: int | None = None,
                      batch_size: int = 4, brush_size: float = 1.0, detail: float = 0.0) -> list[np.ndarray]:
        """Stylize frames with one mix; same-sized frames share network batches."""
        opts = check_options(colour_space=colour_space, premultiplied=premultiplied, strength=strength,
                             preserve_color=preserve_color, tile=tile,
                             batch_size=batch_size)
        colour_space, premultiplied, strength = opts.colour_space, opts.premultiplied, opts.strength
        preserve_color, tile, batch_size = opts.preserve_color, opts.tile, opts.batch_size
        if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
            raise ArgumentError(f"images must be a list of arrays, got {type(images).__name__}")
        s, d = brush.check_brush(brush_size, detail)
        for im in images:
            check_stylizer_input(im)
        if isinstance(weights, StyleRegions):
            checked = [weights.layers(im.shape[:2], self.style_names, float(strength)) for im in images]
            return [self._stylize_regions(im, weights.method, layers, colour_space, premultiplied,
                                          preserve_color, tile, batch_size, s, d)
                    for im, layers in zip(images, checked, strict=True)]
        self.mix_vector_or_map(weights)  # bad weights fail before any network work
        sizes = [self.network_size(im.shape[:2], s) for im in images]  # refuse before any work
        prepared = [self.to_network_rgb(im, colour_space, premultiplied) for im in images]
        # The picture the network sees: the prepared one divided by the brush size.
        net_in = [self.to_network_size(rgb, size) for rgb, size in zip(prepared, sizes, strict=True)]
        per_pixel = isinstance(weights, np.ndarray) and weights.ndim == 3
        results: list[np.ndarray | None] = [None] * len(images)
        # Group same-sized, untiled frames into batches: instance norm is per sample, so this is exact.
        pending: list[int] = []
        for i, rgb in enumerate(net_in):
            if self.needs_tiling(rgb.shape[:2], tile) or per_pixel:
                results[i] = self._run(rgb, self.weights_at(weights, prepared[i].shape[:2], sizes[i]),
                                       tile)
            else:
                pending.append(i)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i in pending:
            by_shape.setdefault(net_in[i].shape, []).append(i)
        for idxs in by_shape.values():
            for k in range(0, len(idxs), max(1, batch_size)):
                chunk = idxs[k:k + batch_size]
                outs = self._forward_whole(np.stack([net_in[i] for i in chunk]), self.mix_tensor(weights, (0, 0)))
                for i, o in zip(chunk, outs, strict=True):
                    results[i] = o
        if s != 1.0 or d > 0.0:
            results = [self.restore_brush(results[i], net_in[i], prepared[i], s, d) for i in range(len(images))]
        return [self.from_network_rgb(images[i], prepared[i], results[i], colour_space, premultiplied,
                                       float(strength), preserve_color) for i in range(len(images))]

    # -- style regions (regions.py) ----------------------------------------------
    def _stylize_regions(self, image: np.ndarray, method: str,
                         layers: RegionLayers,
                         colour_space: colour.ColourSpace, premultiplied: bool, preserve_color: bool,
                         tile: int | None, batch_size: int, s: float, d: float) -> np.ndarray:
        """One image with style regions: each layer's mix over the whole frame
        (one pass each, batched where untiled), blended by the layers' coverage
        at the network's size, then brought back like a single-mix result with
        a per-pixel strength."""
        coverage, mixes = layers.coverage, layers.mixes
        prepared = self.to_network_rgb(image, colour_space, premultiplied)
        size = self.network_size(image.shape[:2], s)
        net_in = self.to_network_size(prepared, size)
        net_cov = coverage
        if tuple(size) != coverage.shape[:2]:
            net_cov = brush.resize_weights(coverage, size)
            net_cov = net_cov / np.maximum(net_cov.sum(axis=2, keepdims=True), 1e-12)
        if method == "blend":
            styled = self._run(net_in, layers.weight_map(net_cov), tile)
        else:
            # Layers that differ only in strength (e.g. a soft mask over an unstyled base
            # with the same mix) share one pass: the strength is applied per pixel below.
            groups: list[tuple[np.ndarray, list[int]]] = []
            for k, m in enumerate(mixes):
                for gm, ks in groups:
                    if np.allclose(gm, m, atol=1e-9):
                        ks.append(k)
                        break
                else:
                    groups.append((m, [k]))
            styled = np.zeros_like(net_in)
            for (_, ks), y in zip(groups, self._each_mix(net_in, [g[0] for g in groups], tile), strict=True):
                y *= net_cov[..., ks].sum(axis=2, keepdims=True)
                styled += y
        if s != 1.0 or d > 0.0:
            styled = self.restore_brush(styled, net_in, prepared, s, d)
        return self.from_network_rgb(image, prepared, styled, colour_space, premultiplied,
                                     layers.strength_map(), preserve_color)

    def _each_mix(self, rgb: np.ndarray, mixes: list[np.ndarray], tile: int | None) -> Iterator[np.ndarray]:
        """The picture stylized with each mix in turn, one pass each: the fast
        twin's fused single-image pass is faster than a batch of copies."""
        for m in mixes:
            yield self._run(rgb, m, tile)

    # -- brush size and detail (brush.py) ---------------------------------------
    @staticmethod
    def network_size(shape: tuple[int, int], brush_size: float) -> tuple[int, int]:
        """The size the network paints a picture of ``shape`` at (BrushError below its minimum)."""
        size = brush.network_size(shape, brush_size, MIN_SIDE)
        if size[0] * size[1] > MAX_PIXELS:
            raise BrushError(f"brush size {brush_size:g} would run the network at {size[1]} x "
                                   f"{size[0]}, more than the supported {MAX_PIXELS} pixels")
        return size

    def to_network_size(self, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Display RGB resized (antialiased) for the network; itself at brush size 1."""
        return rgb if rgb.shape[:2] == tuple(size) else brush.resize(rgb, size, self.placement.device)

    def restore_brush(self, styled: np.ndarray | None, network_in: np.ndarray, full: np.ndarray,
                      brush_size: float, detail: float) -> np.ndarray:
        """The network's output back at full size, edge-aware, with ``detail`` put back."""
        assert styled is not None
        return brush.restore(styled, network_in, full, brush_size, detail, self.placement.device)

    @staticmethod
    def weights_at(weights: WeightsLike | np.ndarray | None, shape: tuple[int, int],
                    size: tuple[int, int]) -> WeightsLike | np.ndarray | None:
        """A per-pixel weight map for the image of ``shape``, resampled to the network's ``size``."""
        if not (isinstance(weights, np.ndarray) and weights.ndim == 3) or tuple(shape) == tuple(size):
            return weights
        if weights.shape[:2] != tuple(shape):
            raise WeightsError(f"the weight map is {weights.shape[1]} x {weights.shape[0]} "
                               f"but the image is {shape[1]} x {shape[0]}")
        return brush.resize_weights(weights, size)

    # -- colour and alpha ------------------------------------------------------
    @staticmethod
    def to_network_rgb(image: np.ndarray, space: colour.ColourSpace, premultiplied: bool) -> np.ndarray:
        img = image.astype(np.float32, copy=False)
        rgb = colour.unpremultiply(img) if img.shape[2] == 4 and premultiplied else img[..., :3]
        if img.shape[2] == 4 and not premultiplied:
            # Colour hidden under alpha 0 is invisible but would steer the network's
            # statistics and neighbours: zero it, as premultiplied input already is.
            rgb = np.where(img[..., 3:4] > 0, rgb, 0.0).astype(np.float32)
        return colour.to_display(rgb, space)

    @staticmethod
    def from_network_rgb(image: np.ndarray, display_in: np.ndarray, display_out: np.ndarray | None,
                          space: colour.ColourSpace, premultiplied: bool, strength: float | np.ndarray,
                          preserve_color: bool) -> np.ndarray:
        """``strength``: one number, or H x W x 1 per pixel (style regions)."""
        assert display_out is not None
        if preserve_color:
            display_out = colour.preserve_colour(display_out, display_in)
        img = image.astype(np.float32, copy=False)
        has_alpha = img.shape[2] == 4
        straight_in = colour.unpremultiply(img) if has_alpha and premultiplied else img[..., :3]
        # Blend in the caller's space so strength 0 returns the original exactly (HDR values included).
        rgb = colour.from_display(display_out, space)
        if np.any(np.asarray(strength) < 1.0):
            rgb = strength * rgb + (1.0 - strength) * straight_in
        if has_alpha:
            alpha = img[..., 3]
            transparent = (alpha <= 0)[..., None]
            rgb = np.where(transparent, straight_in, rgb)
            if premultiplied:
                rgb = colour.premultiply(rgb, alpha)
            rgb = np.concatenate([rgb, alpha[..., None]], axis=2)
        return rgb.astype(image.dtype, copy=False)

    # -- the network -------------------------------------------------------------
    @staticmethod
    def needs_tiling(shape: tuple[int, int], tile: int | None) -> bool:
        h, w = shape
        if tile is None:
            return h * w > AUTO_TILE_PIXELS
        return tile > 0 and max(h, w) > tile

    def _run(self, rgb: np.ndarray, weights: WeightsLike | np.ndarray | None, tile: int | None) -> np.ndarray:
        h, w = rgb.shape[:2]
        mix = self.mix_tensor(weights, (h, w))
        if not self.needs_tiling((h, w), tile):
            return self._forward_whole(rgb[None], mix)[0]
        size = DEFAULT_TILE if tile is None else int(tile)  # >= 64, see arguments.check_options
        return self._forward_tiled(rgb, mix, size)

    def _tensor(self, batch: np.ndarray) -> torch.Tensor:
        p = self.placement
        x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).to(p.device, p.dtype)
        return x.contiguous(memory_format=torch.channels_last) if p.channels_last else x

    @torch.inference_mode()
    def network_pass(self, rgb: np.ndarray, mix: torch.Tensor, stats: NormStats | None = None) -> torch.Tensor:
        """One H x W x 3 display-RGB image through the network, untiled; the
        result (H x W x 3, float32) stays on the device. For modes built on
        the stylizer, such as temporal.py."""
        y = self._network(self._tensor(rgb[None]), mix, stats)[0].float().permute(1, 2, 0).contiguous()
        if not bool(torch.isfinite(y).all()):
            check_network_output(y.cpu().numpy())
        return y

    @torch.inference_mode()
    def _network(self, x: torch.Tensor, mix: torch.Tensor, stats: NormStats | None = None) -> torch.Tensor:
        """Pad (padding.py: the border margin and the network's multiple), run, crop back.
        x: (B, 3, H, W); mix: (B or 1, N) or a per-pixel (1, N, H, W) map."""
        pad = Padding(*x.shape[-2:], self.border_margin)
        x = pad.image(x)  # channels-last in memory
        if mix.dim() == 4:
            mix = pad.weights(mix)
        if mix.dim() == 2 and mix.shape[0] != x.shape[0]:
            mix = mix.expand(x.shape[0], -1)
        if mix.dim() == 2 and self.fast_network is not None:
            y = self.fast_network(x, mix, stats)
        else:
            y = self.network(x, mix, stats)
        return pad.crop(y)

    def _to_numpy(self, y: torch.Tensor) -> np.ndarray:
        return check_network_output(y.float().permute(0, 2, 3, 1).cpu().numpy())

    def _forward_whole(self, batch: np.ndarray, mix: torch.Tensor) -> np.ndarray:
        return self._to_numpy(self._network(self._tensor(batch), mix))

    def _forward_tiled(self, rgb: np.ndarray, mix: torch.Tensor, size: int) -> np.ndarray:
        """The whole network tile by tile, exactly, in memory bounded by the tile (tiled_pass.py)."""
        p = self.placement
        run = TiledPass(self.network, self.fast_network, p.device, p.dtype, p.channels_last)
        return check_network_output(run(rgb, mix, size, self.border_margin))

"""Brush Size benchmark: which upsampler brings the network's reduced-size
result back to full size, and what each brush size costs per frame.

    python benchmarks/brush.py [--model FILE] [--size 1080p] [--brush-sizes 1,1.5,2,3] [--json]

1. Upsamplers (core/inference/brush.py's UPSAMPLERS, plus joint bilateral
   variants), on a synthetic scene of flat-coloured shapes whose outlines are
   known exactly, at brush size 2:
   - edge error: an identity "network" (the downscaled scene itself) brought
     back to full size, mean absolute error against the full-resolution scene
     on the pixels within 1.5 px of an outline (lower: crisper outlines);
   - edge gradient: the stylized result's mean gradient magnitude on those
     pixels, relative to bicubic's (higher: crisper);
   - stroke fidelity: the upsampled stylization shrunk back to the network's
     size, mean absolute error against what the network painted, away from
     the outlines (lower: the strokes survive as painted);
   - time for one frame of ``--size``.
2. Time per frame through ``Stylizer.stylize`` at each brush size (the
   network, resampling and colour handling included; medians of ``--repeats``),
   in the same run so machine load hits all alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial

import numpy as np
import torch

from pastiche_core import Stylizer
from pastiche_core.inference import brush
from pastiche_core.model.modelfile import resolve_model_path

NAMED = {"540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
COMPARE_SIZE = (960, 540)  # the quality comparison's scene (quick on a CPU)
BRUSH = 2.0


def shapes_scene(w: int, h: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Display RGB of flat-coloured discs and boxes on a gradient, and a mask
    of the pixels within 1.5 px of an outline."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.3 + 0.4 * x / w, 0.5 + 0.0 * x, 0.7 - 0.4 * y / h], axis=2)
    labels = np.zeros((h, w), np.int32)
    for k in range(1, 25):
        colour = r.uniform(0.05, 0.95, 3).astype(np.float32)
        cx, cy, size = r.uniform(0, w), r.uniform(0, h), r.uniform(0.03, 0.12) * w
        if k % 2:
            inside = (x - cx) ** 2 + (y - cy) ** 2 < size**2
        else:
            inside = (np.abs(x - cx) < size) & (np.abs(y - cy) < 0.6 * size)
        img[inside] = colour
        labels[inside] = k
    edge = np.zeros((h, w), bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    t = torch.from_numpy(edge.astype(np.float32))[None, None]
    band = torch.nn.functional.max_pool2d(t, 3, stride=1, padding=1)[0, 0].numpy() > 0
    return img, band


def gradient(img: np.ndarray) -> np.ndarray:
    g = img.mean(axis=2)
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, 1:-1] = (g[:, 2:] - g[:, :-2]) / 2
    gy[1:-1] = (g[2:] - g[:-2]) / 2
    return np.hypot(gx, gy)


def upsamplers() -> dict:
    jbu = brush.joint_bilateral_upsample_t
    out = {"bicubic": brush.bicubic_upsample_t, "fast_guided": brush.fast_guided_upsample_t}
    for window in (2, 3, 4):
        for ss in (0.5, 1.0):
            for sr in (0.05, 0.1):
                out[f"joint_bilateral w{window} s{ss} r{sr}"] = partial(
                    jbu, window=window, sigma_space=ss, sigma_range=sr)
    return out


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare(stylizer: Stylizer, size: tuple[int, int], repeats: int) -> list[dict]:
    w, h = COMPARE_SIZE
    full, band = shapes_scene(w, h)
    dev = torch.device("cpu")
    small = brush.network_size((h, w), BRUSH, 16)
    low_in = brush.resize(full, small)
    styled = stylizer.stylize(low_in, {stylizer.style_names[0]: 1.0})
    t_full, t_low, t_sty = (brush._to_tensor(a, dev) for a in (full, low_in, styled))
    big_w, big_h = size
    big = np.random.default_rng(1).random((big_h, big_w, 3), dtype=np.float32)
    big_small = brush.resize(big, brush.network_size((big_h, big_w), BRUSH, 16))
    t_big, t_big_small = brush._to_tensor(big, dev), brush._to_tensor(big_small, dev)
    rows, base_grad = [], None
    with torch.inference_mode():
        for name, fn in upsamplers().items():
            ident = brush._to_numpy(fn(t_low, t_low, t_full).clamp(0, 1))
            up = brush._to_numpy(fn(t_sty, t_low, t_full).clamp(0, 1))
            edge_err = float(np.abs(ident - full)[band].mean())
            grad = float(gradient(up)[band].mean())
            base_grad = grad if base_grad is None else base_grad
            back = brush.resize(up, small)
            off = brush.resize(band[..., None].astype(np.float32), small)[..., 0] == 0
            fidelity = float(np.abs(back - styled)[off].mean())
            secs = timed(lambda fn=fn: fn(t_big_small, t_big_small, t_big), repeats)
            rows.append({"upsampler": name, "edge_error": edge_err, "edge_gradient": grad / base_grad,
                         "stroke_error": fidelity, "seconds": secs})
            print(f"{name:<28} edge error {edge_err:.4f}  edge gradient x{grad / base_grad:.2f}  "
                  f"stroke error {fidelity:.4f}  {secs:.3f} s at {big_w}x{big_h}", file=sys.stderr)
    return rows


def per_brush(stylizer: Stylizer, size: tuple[int, int], sizes: list[float], repeats: int) -> list[dict]:
    w, h = size
    img, _ = shapes_scene(w, h, seed=3)
    weights = {stylizer.style_names[0]: 1.0}
    stylizer.stylize(img[:64, :64], weights)  # warm up
    rows = []
    for s in sizes:
        secs = timed(lambda s=s: stylizer.stylize(img, weights, brush_size=s), repeats)
        nh, nw = brush.network_size((h, w), s, 16)
        rows.append({"brush_size": s, "network_size": [nw, nh], "seconds": secs})
        print(f"brush size {s:g}: network at {nw}x{nh}, {secs:.2f} s per {w}x{h} frame", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model file (default: the bundled default model)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", default="1080p", help="frame size for the timings: 540p, 720p, 1080p, 4k")
    ap.add_argument("--brush-sizes", default="1,1.5,2,3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-upsamplers", action="store_true", help="only time the brush sizes")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args(argv)
    size = NAMED[args.size]
    stylizer = Stylizer(resolve_model_path(args.model), device=args.device)
    result = {"torch_threads": torch.get_num_threads(), "device": stylizer.placement.describe(),
              "size": list(size)}
    if not args.skip_upsamplers:
        result["upsamplers"] = compare(stylizer, size, args.repeats)
    sizes = [float(x) for x in args.brush_sizes.split(",") if x.strip()]
    result["brush_sizes"] = per_brush(stylizer, size, sizes, args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

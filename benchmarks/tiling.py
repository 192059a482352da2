"""Tiled against untiled stylization: time, peak memory and difference.

    python benchmarks/tiling.py [--size 1920x1080] [--tile 512] [--threads 1]

Modes, each in a fresh process (peak resident memory above the process's
state just before the call, from /proc VmHWM after resetting it):
  untiled    one pass over the whole image (tile=0, the fast network)
  streamed   tile=N: the network streamed layer by layer across tiles with exact
             whole-image statistics (what the stylizer does now)
  downscaled the previous scheme, re-created here: statistics from one pass over a
             copy of at most --stats-size pixels on the long side (the whole image
             at 1080p with the old 2048), replayed by each tile's own full pass
A randomly initialized default-size network (3 styles), CPU only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _image(h: int, w: int) -> np.ndarray:
    r = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([0.5 + 0.4 * np.sin(x / w * 6.0 + c) * np.cos(y / h * 4.0 - c) for c in range(3)], axis=2)
    return np.clip(base + 0.05 * r.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _downscaled(stylizer, rgb, mix, size: int, overlap: int, stats_size: int) -> np.ndarray:
    """The previous tiling: replayed statistics from a (downscaled) whole-image pass."""
    import torch
    import torch.nn.functional as F

    from pastiche_core.inference.stylizer import DEFAULT_HALO
    from pastiche_core.inference.tiling import feather, tile_grid
    from pastiche_core.model.network import NormStats

    h, w = rgb.shape[:2]
    x = stylizer._tensor(rgb[None])
    scale = min(1.0, stats_size / max(h, w))
    if scale < 1.0:
        x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True,
                          align_corners=False)
    rec = NormStats()
    stylizer._network(x, mix, rec)
    stats = NormStats(rec.recorded)
    del x
    out = np.zeros((h, w, 3), np.float32)
    total = np.zeros((h, w, 1), np.float32)
    for t in tile_grid(h, w, size, overlap):
        y0, y1 = max(0, t.y0 - DEFAULT_HALO) // 4 * 4, min(h, t.y1 + DEFAULT_HALO)
        x0, x1 = max(0, t.x0 - DEFAULT_HALO) // 4 * 4, min(w, t.x1 + DEFAULT_HALO)
        with torch.inference_mode():
            y = stylizer._to_numpy(stylizer._network(stylizer._tensor(rgb[None, y0:y1, x0:x1]), mix, stats))[0]
        fw = feather(t, h, w, overlap)[..., None]
        out[t.y0:t.y1, t.x0:t.x1] += y[t.y0 - y0:t.y1 - y0, t.x0 - x0:t.x1 - x0] * fw
        total[t.y0:t.y1, t.x0:t.x1] += fw
    return out / total


def _child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from pastiche_core import Architecture, Stylizer, new_model
    from pastiche_core.model.modelfile import Style

    model = new_model([Style(n, {}) for n in "abc"], Architecture(num_styles=3), seed=0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n in model.network.norms():
            n.gamma.copy_(1.0 + 0.5 * torch.randn(n.gamma.shape, generator=g))
            n.beta.copy_(0.5 * torch.randn(n.beta.shape, generator=g))
    s = Stylizer(model, device="cpu")
    w, h = (int(v) for v in args.size.split("x"))
    rgb = _image(h, w)
    weights = [0.5, 0.3, 0.2]
    s.stylize(_image(64, 64), weights, tile=0)  # warm-up outside the measurement
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _rss_kb("VmRSS")
    t0 = time.perf_counter()
    if args.mode == "untiled":
        out = s.stylize(rgb, weights, tile=0)
    elif args.mode == "streamed":
        out = s.stylize(rgb, weights, tile=args.tile)
    else:
        out = _downscaled(s, rgb, s.mix_tensor(weights, (h, w)), args.tile, 64, args.stats_size)
    seconds = time.perf_counter() - t0
    peak_mb = (_rss_kb("VmHWM") - base) / 1024
    np.save(args.out, out)
    print(json.dumps({"mode": args.mode, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stats-size", type=int, default=2048)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        return _child(args)
    import tempfile

    rows, outs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("untiled", "streamed", "downscaled"):
            path = str(Path(tmp) / f"{mode}.npy")
            cmd = [sys.executable, __file__, "--mode", mode, "--out", path, "--size", args.size,
                   "--tile", str(args.tile), "--threads", str(args.threads), "--stats-size", str(args.stats_size)]
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            outs[mode] = np.load(path)
    print(f"{args.size}, tile {args.tile}, {args.threads} thread(s), CPU")
    print(f"{'mode':<11} {'seconds':>8} {'peak MB':>8} {'mean diff':>10} {'max diff':>9}")
    for r in rows:
        d = np.abs(outs[r["mode"]] - outs["untiled"])
        print(f"{r['mode']:<11} {r['seconds']:8.1f} {r['peak_mb']:8.0f} {d.mean():10.6f} {d.max():9.4f}")


if __name__ == "__main__":
    main()

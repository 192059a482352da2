"""Tiled against untiled stylization: time, peak memory and difference.

    python benchmarks/tiling.py [--size 1920x1080] [--tile 512] [--threads 1] [--arch light]
    python benchmarks/tiling.py --size 7680x4320 --tile 1024 --modes tiled      # 8K, tiled only

Each mode runs in a fresh process: ``untiled`` (one pass over the whole image,
the fast network) and ``tiled`` (tile=N: the exact, memory-bounded tiled pass
of core/inference/tiled_pass.py). Reported per mode: wall and CPU seconds, the
whole process's peak resident memory (VmHWM) and what it held just before the
call (the model, PyTorch and the input array), the input and output arrays' size, and the difference to the untiled
result when both ran. A randomly initialized network (3 styles), CPU only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _image(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([0.5 + 0.4 * np.sin(x / w * 6.0 + c) * np.cos(y / h * 4.0 - c) for c in range(3)], axis=2)
    del x, y
    base += 0.05 * np.random.default_rng(0).standard_normal((h, w, 3), dtype=np.float32)
    return np.clip(base, 0, 1, out=base)


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from pastiche_core import Architecture, Stylizer, new_model
    from pastiche_core.inference.memory import reuse_freed_memory
    from pastiche_core.model.modelfile import Style


    model = new_model([Style(n, {}) for n in "abc"], Architecture.preset(args.arch, 3), seed=0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n in model.network.norms():
            n.gamma.copy_(1.0 + 0.5 * torch.randn(n.gamma.shape, generator=g))
            n.beta.copy_(0.5 * torch.randn(n.beta.shape, generator=g))
    s = Stylizer(model, device="cpu")
    w, h = (int(v) for v in args.size.split("x"))
    rgb = _image(h, w)  # before keeping freed memory: the picture's temporaries go back to the system
    if not args.fresh_pages:
        reuse_freed_memory()  # as the command line and the worker do
    weights = [0.5, 0.3, 0.2]
    s.stylize(_image(64, 64), weights, tile=0)  # warm-up outside the measurement
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _rss_mb("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    out = s.stylize(rgb, weights, tile=0 if args.mode == "untiled" else args.tile)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _rss_mb("VmHWM")
    if args.out:
        np.save(args.out, out)
    print(json.dumps({"mode": args.mode, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                      "peak_rss_mb": round(peak), "rss_before_mb": round(before),
                      "arrays_mb": round((rgb.nbytes + out.nbytes) / 2**20)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--arch", choices=("light", "full"), default="light")
    ap.add_argument("--modes", default="untiled,tiled", help="comma-separated: untiled, tiled")
    ap.add_argument("--fresh-pages", action="store_true",
                    help="let glibc return freed memory (the default keeps it, as the CLI and worker do)")
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        return _child(args)
    modes = [m for m in args.modes.split(",") if m]
    rows, outs = [], {}
    compare = len(modes) > 1
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            path = str(Path(tmp) / f"{mode}.npy") if compare else ""
            cmd = [sys.executable, __file__, "--mode", mode, "--size", args.size, "--tile", str(args.tile),
                   "--threads", str(args.threads), "--arch", args.arch, "--out", path]
            cmd += ["--fresh-pages"] if args.fresh_pages else []
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            if compare:
                outs[mode] = np.load(path, mmap_mode="r")
        if compare and "untiled" in outs and "tiled" in outs:
            d = np.abs(outs["tiled"] - outs["untiled"])
            rows[modes.index("tiled")].update(mean_diff=float(d.mean()), max_diff=float(d.max()))
        if "untiled" in modes and "tiled" in modes:
            u, t = rows[modes.index("untiled")], rows[modes.index("tiled")]
            t["cpu_ratio_to_untiled"] = round(t["cpu_seconds"] / u["cpu_seconds"], 2)
    print(json.dumps({"size": args.size, "tile": args.tile, "threads": args.threads, "arch": args.arch,
                      "device": "cpu", "freed_memory_kept": not args.fresh_pages, "results": rows}))


if __name__ == "__main__":
    main()

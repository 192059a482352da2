"""Style regions benchmark: how close each region is to its single-mix result,
and what two regions cost against one global mix.

    python benchmarks/regions.py [--model FILE] [--image PHOTO] [--size 1080p]
                                 [--styles A,B] [--repeats 3] [--threads 1] [--json]

The frame is split into a left and a right half, each with one style
(core/inference/regions.py). For each method:
- fidelity: mean absolute difference (0-1 display values) from the whole frame
  stylized with that half's mix alone, over the pixels at least ``--inside``
  px (default 160) inside each half; the issue's target is at most 0.02;
- cost: median CPU time of Stylizer.stylize with the regions, divided by the
  median for one global mix measured in the same run (target: at most 2.2 at
  1080p).
Methods: "composite" (one pass per mix, blended by the masks; the default)
and "blend" (one pass with a per-pixel weight map, the mixes' statistics
pooled over the frame).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pastiche_core import Stylizer
from pastiche_core.inference.memory import reuse_freed_memory
from pastiche_core.inference.regions import StyleRegions
from pastiche_core.io.images import read_image
from pastiche_core.model.modelfile import resolve_model_path

NAMED = {"540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


def picture(path: str | None, w: int, h: int) -> np.ndarray:
    """The photo resized to w x h (display RGB), or a synthetic photo-like scene."""
    if path:
        from PIL import Image

        pixels = read_image(path).pixels[..., :3]
        im = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).resize((w, h), Image.LANCZOS)
        return np.asarray(im, dtype=np.float32) / 255.0
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.random.default_rng(0)
    img = np.stack([0.5 + 0.35 * np.sin(x / w * 7 + c) * np.cos(y / h * 5 - c) for c in range(3)], axis=2)
    for _ in range(30):  # objects with edges
        cx, cy, s = r.uniform(0, w), r.uniform(0, h), r.uniform(0.02, 0.1) * w
        img[(x - cx) ** 2 + (y - cy) ** 2 < s * s] = r.uniform(0.05, 0.95, 3)
    return np.clip(img + 0.03 * r.standard_normal(img.shape), 0, 1).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="model file (default: the bundled default model)")
    ap.add_argument("--image", help="a photo to use (default: a synthetic scene)")
    ap.add_argument("--size", default="1080p", help="540p, 720p, 1080p, 4k or WxH")
    ap.add_argument("--styles", help="the left and the right half's style, 'a,b' (default: the first two)")
    ap.add_argument("--inside", type=int, default=160, help="px inside each half that fidelity is measured on")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    w, h = NAMED.get(args.size) or tuple(int(v) for v in args.size.lower().split("x"))
    stylizer = Stylizer(resolve_model_path(args.model), device="cpu", precision="fp32")
    names = args.styles.split(",") if args.styles else stylizer.style_names[:2]
    left, right = {names[0]: 1.0}, {names[1]: 1.0}
    img = picture(args.image, w, h)
    mask = np.zeros((h, w, 1), np.float32)
    mask[:, :w // 2] = 1.0
    whole_left, whole_right = stylizer.stylize(img, left, tile=0), stylizer.stylize(img, right, tile=0)
    a = slice(0, w // 2 - args.inside)
    b = slice(w // 2 + args.inside, w)
    report: dict = {"size": [w, h], "threads": args.threads, "clock": "cpu", "styles": names,
                    "model": str(resolve_model_path(args.model)), "inside_px": args.inside,
                    "styles_differ_by": float(np.abs(whole_left - whole_right).mean())}
    runs = {"global": lambda: stylizer.stylize(img, left, tile=0)}
    regions = {m: StyleRegions(mask, [left], base=right, method=m) for m in ("composite", "blend")}
    for method, reg in regions.items():
        out = stylizer.stylize(img, reg, tile=0)
        report[method] = {"left_mean_diff": float(np.abs(out[:, a] - whole_left[:, a]).mean()),
                          "right_mean_diff": float(np.abs(out[:, b] - whole_right[:, b]).mean())}
        runs[method] = lambda reg=reg: stylizer.stylize(img, reg, tile=0)
    # Interleaved, so changing machine load hits every method alike.
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, fn in runs.items():
            t = time.process_time()
            fn()
            times[k].append(time.process_time() - t)
    global_s = statistics.median(times["global"])
    report["global_s"] = global_s
    for method in regions:
        report[method]["seconds"] = statistics.median(times[method])
        report[method]["vs_global"] = report[method]["seconds"] / global_s
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{w} x {h}, {Path(report['model']).name}, styles {names[0]} | {names[1]} "
          f"(they differ by {report['styles_differ_by']:.3f} mean), {args.threads} thread(s), CPU time")
    print(f"global mix: {global_s * 1000:.0f} ms")
    for method in ("composite", "blend"):
        r = report[method]
        print(f"{method:9s}: {r['seconds'] * 1000:6.0f} ms = {r['vs_global']:.2f}x global; "
              f"{args.inside} px inside each half, mean diff from the single-mix result "
              f"{r['left_mean_diff']:.4f} | {r['right_mean_diff']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

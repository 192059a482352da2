"""The 400-step probes that chose stage B's loss settings, and their comparison sheet.

    python examples/default_model/look_probes.py --assets ../shared/assets --train   # run the probes
    python examples/default_model/look_probes.py                                     # rebuild the sheet

Each probe continues from stage A's weights (stage_a.safetensors) for 400 steps
with one change of loss settings, one thread each; the sheet shows two held-out
photos stylized at 640 pixels wide in three styles by every probe, and the
JSON beside it holds each probe's last logged losses (docs/training.md, section 9).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / ".train" / "look"
OUT = ROOT / "docs" / "images" / "look-network-probes"
# name: (content layer, style weight, total-variation weight)
PROBES = {
    "w25": ("relu4_1", 25, None), "w10": ("relu4_1", 10, None), "w5": ("relu4_1", 5, None),
    "r21w10": ("relu2_1", 10, None), "r31w10": ("relu3_1", 10, None), "r31w5": ("relu3_1", 5, None),
    "r31w5tv10": ("relu3_1", 5, 10), "r31w5tv40": ("relu3_1", 5, 40),
}
PHOTOS = ("kodak_kodim17.jpg", "kodak_kodim07.jpg")
STYLES = ("starry_night", "the_scream", "sunflowers")


def train_probe(name: str, assets: Path) -> subprocess.Popen:
    layer, weight, tv = PROBES[name]
    cmd = [sys.executable, "-m", "pastiche_core", "train", "--styles", str(assets / "train-ready" / "styles"),
           "--styles-manifest", str(HERE / "styles.json"), "--content", str(ROOT / ".train" / "content"),
           "--vgg", str(assets / "vgg" / "vgg19-imagenet-caffe.safetensors"),
           "--out", str(WORK / f"{name}.safetensors"), "--checkpoint", str(WORK / f"{name}.ckpt.safetensors"),
           "--log", str(WORK / f"{name}.log.jsonl"), "--steps", "400", "--device", "cpu", "--workers", "0",
           "--arch", "light", "--crop-size", "128", "--style-size", "256", "--batch-size", "4",
           "--content-layer", layer, "--style-loss-weight", str(weight), "--lr", "1e-3", "--seed", "1",
           "--init", str(HERE / "stage_a.safetensors"), "--quiet",
           *(["--tv-weight", str(tv)] if tv is not None else [])]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def sheet() -> None:
    sys.path.insert(0, str(ROOT))
    from pastiche_core import Stylizer

    cell = 200
    photos = []
    for name in PHOTOS:
        im = Image.open(ROOT / ".train" / "holdout" / name).convert("RGB")
        im = im.resize((640, round(im.height * 640 / im.width) // 4 * 4), Image.LANCZOS)
        photos.append(np.asarray(im, dtype=np.float32) / 255)
    rows, losses = [], {}
    for name, (layer, weight, tv) in PROBES.items():
        s = Stylizer(WORK / f"{name}.safetensors", device="cpu")
        cells = [s.stylize(p, {st: 1.0}) for p in photos for st in STYLES]
        ch = round(photos[0].shape[0] * cell / 640)
        row = Image.new("RGB", (cell * len(cells), ch + 18), "white")
        for i, c in enumerate(cells):
            row.paste(Image.fromarray((c * 255 + 0.5).clip(0, 255).astype(np.uint8)).resize((cell, ch), Image.LANCZOS),
                      (i * cell, 18))
        label = f"{name}: content {layer}, style weight {weight}" + (f", tv {tv}" if tv else "")
        ImageDraw.Draw(row).text((4, 3), label, fill="black")
        rows.append(row)
        last = json.loads((WORK / f"{name}.log.jsonl").read_text().splitlines()[-1])
        losses[name] = {"content_layer": layer, "style_weight": weight, "tv_weight": tv,
                        **{k: round(last[k], 4) for k in ("step", "content", "style", "tv")}}
    out = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height
    out.save(OUT.with_suffix(".jpg"), quality=75)
    OUT.with_suffix(".json").write_text(json.dumps({"photos": PHOTOS, "styles": STYLES, "probes": losses},
                                                   indent=1) + "\n")
    print(f"wrote {OUT.with_suffix('.jpg')} and .json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default=str(ROOT.parent / "shared" / "assets"))
    ap.add_argument("--train", action="store_true", help="run the probes first (three at a time)")
    args = ap.parse_args()
    if args.train:
        WORK.mkdir(parents=True, exist_ok=True)
        names = list(PROBES)
        for i in range(0, len(names), 3):
            for p in [train_probe(n, Path(args.assets)) for n in names[i:i + 3]]:
                p.wait()
    sheet()
    return 0


if __name__ == "__main__":
    sys.exit(main())

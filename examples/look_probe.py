"""The look experiment behind the default model's loss settings (docs/training.md, section 8).

    python examples/look_probe.py --assets ../shared/assets --out docs/images/look-gatys-probe.jpg

Gatys optimization (2 scales x 80 L-BFGS steps from the photo, 320 pixels) of two
pictures in three paintings' styles under candidate settings: the content layer,
the style weight and the style image's scale relative to the result (which sets
the stroke size). Rows: the demo render, a Kodak photo. Columns: the picture, then
per painting one result per candidate. Losses go to a JSON file beside the sheet.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pastiche_core.perceptual.losses import LossConfig
from pastiche_core.perceptual.vgg import load_vgg
from pastiche_core.training.optimize import OptimizeSettings, optimize

HERE = Path(__file__).resolve().parent
CANDIDATES = {"A relu3_1 w5 s1": ("relu3_1", 5.0, 1.0), "B relu4_1 w25 s2": ("relu4_1", 25.0, 2.0),
              "C relu4_1 w10 s2": ("relu4_1", 10.0, 2.0), "E relu3_1 w25 s2": ("relu3_1", 25.0, 2.0)}
STYLES = {"starry night": "vangogh_the_starry_night_1889.jpg", "great wave": "hokusai_great_wave_off_kanagawa_c1831.jpg",
          "the scream": "munch_the_scream_1893.jpg"}
SIZE, CAPTION = 320, 18


def load(path: Path, long_side: int) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    s = long_side / max(im.size)
    return np.asarray(im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS), np.float32) / 255


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", required=True, help="the project's asset folder (vgg/, train-ready/, content/)")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "images" / "look-gatys-probe.jpg"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    assets = Path(args.assets)
    vgg = load_vgg(assets / "vgg" / "vgg19-imagenet-caffe.safetensors",
                   ("relu1_1", "relu2_1", "relu3_1", "relu4_1"), None, torch.device("cpu"))
    photos = [HERE / "demo.png", assets / "content" / "kodak" / "kodim23.png"]
    rows, losses = [], {}
    for photo in photos:
        content = load(photo, SIZE)
        row = [(content, photo.stem)]
        for style_name, file in STYLES.items():
            style = load(assets / "train-ready" / "styles" / file, 1024)
            for cand, (layer, weight, scale) in CANDIDATES.items():
                t = time.time()
                settings = OptimizeSettings(size=SIZE, scales=2, iterations=80, style_scale=scale,
                                            loss=LossConfig(content_layer=layer, style_weight=weight))
                result = optimize(content, [(style, 1.0)], vgg, settings)
                losses[f"{photo.stem} | {style_name} | {cand}"] = result.losses
                print(f"{photo.stem} {style_name} {cand}: {time.time() - t:.0f} s", flush=True)
                row.append((np.clip(result.image, 0, 1), f"{style_name}: {cand.split()[0]}"))
        rows.append(row)
    h = max(im.shape[0] for row in rows for im, _ in row)
    sheet = Image.new("RGB", (len(rows[0]) * SIZE, len(rows) * (h + CAPTION)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        for c, (im, label) in enumerate(row):
            sheet.paste(Image.fromarray((im * 255).round().astype(np.uint8)), (c * SIZE, r * (h + CAPTION)))
            draw.text((c * SIZE + 4, r * (h + CAPTION) + h + 3), label, fill=(30, 30, 30))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=88) if out.suffix.lower() in (".jpg", ".jpeg") else sheet.save(out, optimize=True)
    out.with_suffix(".json").write_text(json.dumps({"candidates": CANDIDATES, "losses": losses}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

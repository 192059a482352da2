"""Rebuild docs/images/gallery-gatys.png: the demo render and four paintings' styles
applied by Gatys optimization (`pastiche optimize`), side by side.

    python examples/gatys_gallery.py --styles ../shared/assets/styles --vgg vgg19.safetensors

The paintings and the VGG weights are not part of the repository; point to your copies.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
PAINTINGS = [
    ("vangogh_the_starry_night_1889.jpg", "The Starry Night", ["--scales", "3", "--iterations", "200"]),
    ("hokusai_great_wave_off_kanagawa_c1831.jpg", "The Great Wave", ["--scales", "2", "--iterations", "120"]),
    ("munch_the_scream_1893.jpg", "The Scream", ["--scales", "2", "--iterations", "120"]),
    ("kandinsky_composition_vii_1913.jpg", "Composition VII", ["--scales", "2", "--iterations", "120"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", required=True, help="folder with the paintings")
    parser.add_argument("--vgg", required=True, help="VGG-19 safetensors file")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "images" / "gallery-gatys.png"))
    args = parser.parse_args()
    content = HERE / "demo.png"
    tiles = [(content, "render (Cycles)")]
    with tempfile.TemporaryDirectory() as tmp:
        for name, label, extra in PAINTINGS:
            out = Path(tmp) / name.replace(".jpg", ".png")
            subprocess.run([sys.executable, "-m", "pastiche_core", "optimize", str(content),
                            "--style", str(Path(args.styles) / name), "--out", str(out), "--size", "256",
                            "--vgg", args.vgg, "--quiet", *extra], check=True)
            tiles.append((out, label))
        w, h, caption = 256, 192, 22
        sheet = Image.new("RGB", (w * len(tiles) + 4 * (len(tiles) - 1), h + caption), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for i, (path, label) in enumerate(tiles):
            x = i * (w + 4)
            sheet.paste(Image.open(path).convert("RGB").resize((w, h), Image.LANCZOS), (x, 0))
            draw.text((x + (w - draw.textlength(label)) / 2, h + 5), label, fill=(30, 30, 30))
        sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

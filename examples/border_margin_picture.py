"""Before and after the border margin: the demo render's top-left corner in four styles.

    python examples/border_margin_picture.py [--out docs/images/border-margin.jpg]

Top row: the network run on the picture as it is (margin 0), which paints a
frame of lines along the edges. Bottom row: the picture mirrored out by the
margin (inference/padding.py) and cropped back, what the Stylizer does. Each
corner is enlarged 2x with nearest-neighbour so single pixels stay visible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
STYLES = ("the_kiss", "great_wave", "shipwreck", "water_lilies")
CORNER = (0, 0, 160, 112)  # x0, y0, x1, y1 of the demo render
GAP, CAPTION = 4, 20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "images" / "border-margin.jpg"))
    ap.add_argument("--margin", type=int, help="the bottom row's margin (default: the Stylizer's)")
    args = ap.parse_args()

    from pastiche_core import Stylizer
    from pastiche_core.inference import padding
    from pastiche_core.model.modelfile import resolve_model_path

    stylizer = Stylizer(resolve_model_path(None), device="cpu")
    demo = np.asarray(Image.open(HERE / "demo.png").convert("RGB"), dtype=np.float32) / 255.0
    cw, ch = (CORNER[2] - CORNER[0]) * 2, (CORNER[3] - CORNER[1]) * 2
    sheet = Image.new("RGB", (len(STYLES) * (cw + GAP) - GAP, 2 * (ch + CAPTION + GAP)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, m in enumerate((0, padding.BORDER_MARGIN if args.margin is None else args.margin)):
        stylizer.border_margin = m
        for col, name in enumerate(STYLES):
            out = stylizer.stylize(demo, {name: 1.0})
            tile = Image.fromarray(np.round(out * 255).astype(np.uint8)).crop(CORNER)
            x, y = col * (cw + GAP), row * (ch + CAPTION + GAP)
            sheet.paste(tile.resize((cw, ch), Image.Resampling.NEAREST), (x, y))
            label = f"{name}: " + ("no margin" if m == 0 else f"{m}-pixel margin")
            draw.text((x + 4, y + ch + 4), label, fill="black")
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path, quality=90)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

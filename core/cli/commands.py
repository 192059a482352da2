"""The `pastiche` command line: stylize files, inspect models, train.

Each subcommand parses its arguments and calls the library; errors the user
can fix (PasticheError) are printed as one line, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import ImageError, PasticheError
from ..inference.memory import reuse_freed_memory
from ..inference.mixing import parse_style_args
from ..io.images import expand_inputs, read_image, write_image
from ..model.modelfile import load_model, resolve_model_path
from ..version import __version__
from .training import register_commands as register_training_commands


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="list a model's styles and credits")
    p.add_argument("model", nargs="?", help="model file (default: the bundled default model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    path = resolve_model_path(args.model)
    model = load_model(path)
    desc = model.describe()
    if args.json:
        print(json.dumps({"model": str(path), **desc}, indent=2))
        return 0
    arch = model.architecture
    print(f"{path}  ({len(model.styles)} styles, channels {list(arch.channels)}, {arch.num_residual} residual blocks)")
    width = max(len(s.name) for s in model.styles)
    for s in model.styles:
        c = s.credit
        credit = ", ".join(x for x in (c.get("artist"), c.get("title"), c.get("year"), c.get("licence")) if x)
        print(f"  {s.name:<{width}}  {credit}")
    if model.training:
        print("training: " + ", ".join(f"{k}={v}" for k, v in model.training.items() if not isinstance(v, (dict, list))))
    return 0


def _add_stylize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stylize", help="stylize images with a mix of styles")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--model", help="model file (default: the bundled default model)")
    p.add_argument("--style", action="append", default=[], metavar="NAME=WEIGHT",
                   help="a style and its weight; repeat to mix (weights are normalized)")
    p.add_argument("--strength", type=float, default=1.0, help="0 = original, 1 = full style")
    p.add_argument("--preserve-color", action="store_true", help="keep the original colours, transfer luminance only")
    p.add_argument("--brush-size", type=float, default=1.0, metavar="S",
                   help="stroke scale, 0.5-4 (1 = as trained; 2 = strokes twice as large, ~4x faster)")
    p.add_argument("--detail", type=float, default=0.0, metavar="D",
                   help="0-1: how much of the original's fine structure is put back")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in pixels (default: automatic for large images; 0 = never tile)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    p.add_argument("--format", choices=["same", "png", "jpg", "tif", "exr"], default="same",
                   help="output format (default: same as the input)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (never inputs)")
    p.set_defaults(func=cmd_stylize)


def _output_path(src: Path, out_dir: Path, fmt: str) -> Path:
    suffix = src.suffix.lower() if fmt == "same" else "." + fmt
    return out_dir / (src.stem + suffix)


def cmd_stylize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..inference.brush import check_brush
    from ..inference.stylizer import Stylizer

    check_brush(args.brush_size, args.detail)  # before loading anything
    inputs = expand_inputs(args.inputs)
    out_dir = Path(args.out)
    targets = [_output_path(p, out_dir, args.format) for p in inputs]
    resolved_inputs = {p.resolve() for p in inputs}
    seen: dict[Path, Path] = {}
    for src, dst in zip(inputs, targets, strict=True):
        if dst.resolve() in resolved_inputs:
            raise ImageError(f"refusing to overwrite the input {src}: choose another --out folder")
        if dst.resolve() in seen:
            raise ImageError(f"{src} and {seen[dst.resolve()]} would both be written to {dst}")
        seen[dst.resolve()] = src
        if dst.exists() and not args.overwrite:
            raise ImageError(f"{dst} already exists (use --overwrite to replace outputs)")
    stylizer = Stylizer(resolve_model_path(args.model), device=args.device, precision=args.precision)
    if args.style:
        weights: dict[str, float] = parse_style_args(args.style)
    else:
        weights = {stylizer.style_names[0]: 1.0}
        if len(stylizer.style_names) > 1:
            print(f"pastiche: no --style given, using {stylizer.style_names[0]!r}; the model has: "
                  f"{', '.join(stylizer.style_names)}", file=sys.stderr)
    mix = stylizer.mix_vector(weights)  # validate before reading any image
    mix_text = ", ".join(f"{n}={w:.2f}" for n, w in zip(stylizer.style_names, mix, strict=True) if w > 0)
    print(f"pastiche: {len(inputs)} image(s) on {stylizer.placement.describe()}; mix {mix_text}", file=sys.stderr)
    for src, dst in tqdm(list(zip(inputs, targets, strict=True)), unit="img", disable=len(inputs) < 2):
        img = read_image(src)
        out = stylizer.stylize(img.pixels, mix, colour_space=img.colour_space,  # type: ignore[arg-type]
                               strength=args.strength, preserve_color=args.preserve_color, tile=args.tile,
                               brush_size=args.brush_size, detail=args.detail)
        if dst.suffix == ".exr" and img.colour_space == "srgb":
            from ..inference.colour import srgb_to_linear
            out = out.copy()
            out[..., :3] = srgb_to_linear(out[..., :3])
        elif dst.suffix != ".exr" and img.colour_space == "linear":
            from ..inference.colour import linear_to_srgb
            out = out.copy()
            out[..., :3] = linear_to_srgb(out[..., :3])
        write_image(dst, out, bit_depth=16 if img.bit_depth >= 16 else 8)
        if len(inputs) < 2:
            print(f"wrote {dst}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pastiche", description="Real-time multi-style neural style transfer.")
    parser.add_argument("--version", action="version", version=f"pastiche {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_stylize(sub)
    _add_info(sub)
    register_training_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    reuse_freed_memory()  # many frames per process: keep freed pages for reuse (inference/memory.py)
    try:
        return int(args.func(args) or 0)
    except PasticheError as e:
        print(f"pastiche: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pastiche: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `pastiche info | head`: the reader left; stop quietly, as Unix tools do
        # (stdout goes to devnull so the interpreter's final flush cannot fail again).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `pastiche` command line: stylize files, inspect models, train.

Each subcommand parses its arguments and calls the library; errors the user
can fix (PasticheError) are printed as one line, with exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ImageError, OutputError, PasticheError
from ..inference.memory import reuse_freed_memory
from ..inference.mixing import parse_style_args
from ..io.atomic import TEMP_PREFIX, remove_stale_temporaries
from ..io.images import READ_SUFFIXES, LoadedImage, expand_inputs, read_image, write_image
from ..model.modelfile import load_model, resolve_model_path
from ..version import __version__
from .terminal import printable
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
    if args.json:  # JSON escapes control characters itself
        print(json.dumps({"model": str(path), **desc}, indent=2))
        return 0
    arch = model.architecture
    print(printable(f"{path}  ({len(model.styles)} styles, channels {list(arch.channels)}, "
                    f"{arch.num_residual} residual blocks)"))
    names = [printable(s.name) for s in model.styles]
    width = max(len(n) for n in names)
    for name, s in zip(names, model.styles, strict=True):
        c = s.credit
        credit = ", ".join(x for x in (c.get("artist"), c.get("title"), c.get("year"), c.get("licence")) if x)
        print(f"  {name:<{width}}  {printable(credit)}")
    if model.training:
        print(printable("training: " + ", ".join(
            f"{k}={v}" for k, v in model.training.items() if not isinstance(v, (dict, list)))))
    if model.checksum == "verified":
        print("checksum: SHA-256 of the weights verified")
    else:
        print("checksum: none (written by an older Pastiche; damage to the weights cannot be detected; "
              "re-save it to add one)")
    return 0


def read_style_maps(specs: list[str], base, style_names: list[str], method: str):
    """StyleRegions from --style-map items (None without any), checked against
    the model's styles before any image is stylized; sizes are checked per image."""
    from ..inference.regions import (
        StyleRegions,
        mask_from_pixels,
        parse_mix_text,
        read_index_mapping,
        regions_from_index,
    )

    if not specs:
        return None
    masks: list[np.ndarray] = []
    mixes: list = []
    names: list[str] = []
    for spec in specs:
        path, sep, what = spec.rpartition(":")
        if not sep or not path or not what:
            raise PasticheError(f"bad --style-map {spec!r}: expected MASK:MIX or INDEX:MAPPING.json")
        try:
            img = read_image(path)
        except PasticheError as e:
            raise PasticheError(f"--style-map {path}: {e}") from None
        if what.lower().endswith(".json"):
            # Index images hold whole numbers: 8- or 16-bit grey values as read.
            scale = 65535.0 if img.bit_depth == 16 else 255.0
            index = np.rint(img.pixels[..., 0] * scale).astype(np.int64)
            part = regions_from_index(index, read_index_mapping(what), base, label=path)
            masks.extend(np.moveaxis(part.coverage, 2, 0))
            mixes.extend(part.mixes)
            names.extend(part.names)
        else:
            masks.append(mask_from_pixels(img.pixels))
            mixes.append(parse_mix_text(what))
            names.append(path)
    shapes = {m.shape for m in masks}
    if len(shapes) > 1:
        raise PasticheError("the --style-map images differ in size: " + ", ".join(
            f"{n} is {m.shape[1]} x {m.shape[0]}" for n, m in zip(names, masks, strict=True)))
    regions = StyleRegions(np.stack(masks, axis=2), mixes, base=base, method=method,  # type: ignore[arg-type]
                           names=tuple(names))
    regions.layers(masks[0].shape, style_names, 1.0)  # unknown styles, overlaps: before any image
    return regions


def _add_stylize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stylize", help="stylize images with a mix of styles")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--model", help="model file (default: the bundled default model)")
    p.add_argument("--style", action="append", default=[], metavar="NAME=WEIGHT",
                   help="a style and its weight; repeat to mix (weights are normalized)")
    p.add_argument("--style-map", action="append", default=[], metavar="MASK:MIX",
                   help="a style region: a mask image (white = inside) and its mix, e.g. "
                        "'hero.png:the_scream' or 'sky.png:starry_night=0.7,great_wave=0.3'; repeat for "
                        "more regions. Or an index image and a JSON mapping from index to mix, "
                        "'ids.png:ids.json'. --style gives the mix of the rest")
    p.add_argument("--region-method", choices=["composite", "blend"], default="composite",
                   help="composite (default): one pass per mix, each region exactly its mix; "
                        "blend: one pass, mixes leak between regions")
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
    p.add_argument("--skip-existing", action="store_true",
                   help="leave images whose output already exists alone (resuming a folder or farm run)")
    p.set_defaults(func=cmd_stylize)


def _output_path(src: Path, out_dir: Path, fmt: str) -> Path:
    if fmt != "same":
        suffix = "." + fmt
    elif src.suffix.lower() in READ_SUFFIXES:
        suffix = src.suffix.lower()
    else:  # no extension (the reader goes by the file's content): write PNG
        suffix = ".png"
    return out_dir / (src.stem + suffix)


def _prepare_output_folder(out_dir: Path) -> None:
    """Create --out and prove it is writable before any image is computed."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX + "probe.", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"cannot write to the output folder {out_dir}: {e.strerror or e}") from None
    remove_stale_temporaries(out_dir)  # left by a run that was killed mid-write


def _plan(inputs: list[Path], out_dir: Path, args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(input, output) pairs to compute; every refusal is found before any work."""
    targets = [_output_path(p, out_dir, args.format) for p in inputs]
    resolved_inputs = {p.resolve() for p in inputs}
    seen: dict[Path, Path] = {}
    plan = []
    for src, dst in zip(inputs, targets, strict=True):
        if dst.resolve() in resolved_inputs:
            raise ImageError(f"refusing to overwrite the input {src}: choose another --out folder")
        if dst.resolve() in seen:
            raise ImageError(f"{src} and {seen[dst.resolve()]} would both be written to {dst}")
        seen[dst.resolve()] = src
        if dst.is_dir():
            raise OutputError(f"cannot write {dst}: a folder of that name is in the way")
        if dst.exists() and args.skip_existing:
            continue
        if dst.exists() and not args.overwrite:
            raise ImageError(f"{dst} already exists (use --overwrite to replace outputs, "
                             "or --skip-existing to keep them)")
        plan.append((src, dst))
    return plan


def _for_output(out: np.ndarray, img: LoadedImage, dst: Path) -> np.ndarray:
    """The stylized pixels (in the input's colour space and alpha convention) in the
    output format's: EXR is linear and premultiplied, the others sRGB and straight."""
    from ..inference import colour

    to_exr = dst.suffix == ".exr"
    linear = img.colour_space == "linear"
    alpha = out.shape[2] == 4
    if to_exr == linear and img.premultiplied == (to_exr and alpha):
        return out
    rgb = colour.unpremultiply(out) if alpha and img.premultiplied else out[..., :3]
    if linear and not to_exr:
        rgb = colour.linear_to_srgb(rgb)
    elif to_exr and not linear:
        rgb = colour.srgb_to_linear(rgb)
    if not alpha:
        return rgb
    if to_exr:
        rgb = colour.premultiply(rgb, out[..., 3])
    return np.concatenate([rgb, out[..., 3:4]], axis=2)


def cmd_stylize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..inference.arguments import check_options
    from ..inference.brush import check_brush
    from ..inference.stylizer import Stylizer

    if args.overwrite and args.skip_existing:
        raise PasticheError("--overwrite and --skip-existing contradict each other: choose one")
    # Options that are wrong for every image fail once, before loading anything.
    check_brush(args.brush_size, args.detail)
    check_options(strength=args.strength, tile=args.tile)
    inputs = expand_inputs(args.inputs)
    out_dir = Path(args.out)
    _prepare_output_folder(out_dir)
    plan = _plan(inputs, out_dir, args)
    skipped = len(inputs) - len(plan)
    if skipped:
        print(f"pastiche: skipping {skipped} image(s) whose output exists (--skip-existing)", file=sys.stderr)
    if not plan:
        return 0
    stylizer = Stylizer(resolve_model_path(args.model), device=args.device, precision=args.precision)
    if args.style:
        weights: dict[str, float] = parse_style_args(args.style, stylizer.style_names)
    else:
        weights = {stylizer.style_names[0]: 1.0}
        if len(stylizer.style_names) > 1:
            print(printable(f"pastiche: no --style given, using {stylizer.style_names[0]!r}; the model has: "
                            f"{', '.join(stylizer.style_names)}"), file=sys.stderr)
    mix = stylizer.mix_vector(weights)  # validate before reading any image
    mix_text = ", ".join(f"{n}={w:.2f}" for n, w in zip(stylizer.style_names, mix, strict=True) if w > 0)
    regions = read_style_maps(args.style_map, mix, stylizer.style_names, args.region_method)
    if regions is not None:
        mix_text += f"; {len(regions.mixes)} style region(s) ({args.region_method})"
    print(printable(f"pastiche: {len(plan)} image(s) on {stylizer.placement.describe()}; mix {mix_text}"),
          file=sys.stderr)
    failed: list[Path] = []
    for src, dst in tqdm(plan, unit="img", disable=len(plan) < 2):
        try:
            img = read_image(src)
            for note in img.notes:
                print(printable(f"pastiche: note: {src}: {note}"), file=sys.stderr)
            out = stylizer.stylize(img.pixels, mix if regions is None else regions, colour_space=img.colour_space,  # type: ignore[arg-type]
                                   premultiplied=img.premultiplied, strength=args.strength,
                                   preserve_color=args.preserve_color, tile=args.tile,
                                   brush_size=args.brush_size, detail=args.detail)
            write_image(dst, _for_output(out, img, dst), bit_depth=img.bit_depth,
                        half=img.half and dst.suffix == ".exr")
        except PasticheError as e:
            # One bad file must not stop a folder run: name it, go on, fail at the end.
            print(printable(f"pastiche: error: {src}: {e}"), file=sys.stderr)
            failed.append(src)
            if isinstance(e, OutputError) and e.errno == errno.ENOSPC:
                print("pastiche: the disk is full: stopping", file=sys.stderr)
                failed.extend(s for s, _ in plan[plan.index((src, dst)) + 1:])
                break
            continue
        if len(plan) < 2:
            print(f"wrote {dst}", file=sys.stderr)
    if failed:
        print(printable(f"pastiche: {len(failed)} of {len(plan)} image(s) failed: "
                        + ", ".join(str(p) for p in failed)), file=sys.stderr)
        return 2
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
        print(printable(f"pastiche: error: {e}"), file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `pastiche info | head`: the reader left; stop quietly, as Unix tools do
        # (stdout goes to devnull so the interpreter's final flush cannot fail again).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a model or input the OS refuses (permissions, a vanished disk)
        where = f": {e.filename}" if e.filename else ""
        print(printable(f"pastiche: error: {e.strerror or e}{where}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pastiche: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

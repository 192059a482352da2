"""CLI subcommands of the training side: train, add-style, optimize, evaluate."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import PasticheError
from ..io.atomic import write_text_atomic
from ..model.network import ARCHITECTURE_PRESETS
from ..perceptual.losses import LossConfig

_VGG_HELP = ("VGG-19 weights as safetensors (default: $PASTICHE_VGG); see docs/training.md "
             "for where to get them")


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the training subcommands to the ``pastiche`` parser."""
    _add_train(subparsers)
    _add_add_style(subparsers)
    _add_optimize(subparsers)
    _add_evaluate(subparsers)
    _add_convert_vgg(subparsers)


# -- shared options ----------------------------------------------------------------

def _vgg_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vgg", metavar="PATH", help=_VGG_HELP)
    p.add_argument("--vgg-convention", choices=("caffe", "torchvision"),
                   help="input convention of the VGG weights, if the file's metadata does not say")


def _loss_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("losses (defaults: docs/training.md)")
    g.add_argument("--content-layer", metavar="LAYER", help="VGG-19 ReLU for the content loss, e.g. relu3_1")
    g.add_argument("--style-layers", metavar="L1,L2,..", help="VGG-19 ReLUs for the style loss")
    g.add_argument("--content-weight", type=float, metavar="W")
    g.add_argument("--style-loss-weight", type=float, metavar="W", help="weight of the whole style term")
    g.add_argument("--tv-weight", type=float, metavar="W", help="total variation weight (0 = off)")


def _loss_config(args: argparse.Namespace, base: LossConfig | None = None) -> LossConfig | None:
    """A LossConfig with the user's overrides, or None when nothing was overridden and base is None."""
    over = {}
    if args.content_layer:
        over["content_layer"] = args.content_layer
    if args.style_layers:
        over["style_layers"] = tuple(s.strip() for s in args.style_layers.split(",") if s.strip())
    for flag, key in (("content_weight", "content_weight"), ("style_loss_weight", "style_weight"),
                      ("tv_weight", "tv_weight")):
        if getattr(args, flag) is not None:
            over[key] = getattr(args, flag)
    if not over and base is None:
        return None
    d = (base or LossConfig()).to_dict()
    d.update(over)
    if "style_layers" in over:
        d["layer_weights"] = []
    return LossConfig.from_dict(d)


def _crop_args(p: argparse.ArgumentParser, steps: int, lr: float) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--content", required=True, metavar="DIR", help="folder of photos (searched recursively)")
    g.add_argument("--steps", type=int, default=steps)
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    g.add_argument("--crop-size", type=int, default=256, help="training crop side, pixels")
    g.add_argument("--scale-jitter", type=float, nargs=2, default=(0.8, 1.6), metavar=("MIN", "MAX"),
                   help="source square side as a multiple of the crop size")
    g.add_argument("--photo-side", type=int, default=512, help="photos are first reduced to this short side")
    g.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    g.add_argument("--style-size", type=int, default=None,
                   help="short side the style image is used at (default: the crop size)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 autocast on CUDA (fp16 where bf16 is missing) and on CPUs with native "
                        "bf16 (AVX512-BF16, AMX), fp32 elsewhere")
    g.add_argument("--workers", type=int, default=-1, help="data loader processes (-1: auto)")
    g.add_argument("--log", metavar="PATH", help="losses as JSON lines (default: OUT.log.jsonl)")
    g.add_argument("--log-every", type=int, default=50, metavar="STEPS")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _crop_settings(args: argparse.Namespace):
    from ..training.data import CropSettings

    return CropSettings(size=args.crop_size, scale_min=args.scale_jitter[0], scale_max=args.scale_jitter[1],
                        photo_side=args.photo_side, flip=not args.no_flip)


def _int_list(text: str, n: int, flag: str, example: str) -> tuple[int, ...]:
    try:
        values = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise PasticheError(f"{flag} expects {n} integers like {example}, got {text!r}") from None
    if len(values) != n:
        raise PasticheError(f"{flag} expects {n} integers like {example}, got {text!r}")
    return values


def _name_weight(item: str, what: str) -> tuple[str, float]:
    """'X=W' -> (X, W); plain 'X' -> (X, 1.0). Only a trailing '=number' counts as a weight."""
    head, sep, tail = item.rpartition("=")
    if sep:
        try:
            return head, float(tail)
        except ValueError:
            pass
    if what == "weight":
        raise PasticheError(f"--style-weight expects NAME=WEIGHT, got {item!r}")
    return item, 1.0


# -- train ---------------------------------------------------------------------------

def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one network on several styles",
                       description="Train one conditional-instance-norm network on all the given styles.")
    p.add_argument("--styles", required=True, nargs="+", metavar="DIR_OR_FILE",
                   help="style images, or folders of them (a styles.json inside names and credits them)")
    p.add_argument("--out", required=True, metavar="MODEL.safetensors")
    p.add_argument("--styles-manifest", metavar="JSON", help="names and credits (file, name, artist, title, year, licence)")
    p.add_argument("--style-weight", action="append", default=[], metavar="NAME=W",
                   help="per-style coefficient: multiplies that style's style loss (repeatable)")
    _vgg_args(p)
    _crop_args(p, steps=40000, lr=1e-3)
    _loss_args(p)
    g = p.add_argument_group("network and checkpoints")
    g.add_argument("--arch", default="full", choices=sorted(ARCHITECTURE_PRESETS),
                   help="network preset: full (Dumoulin et al.) or light (fast on CPUs); the flags "
                        "below override single fields")
    g.add_argument("--channels", metavar="C1,C2,C3", help="channels of the three downsampling stages")
    g.add_argument("--up-channels", metavar="U1,U2", help="channels of the two upsampling stages")
    g.add_argument("--residual", type=int, help="residual blocks")
    g.add_argument("--first-kernel", type=int, help="kernel size of the first convolution (odd)")
    g.add_argument("--last-kernel", type=int, help="kernel size of the last convolution (odd)")
    g.add_argument("--checkpoint", metavar="PATH", help="default: OUT.ckpt.safetensors")
    g.add_argument("--checkpoint-minutes", type=float, default=5.0)
    g.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS", help="also every N steps")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint exactly")
    g.add_argument("--init", metavar="MODEL.safetensors",
                   help="start from this trained model's weights (same styles and architecture), e.g. to "
                        "continue with other loss settings; ignored with --resume")
    g.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels (slower on GPU; makes GPU resumes bit-exact)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.train import TrainConfig, train

    arch = dict(ARCHITECTURE_PRESETS[args.arch])
    if args.channels is not None:
        arch["channels"] = _int_list(args.channels, 3, "--channels", "32,64,128")
    if args.up_channels is not None:
        arch["up_channels"] = _int_list(args.up_channels, 2, "--up-channels", "64,32")
    for flag, key in (("residual", "num_residual"), ("first_kernel", "first_kernel"),
                      ("last_kernel", "last_kernel")):
        if getattr(args, flag) is not None:
            arch[key] = getattr(args, flag)
    if args.channels is not None and args.up_channels is None:
        arch["up_channels"] = None  # mirror the given downsampling channels
    cfg = TrainConfig(
        styles=args.styles, content=args.content, out=args.out, vgg=args.vgg, vgg_convention=args.vgg_convention,
        styles_manifest=args.styles_manifest,
        style_coefficients=dict(_name_weight(s, "weight") for s in args.style_weight),
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, crop=_crop_settings(args),
        style_size=args.style_size or args.crop_size, loss=_loss_config(args, LossConfig()),
        channels=arch["channels"], num_residual=arch["num_residual"], up_channels=arch.get("up_channels"),
        first_kernel=arch.get("first_kernel", 9), last_kernel=arch.get("last_kernel", 9),
        seed=args.seed, device=args.device,
        precision=args.precision, deterministic=args.deterministic, workers=args.workers,
        checkpoint=args.checkpoint, checkpoint_minutes=args.checkpoint_minutes,
        checkpoint_every=args.checkpoint_every, log=args.log, log_every=args.log_every, resume=args.resume,
        progress=not args.quiet, init=args.init)
    result = train(cfg)
    final = result.final
    print(f"wrote {result.model_path} ({len(result.model.styles)} styles, {result.steps} steps"
          + (f", final loss {final['loss']:.4g}" if "loss" in final else "") + ")", file=sys.stderr)
    print(f"checkpoint {result.checkpoint_path}; losses logged to {result.log_path}", file=sys.stderr)
    return 0


# -- add-style ---------------------------------------------------------------------------

def _add_add_style(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add-style", help="add a style to a trained model (gamma/beta only)",
                       description="Learn a new style's instance-norm parameters with every shared weight "
                                   "frozen; existing styles stay bit-identical.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--style", required=True, metavar="IMAGE")
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True, metavar="NEW_MODEL.safetensors")
    for key in ("artist", "title", "year", "licence", "source"):
        p.add_argument(f"--{key}", help=f"credit: {key}")
    p.add_argument("--style-weight", type=float, default=1.0, metavar="W",
                   help="style coefficient: multiplies this style's style loss")
    _vgg_args(p)
    _crop_args(p, steps=1000, lr=1e-2)
    _loss_args(p)
    p.set_defaults(func=cmd_add_style)


def cmd_add_style(args: argparse.Namespace) -> int:
    from ..training.add_style import AddStyleConfig, add_style

    credit = {k: getattr(args, k) for k in ("artist", "title", "year", "licence", "source") if getattr(args, k)}
    cfg = AddStyleConfig(
        model=args.model, style=args.style, name=args.name, out=args.out, content=args.content, credit=credit,
        vgg=args.vgg, vgg_convention=args.vgg_convention, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, crop=_crop_settings(args), style_size=args.style_size or args.crop_size,
        loss=_loss_config(args), style_coefficient=args.style_weight, seed=args.seed, device=args.device,
        precision=args.precision, workers=args.workers, log=args.log, log_every=args.log_every,
        progress=not args.quiet)
    result = add_style(cfg)
    t = result.model.training["added_styles"][-1].get("time_s")
    print(f"wrote {result.model_path} with styles: {', '.join(result.model.style_names)}"
          + (f" ({t:.0f} s)" if t else ""), file=sys.stderr)
    return 0


# -- optimize ------------------------------------------------------------------------------

def _add_optimize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optimize", help="Gatys style transfer by optimizing pixels (slow, any style)",
                       description="Optimize the output's pixels directly against VGG losses, coarse to fine.")
    p.add_argument("content", metavar="CONTENT")
    p.add_argument("--style", required=True, action="append", metavar="IMAGE[=W]",
                   help="style image, optionally with a blend weight (repeatable)")
    p.add_argument("--out", required=True, metavar="OUT")
    p.add_argument("--size", type=int, default=512, help="long side of the result, pixels")
    p.add_argument("--scales", type=int, default=3, help="coarse-to-fine passes")
    p.add_argument("--iterations", type=int, default=200, help="per scale")
    p.add_argument("--method", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--lr", type=float, help="default 1.0 for L-BFGS, 0.02 for Adam")
    p.add_argument("--style-scale", type=float, default=1.0, help="style image size relative to the result")
    p.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    p.add_argument("--init", choices=("content", "noise"), default="content")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    _vgg_args(p)
    _loss_args(p)
    p.set_defaults(func=cmd_optimize)


def _display_rgb(path: str) -> tuple:
    from ..inference.colour import linear_to_srgb
    from ..io.images import read_image

    img = read_image(path)
    rgb = img.pixels[..., :3]
    if img.colour_space == "linear":
        rgb = linear_to_srgb(rgb)
    alpha = img.pixels[..., 3] if img.pixels.shape[2] == 4 else None
    return rgb, alpha


def cmd_optimize(args: argparse.Namespace) -> int:
    import numpy as np

    from ..inference.devices import resolve_device
    from ..io.images import write_image
    from ..perceptual.vgg import load_vgg, vgg_path_from_env
    from ..training.optimize import OptimizeSettings, optimize

    out = Path(args.out)
    styles = [_name_weight(s, "style") for s in args.style]
    for p, _ in [(args.content, 1.0), *styles]:
        if out.exists() and Path(p).exists() and os.path.samefile(out, p):
            raise PasticheError(f"--out {out} is one of the input images; choose another file")
    content, alpha = _display_rgb(args.content)
    style_imgs = [(_display_rgb(p)[0], w) for p, w in styles]
    settings = OptimizeSettings(size=args.size, scales=args.scales, iterations=args.iterations,
                                method=args.method, lr=args.lr, style_scale=args.style_scale,
                                preserve_color=args.preserve_color, init=args.init, seed=args.seed,
                                loss=_loss_config(args, LossConfig()))  # type: ignore[arg-type]
    settings.validate()
    device = resolve_device(args.device)
    vgg = load_vgg(vgg_path_from_env(args.vgg), settings.loss.layers, args.vgg_convention, device)

    def progress(scale: int, it: int, rec: dict) -> None:
        if not args.quiet:
            print(f"scale {scale + 1}/{settings.scales} iteration {it}: loss {rec['loss']:.4g} "
                  f"(content {rec['content']:.3g}, style {rec['style']:.3g})", file=sys.stderr)

    result = optimize(content, style_imgs, vgg, settings, progress)
    image = result.image
    if alpha is not None:
        from PIL import Image

        a = Image.fromarray(alpha.astype(np.float32), "F").resize(image.shape[1::-1], Image.Resampling.BILINEAR)
        image = np.concatenate([image, np.asarray(a, dtype=np.float32)[..., None]], axis=2)
    if out.suffix.lower() == ".exr":
        from ..inference.colour import srgb_to_linear

        image = image.copy()
        image[..., :3] = srgb_to_linear(image[..., :3])
    write_image(out, image)
    r = result.losses
    print(f"wrote {out}: loss {r['loss']:.4g} (content {r['content']:.3g}, style {r['style']:.3g}), "
          f"from {result.initial_losses['loss']:.4g}", file=sys.stderr)
    return 0


# -- evaluate ----------------------------------------------------------------------------------

def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="losses per style vs Gatys optimization, and a contact sheet",
                       description="Score a model's outputs with the training losses, next to what Gatys "
                                   "optimization reaches on the same image and style.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--content", required=True, metavar="DIR")
    p.add_argument("--styles", nargs="+", metavar="DIR_OR_FILE",
                   help="the style images, matched to the model's styles by name (file name or styles.json)")
    p.add_argument("--styles-manifest", metavar="JSON")
    p.add_argument("--size", type=int, default=256, help="long side of each content image")
    p.add_argument("--style-size", type=int, help="default: the model's training style size")
    p.add_argument("--limit", type=int, default=8, help="at most this many content images")
    p.add_argument("--gatys-iterations", type=int, default=50, help="L-BFGS iterations of the reference (0: skip)")
    p.add_argument("--gatys-method", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON ('-' for stdout)")
    p.add_argument("--sheet", metavar="PATH.png", help="write a contact sheet (content rows x style columns)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    _vgg_args(p)
    _loss_args(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..io.images import write_image
    from ..training.evaluate import EvaluateConfig, evaluate, format_table

    cfg = EvaluateConfig(model=args.model, content=args.content, styles=args.styles,
                         styles_manifest=args.styles_manifest, vgg=args.vgg, vgg_convention=args.vgg_convention,
                         size=args.size, style_size=args.style_size, limit=args.limit,
                         gatys_iterations=args.gatys_iterations, gatys_method=args.gatys_method,
                         device=args.device, loss=_loss_config(args))
    report, sheet = evaluate(cfg, progress=not args.quiet)
    if args.json == "-":
        print(json.dumps(report, indent=1))
    else:
        print(format_table(report))
        if args.json:
            write_text_atomic(Path(args.json), json.dumps(report, indent=1) + "\n")
            print(f"wrote {args.json}", file=sys.stderr)
    if args.sheet:
        write_image(args.sheet, sheet)
        print(f"wrote {args.sheet}", file=sys.stderr)
    return 0


# -- convert-vgg ---------------------------------------------------------------------------------

def _add_convert_vgg(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-vgg", help="make a VGG-19 safetensors file from torchvision's weights",
                       description="Convert a VGG-19 checkpoint (torchvision's vgg19-dcbb9e9d.pth, read with "
                                   "torch.load(weights_only=True), or a safetensors file) into the VGG file "
                                   "Pastiche's losses use, tagged with its input convention.")
    p.add_argument("source", nargs="?", metavar="CHECKPOINT", help="a .pth or .safetensors file")
    p.add_argument("--out", required=True, metavar="VGG.safetensors")
    p.add_argument("--convention", choices=("torchvision", "caffe"), default="torchvision",
                   help="input convention of the weights (torchvision's own weights: torchvision)")
    p.add_argument("--download", action="store_true",
                   help="download torchvision's published VGG-19 (548 MB) first; nothing is downloaded otherwise")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "pastiche"), metavar="DIR",
                   help="where --download keeps the checkpoint")
    p.set_defaults(func=cmd_convert_vgg)


def cmd_convert_vgg(args: argparse.Namespace) -> int:
    from ..perceptual.vgg import convert_to_safetensors, download_torchvision_vgg19

    if args.download == bool(args.source):
        raise PasticheError("give either a CHECKPOINT file or --download")
    src = download_torchvision_vgg19(args.cache) if args.download else Path(args.source)
    out = convert_to_safetensors(src, args.out, args.convention)
    print(f"wrote {out} ({args.convention} input convention); use it with --vgg {out}", file=sys.stderr)
    return 0

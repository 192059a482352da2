"""How good is a model? Its losses per style and image, next to Gatys's.

For every content image and style, the network's output is scored with the
training losses (content and style terms, weighted as in training), and
the same image and style are solved by Gatys optimization from the content
image with the same losses: the loss that optimization reaches is the
quality reference a feed-forward network approaches but rarely beats. A
contact sheet (content rows x style columns) shows the outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..errors import PasticheError
from ..inference.devices import resolve_device
from ..model.modelfile import load_model
from ..perceptual.losses import LossConfig, PerceptualLoss
from ..perceptual.vgg import load_vgg, vgg_path_from_env
from .data import list_images, load_style_image, open_rgb, resolve_styles, to_tensor
from .optimize import OptimizeSettings, _solve


@dataclass
class EvaluateConfig:
    model: str
    content: str
    styles: list[str] | None = None       # style images (folder/files), matched to the model by name
    styles_manifest: str | None = None
    vgg: str | None = None
    vgg_convention: str | None = None
    size: int = 256                       # long side of each content image
    style_size: int | None = None         # None: the model's training style size (else 256)
    limit: int = 8                        # at most this many content images
    gatys_iterations: int = 50            # 0 skips the reference
    gatys_method: str = "lbfgs"
    device: str = "auto"
    loss: LossConfig | None = None        # None: the model's training losses


def _content_tensor(path: Path, size: int) -> torch.Tensor:
    img = open_rgb(path)
    w, h = img.size
    s = size / max(w, h)
    nw, nh = max(16, round(w * s) // 4 * 4), max(16, round(h * s) // 4 * 4)
    return to_tensor(img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)).clamp(0, 1)


def _mean(rows: list[dict]) -> dict[str, float]:
    keys = rows[0].keys() if rows else []
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def evaluate(cfg: EvaluateConfig, progress: bool = True) -> tuple[dict, np.ndarray]:
    """Returns (report as a JSON-ready dict, contact sheet as H x W x 3 float32)."""
    if cfg.size < 16 or cfg.limit < 1 or cfg.gatys_iterations < 0:
        raise PasticheError("size must be >= 16, limit >= 1 and Gatys iterations >= 0")
    model = load_model(cfg.model)
    loss_cfg = cfg.loss or (LossConfig.from_dict(model.training["loss"]) if "loss" in model.training
                            else LossConfig())
    style_size = cfg.style_size or int(model.training.get("style_size", 256))
    device = resolve_device(cfg.device)
    photos = list_images(cfg.content, "content")[: cfg.limit]
    images: dict[str, Path] = {}
    if cfg.styles:
        for src in resolve_styles(cfg.styles, cfg.styles_manifest):
            images[src.style.name] = src.path
    unknown = sorted(set(images) - set(model.style_names))
    matched = [n for n in model.style_names if n in images]
    if images and not matched:
        raise PasticheError(f"none of the style images match the model's styles ({', '.join(model.style_names)}); "
                            f"found: {', '.join(unknown)}")
    vgg = load_vgg(vgg_path_from_env(cfg.vgg), loss_cfg.layers, cfg.vgg_convention, device)
    loss = PerceptualLoss(vgg, loss_cfg)
    net = model.network.to(device).eval()
    n = len(model.style_names)
    grams = {name: loss.style_grams([load_style_image(images[name], style_size, 1).to(device)])
             for name in matched}
    contents = [_content_tensor(p, cfg.size).to(device) for p in photos]
    outputs: list[list[np.ndarray]] = [[] for _ in photos]
    per_style = []
    from tqdm import tqdm

    bar = tqdm(total=len(photos) * n, desc="evaluating", disable=not progress, unit="image")
    for si, name in enumerate(model.style_names):
        rows = []
        for pi, x in enumerate(contents):
            with torch.no_grad():
                y = net(x, F.one_hot(torch.tensor([si], device=device), n).float())
            outputs[pi].append(y[0].permute(1, 2, 0).cpu().numpy())
            row: dict = {"content": photos[pi].name}
            if name in grams:
                zero = torch.zeros(1, dtype=torch.long, device=device)
                with torch.no_grad():
                    row["network"] = loss(y, x, grams[name], zero).means()
                if cfg.gatys_iterations:
                    settings = OptimizeSettings(iterations=cfg.gatys_iterations, method=cfg.gatys_method,
                                                loss=loss_cfg)
                    with torch.no_grad():
                        c_feat = vgg(x)[loss_cfg.content_layer]

                    def terms_of(img, x=x, g=grams[name], z=zero, c_feat=c_feat):
                        return loss(img, x, g, z, content_features=c_feat)

                    out = _solve(x.clone().requires_grad_(True), terms_of, settings, 0, None, [])
                    with torch.no_grad():
                        row["gatys"] = terms_of(out).means()
            rows.append(row)
            bar.update(1)
        entry: dict = {"name": name, "images": rows}
        if name in grams:
            entry["mean"] = {"network": _mean([r["network"] for r in rows])}
            if cfg.gatys_iterations:
                entry["mean"]["gatys"] = _mean([r["gatys"] for r in rows])
                entry["mean"]["network_over_gatys"] = (entry["mean"]["network"]["loss"]
                                                       / max(entry["mean"]["gatys"]["loss"], 1e-12))
        else:
            entry["note"] = "no style image given for this style: losses not measured"
        per_style.append(entry)
    bar.close()
    report = {"model": os.fspath(cfg.model), "styles": per_style, "content_images": [p.name for p in photos],
              "size": cfg.size, "style_size": style_size, "loss": loss_cfg.to_dict(),
              "gatys": {"method": cfg.gatys_method, "iterations": cfg.gatys_iterations, "init": "content"},
              "vgg": {"file": Path(vgg_path_from_env(cfg.vgg)).name, "convention": vgg.convention},
              "device": device.type, "unmatched_style_images": unknown}
    sheet = contact_sheet([c[0].permute(1, 2, 0).cpu().numpy() for c in contents], outputs,
                          ["content", *model.style_names], cell=max(64, cfg.size))
    return report, sheet


def contact_sheet(contents: list[np.ndarray], outputs: list[list[np.ndarray]], labels: list[str],
                  cell: int = 160) -> np.ndarray:
    """Rows: content images; columns: the content, then each style's output; a label row on top."""
    cols, rows, label_h, pad = len(labels), len(contents), 14, 2
    sheet = Image.new("RGB", (cols * (cell + pad) + pad, label_h + rows * (cell + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, text in enumerate(labels):
        draw.text((pad + j * (cell + pad) + 2, 1), text[: cell // 6], fill=(0, 0, 0))
    for i, (c, outs) in enumerate(zip(contents, outputs, strict=True)):
        for j, img in enumerate([c, *outs]):
            im = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
            im.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            x0 = pad + j * (cell + pad) + (cell - im.width) // 2
            y0 = label_h + pad + i * (cell + pad) + (cell - im.height) // 2
            sheet.paste(im, (x0, y0))
    return np.asarray(sheet, dtype=np.float32) / 255.0


def format_table(report: dict) -> str:
    """A plain-text summary: one line per style with mean losses."""
    lines = [f"{'style':32} {'net content':>11} {'net style':>10} {'net total':>10} "
             f"{'gatys total':>11} {'net/gatys':>9}"]
    for s in report["styles"]:
        m = s.get("mean")
        if not m:
            lines.append(f"{s['name'][:32]:32} (no style image: not measured)")
            continue
        net = m["network"]
        g = m.get("gatys", {})
        ratio = m.get("network_over_gatys")
        lines.append(f"{s['name'][:32]:32} {net['content']:11.4f} {net['style']:10.4f} {net['loss']:10.4f} "
                     f"{g.get('loss', float('nan')):11.4f} {ratio if ratio is not None else float('nan'):9.2f}")
    return "\n".join(lines)

"""Add a style to a trained model by learning only its gamma/beta rows.

Dumoulin et al. (2017, section 4.2) show that a trained multi-style network
learns a new style from its conditional-instance-norm parameters alone,
with every convolution frozen. We train a one-style copy of the network
whose only free parameters are the new row of each gamma and beta table
(started at the mean of the existing rows), then append that row to the
original tables. Every existing tensor is copied unchanged, so the existing
styles' outputs stay bit-identical.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors import safe_open

from ..errors import PasticheError
from ..model.modelfile import PasticheModel, Style, load_model, save_model, validate_styles
from ..model.network import StyleNetwork
from ..perceptual.losses import LossConfig, PerceptualLoss
from ..perceptual.vgg import load_vgg, vgg_path_from_env
from .data import ContentCrops, CropSettings, StyleSource, list_images, usable_photos
from .train import (
    LoopSettings,
    Trainer,
    default_workers,
    prepare_styles,
    run_loop,
    training_placement,
)


@dataclass
class AddStyleConfig:
    model: str
    style: str
    name: str
    out: str
    content: str
    credit: dict[str, str] = field(default_factory=dict)
    vgg: str | None = None
    vgg_convention: str | None = None
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-2
    crop: CropSettings = field(default_factory=CropSettings)
    style_size: int = 256
    # None: the loss settings the model was trained with (or the defaults).
    loss: LossConfig | None = None
    style_coefficient: float = 1.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    workers: int = -1
    log: str | None = None
    log_every: int = 50
    progress: bool = True


@dataclass
class AddStyleResult:
    model_path: Path
    model: PasticheModel
    final: dict


def _is_norm_table(key: str) -> bool:
    return key.endswith(".norm.gamma") or key.endswith(".norm.beta")


def one_style_network(base: PasticheModel) -> StyleNetwork:
    """A one-style copy of ``base``: shared weights copied, gamma/beta = mean of the styles' rows."""
    net = StyleNetwork(replace(base.architecture, num_styles=1))
    state = {}
    for k, v in base.network.state_dict().items():
        state[k] = v.float().mean(0, keepdim=True) if _is_norm_table(k) else v.float().clone()
    net.load_state_dict(state, strict=True)
    return net


def merged_model(base: PasticheModel, new: StyleNetwork, style: Style, summary: dict) -> PasticheModel:
    """``base`` with the new style's gamma/beta rows appended; every old tensor copied as is."""
    arch = replace(base.architecture, num_styles=base.architecture.num_styles + 1)
    net = StyleNetwork(arch)
    old = base.network.state_dict()
    learned = new.state_dict()
    state = {}
    for k, v in old.items():
        if _is_norm_table(k):
            state[k] = torch.cat([v.detach().cpu(), learned[k].detach().cpu().to(v.dtype)], dim=0)
        else:
            state[k] = v.detach().cpu().clone()
    net.load_state_dict(state, strict=True)
    net.eval().requires_grad_(False)
    training = dict(base.training)
    training["added_styles"] = [*base.training.get("added_styles", []), summary]
    return PasticheModel(net, [*base.styles, style], training)


def file_dtype(path: Path) -> torch.dtype:
    with safe_open(str(path), framework="pt", device="cpu") as f:
        first = next(iter(f.keys()))
        return f.get_tensor(first).dtype


def add_style(cfg: AddStyleConfig) -> AddStyleResult:
    """Learn ``cfg.style`` as a new style of ``cfg.model`` and write ``cfg.out``."""
    model_path, out = Path(cfg.model), Path(cfg.out)
    if out.exists() and model_path.exists() and os.path.samefile(out, model_path):
        raise PasticheError(f"--out {out} is the input model; choose another file so the original stays intact")
    base = load_model(model_path)
    if cfg.name in base.style_names:
        raise PasticheError(f"the model already has a style named {cfg.name!r}; choose another --name")
    style = Style(cfg.name, dict(cfg.credit))
    validate_styles([s.to_dict() for s in [*base.styles, style]], out.name)
    for name in ("steps", "batch_size", "log_every"):
        if getattr(cfg, name) < 1:
            raise PasticheError(f"{name.replace('_', ' ')} must be a whole number >= 1")
    if not (cfg.style_coefficient > 0):
        raise PasticheError(f"style coefficient must be > 0, got {cfg.style_coefficient}")
    style_path = Path(cfg.style)
    if not style_path.is_file():
        raise PasticheError(f"style image not found: {style_path}")
    loss_cfg = cfg.loss or (LossConfig.from_dict(base.training["loss"]) if "loss" in base.training
                            else LossConfig())
    photos = usable_photos(list_images(cfg.content, "content"), cfg.crop.size)
    place = training_placement(cfg.device, cfg.precision, cfg.channels_last)
    vgg = load_vgg(vgg_path_from_env(cfg.vgg), loss_cfg.layers, cfg.vgg_convention, place.device)
    loss = PerceptualLoss(vgg, loss_cfg)
    source = StyleSource(style_path, style, cfg.style_coefficient)
    grams = prepare_styles([source], loss, cfg.style_size, cfg.crop.size, place.device)

    torch.manual_seed(cfg.seed)
    net = one_style_network(base)
    net.requires_grad_(False)
    params = []
    for norm in net.norms():
        norm.gamma.requires_grad_(True)
        norm.beta.requires_grad_(True)
        params += [norm.gamma, norm.beta]
    trainer = Trainer(net, params, loss, grams, torch.tensor([cfg.style_coefficient]), place, cfg.lr)
    dataset = ContentCrops(photos, 1, cfg.crop, cfg.seed)
    log_path = Path(cfg.log) if cfg.log else Path(str(out) + ".log.jsonl")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("", encoding="utf-8")
    settings = LoopSettings(steps=cfg.steps, batch_size=cfg.batch_size,
                            workers=default_workers(place.device) if cfg.workers < 0 else cfg.workers,
                            log_path=log_path, log_every=cfg.log_every, progress=cfg.progress,
                            description=f"adding style {cfg.name}")
    final = run_loop(trainer, dataset, settings, 0, None)
    summary = {"name": cfg.name, "kind": "gamma/beta only (shared weights frozen)", "steps": cfg.steps,
               "batch_size": cfg.batch_size, "lr": cfg.lr, "crop": asdict(cfg.crop), "style_size": cfg.style_size,
               "loss": loss_cfg.to_dict(), "style_coefficient": cfg.style_coefficient,
               "device": place.describe(), "time_s": final.get("total_elapsed_s"),
               "final": {k: final[k] for k in ("loss", "content", "style", "tv") if k in final}}
    merged = merged_model(base, net.to("cpu", memory_format=torch.contiguous_format), style, summary)
    # Keep the input's storage precision, so old tensors stay bit-identical in the file too.
    save_model(merged, out, dtype=file_dtype(model_path))
    return AddStyleResult(out, merged, final)

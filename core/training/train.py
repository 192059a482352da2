"""N-style training: one conditional-instance-norm network learns every style.

Each batch mixes style indices (one per crop). Adam, random photo crops,
mixed precision and channels-last on GPUs and on CPUs with native bf16, fp32
on other CPUs. Checkpoints hold the
model, Adam's state, every random generator and the data position as
safetensors tensors plus JSON metadata (nothing unpickled), so ``resume``
continues exactly where the run stopped: on CPU (or with ``deterministic``)
a run cut off and resumed ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..errors import PasticheError
from ..inference.devices import cpu_has_native_bf16, parse_precision, resolve_device
from ..io.atomic import atomic_path, write_text_atomic
from ..model.modelfile import (
    PasticheModel,
    load_model,
    new_model,
    save_model,
    validate_architecture,
)
from ..model.network import Architecture, StyleNetwork
from ..perceptual.losses import LossConfig, LossTerms, PerceptualLoss
from ..perceptual.vgg import load_vgg, vgg_path_from_env
from ..version import __version__
from .data import (
    ContentCrops,
    CropSettings,
    StyleSource,
    list_images,
    load_style_image,
    make_loader,
    resolve_styles,
    usable_photos,
)

CHECKPOINT_FORMAT = "pastiche-checkpoint"
CHECKPOINT_VERSION = 1


# -- placement -----------------------------------------------------------------

@dataclass(frozen=True)
class TrainPlacement:
    """Where training runs: fp32 weights always; autocast dtype on GPUs."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    @property
    def uses_scaler(self) -> bool:
        return self.amp_dtype == torch.float16

    def describe(self) -> str:
        amp = str(self.amp_dtype).replace("torch.", "") + " autocast" if self.amp_dtype else "fp32"
        return f"{self.device.type}, {amp}{', channels-last' if self.channels_last else ''}"


def training_placement(device: str = "auto", precision: str = "auto",
                       channels_last: bool | None = None) -> TrainPlacement:
    """bf16 autocast (fp16 + loss scaling where bf16 is missing) and
    channels-last on CUDA; on CPUs that multiply bf16 natively, bf16
    autocast and channels-last too (1.68x the crops per second on a Zen 4,
    with the same held-out losses: docs/training.md, section 2, "Speed");
    plain fp32 on other CPUs and on MPS unless asked."""
    dev = resolve_device(device)
    amp = parse_precision(precision)
    if precision == "auto" and dev.type == "cuda":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif precision == "auto" and dev.type == "cpu" and cpu_has_native_bf16():
        amp = torch.bfloat16
    elif amp == torch.float32:
        amp = None
    if amp == torch.float16 and dev.type == "cpu":
        raise PasticheError("fp16 training needs a GPU; use fp32 or bf16 on the CPU")
    # oneDNN's bf16 convolutions are fastest on NHWC tensors.
    default_cl = dev.type == "cuda" or (dev.type == "cpu" and amp == torch.bfloat16)
    cl = default_cl if channels_last is None else bool(channels_last)
    return TrainPlacement(dev, amp, cl)


# -- one optimization step ------------------------------------------------------

class Trainer:
    """A network, the parameters being learned, Adam and the loss, on one device."""

    def __init__(self, network: StyleNetwork, params: list[nn.Parameter], loss: PerceptualLoss,
                 style_grams: dict[str, torch.Tensor], coefficients: torch.Tensor,
                 placement: TrainPlacement, lr: float):
        if not (lr > 0 and lr < float("inf")):
            raise PasticheError(f"learning rate must be a finite number > 0, got {lr}")
        p = placement
        self.placement = p
        self.network = network.to(p.device).train()
        self.loss = loss.to(p.device)
        if p.channels_last:
            self.network.to(memory_format=torch.channels_last)
            self.loss.to(memory_format=torch.channels_last)
        self.params = params
        self.grams = {k: v.to(p.device) for k, v in style_grams.items()}
        self.coefficients = coefficients.to(p.device, torch.float32)
        self.optimizer = torch.optim.Adam(params, lr=lr, fused=p.device.type == "cuda" or None)
        self.scaler = torch.amp.GradScaler(p.device.type) if p.uses_scaler else None

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.placement.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.placement.channels_last else x

    def forward_loss(self, content: torch.Tensor, style: torch.Tensor) -> LossTerms:
        p = self.placement
        mix = F.one_hot(style, self.network.num_styles).float()
        with torch.autocast(p.device.type, dtype=p.amp_dtype or torch.float32, enabled=p.amp_dtype is not None):
            out = self.network(content, mix)
            return self.loss(out, content, self.grams, style, self.coefficients)

    def step(self, content: torch.Tensor, style: torch.Tensor) -> LossTerms:
        content = self._to_device(content)
        style = style.to(self.placement.device, non_blocking=True)
        terms = self.forward_loss(content, style)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(terms.total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            terms.total.backward()
            self.optimizer.step()
        return terms

    # -- state for checkpoints --------------------------------------------------
    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors: dict[str, torch.Tensor] = {}
        for k, v in self.network.state_dict().items():
            tensors[f"model.{k}"] = v.detach().float().cpu().contiguous()
        sd = self.optimizer.state_dict()
        for pid, st in sd["state"].items():
            for key, val in st.items():
                tensors[f"optim.{pid}.{key}"] = val.detach().cpu().contiguous()
        meta = {"param_groups": sd["param_groups"],
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}
        return tensors, meta

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.network.load_state_dict(model, strict=True)
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, key = k.split(".", 2)
                state.setdefault(int(pid), {})[key] = v
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])


# -- random generator state as tensors ----------------------------------------------

def rng_state_tensors() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, pystate, gauss_next = random.getstate()
    tensors["rng.python"] = torch.tensor(pystate, dtype=torch.int64)
    meta = {"numpy": [name, int(pos), int(has_gauss), float(cached)],
            "python": [int(version), gauss_next]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, gauss_next = meta["python"]
    random.setstate((version, tuple(int(v) for v in tensors["rng.python"].tolist()), gauss_next))


# -- checkpoint files ------------------------------------------------------------

def _atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_checkpoint(path: Path, trainer: Trainer, step: int, run: dict, elapsed: float,
                    init: dict | None = None) -> None:
    """``init``: what the run started from (--init), kept so a resumed run's model still records it."""
    tensors, meta = trainer.state_tensors()
    rng_t, rng_meta = rng_state_tensors()
    tensors.update(rng_t)
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "format_version": str(CHECKPOINT_VERSION),
        "step": str(step),
        "elapsed_s": repr(float(elapsed)),
        "run": json.dumps(run),
        "optimizer": json.dumps(meta),
        "rng": json.dumps(rng_meta),
    }
    if init:
        metadata["init"] = json.dumps(init)
    _atomic_save(tensors, metadata, path)


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and parsed metadata of a checkpoint; PasticheError if it is not one."""
    if not path.is_file():
        raise PasticheError(f"--resume: checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format") != CHECKPOINT_FORMAT:
                raise PasticheError(f"{path} is not a Pastiche training checkpoint")
            if int(meta.get("format_version", "0")) > CHECKPOINT_VERSION:
                raise PasticheError(f"{path} was written by a newer Pastiche; please update")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        parsed = {"step": int(meta["step"]), "elapsed_s": float(meta.get("elapsed_s", "0")),
                  "run": json.loads(meta["run"]), "optimizer": json.loads(meta["optimizer"]),
                  "rng": json.loads(meta["rng"]), "init": json.loads(meta.get("init", "null"))}
    except SafetensorError as e:
        raise PasticheError(f"{path} is not a readable checkpoint (truncated?): {e}") from None
    except (KeyError, ValueError) as e:
        raise PasticheError(f"{path}: checkpoint metadata is incomplete ({e})") from None
    return tensors, parsed


def check_same_run(saved: dict, current: dict, path: Path) -> None:
    """Resuming with other settings would not continue the same run: refuse."""
    diffs = [f"{k}: checkpoint has {saved.get(k)!r}, now {current.get(k)!r}"
             for k in sorted(set(saved) | set(current)) if k != "steps" and saved.get(k) != current.get(k)]
    if diffs:
        raise PasticheError(f"--resume: {path} was made with other settings; " + "; ".join(diffs[:4]))


# -- the loop shared by train and add-style ------------------------------------------

@dataclass
class LoopSettings:
    steps: int
    batch_size: int
    workers: int
    log_path: Path | None
    log_every: int = 50
    checkpoint_path: Path | None = None
    checkpoint_minutes: float = 5.0
    checkpoint_every: int = 0
    progress: bool = True
    description: str = "training"


def _truncate_log(path: Path, step: int) -> None:
    """Drop log records past the checkpoint a resumed run restarts from."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    write_text_atomic(path, "".join(k + "\n" for k in keep))


def run_loop(trainer: Trainer, dataset: ContentCrops, settings: LoopSettings, start_step: int,
             save: Callable[[int, float], None] | None, elapsed0: float = 0.0,
             on_step: Callable[[int, LossTerms], None] | None = None) -> dict:
    """Steps ``start_step`` .. ``settings.steps``; returns the last logged losses.

    ``save(step, elapsed)`` writes a checkpoint (on time, every N steps, on
    Ctrl-C and at the end). ``on_step`` sees each finished step (tests use it
    to cut a run off).
    """
    from tqdm import tqdm

    s = settings
    b = s.batch_size
    loader = make_loader(dataset, start_step * b, s.steps * b, b, s.workers,
                         pin_memory=trainer.placement.device.type == "cuda")
    log = open(s.log_path, "a", encoding="utf-8") if s.log_path else None  # noqa: SIM115
    bar = tqdm(total=s.steps, initial=start_step, desc=s.description, disable=not s.progress,
               unit="step", dynamic_ncols=True)
    t_start = time.perf_counter()
    t_window, n_window = t_start, 0
    last_save = time.monotonic()
    sums: dict[str, torch.Tensor] = {}
    last: dict = {}
    step = start_step
    try:
        for content, style in loader:
            terms = trainer.step(content, style)
            step += 1
            n_window += 1
            for key, val in (("loss", terms.per_sample), ("content", terms.content),
                             ("style", terms.style), ("tv", terms.tv)):
                v = val.detach().mean()
                sums[key] = sums[key] + v if key in sums else v
            bar.update(1)
            if on_step is not None:
                on_step(step, terms)
            if step % s.log_every == 0 or step == s.steps:
                now = time.perf_counter()
                rate = n_window * b / max(now - t_window, 1e-9)
                last = {"step": step, **{k: float(v) / n_window for k, v in sums.items()},
                        "images_per_s": round(rate, 2),
                        "elapsed_s": round(elapsed0 + now - t_start, 2)}
                bar.set_postfix(loss=f"{last['loss']:.4g}", content=f"{last['content']:.3g}",
                                style=f"{last['style']:.3g}", img_s=f"{rate:.1f}")
                if log:
                    log.write(json.dumps(last) + "\n")
                    log.flush()
                sums, n_window, t_window = {}, 0, now
            due = (s.checkpoint_every and step % s.checkpoint_every == 0) or \
                  (time.monotonic() - last_save >= s.checkpoint_minutes * 60)
            if save is not None and due and step < s.steps:
                save(step, elapsed0 + time.perf_counter() - t_start)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        if save is not None:
            save(step, elapsed0 + time.perf_counter() - t_start)
            bar.close()
            raise TrainingInterrupted(step, settings.checkpoint_path) from None
        raise
    finally:
        bar.close()
        if log:
            log.close()
    if save is not None:
        save(step, elapsed0 + time.perf_counter() - t_start)
    last["total_elapsed_s"] = round(elapsed0 + time.perf_counter() - t_start, 2)
    return last


class TrainingInterrupted(PasticheError):
    def __init__(self, step: int, checkpoint: Path | None):
        self.step = step
        super().__init__(f"interrupted at step {step}; checkpoint saved to {checkpoint}: "
                         "run the same command with --resume to continue")


# -- N-style training -------------------------------------------------------------

@dataclass
class TrainConfig:
    styles: list[str]
    content: str
    out: str
    vgg: str | None = None
    vgg_convention: str | None = None
    styles_manifest: str | None = None
    style_coefficients: dict[str, float] = field(default_factory=dict)
    steps: int = 40000
    batch_size: int = 8
    lr: float = 1e-3
    crop: CropSettings = field(default_factory=CropSettings)
    style_size: int = 256
    loss: LossConfig = field(default_factory=LossConfig)
    channels: tuple[int, int, int] = (32, 64, 128)
    num_residual: int = 5
    up_channels: tuple[int, int] | None = None
    first_kernel: int = 9
    last_kernel: int = 9
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    deterministic: bool = False
    workers: int = -1
    checkpoint: str | None = None
    checkpoint_minutes: float = 5.0
    checkpoint_every: int = 0
    log: str | None = None
    log_every: int = 50
    resume: bool = False
    progress: bool = True
    # Start from a trained model's weights (same styles and architecture) instead of
    # random ones: changing loss settings mid-way without starting over.
    init: str | None = None

    def validate(self) -> None:
        for name in ("steps", "batch_size", "style_size", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise PasticheError(f"{name.replace('_', ' ')} must be a whole number >= 1, got {v}")
        c = self.crop
        if c.size < 16 or c.size % 4:
            raise PasticheError(f"crop size must be a multiple of 4 and at least 16, got {c.size}")
        if not (0 < c.scale_min <= c.scale_max):
            raise PasticheError(f"scale jitter range must satisfy 0 < min <= max, got {c.scale_min}..{c.scale_max}")
        if self.style_size < c.size:
            raise PasticheError(f"style size ({self.style_size}) must be at least the crop size ({c.size})")
        self.loss.validate()

    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint) if self.checkpoint else Path(str(self.out) + ".ckpt.safetensors")

    def log_path(self) -> Path:
        return Path(self.log) if self.log else Path(str(self.out) + ".log.jsonl")

    def run_identity(self, styles: list[StyleSource], photos: int) -> dict:
        """Settings a resumed run must share with the one it continues."""
        return {"styles": [s.style.name for s in styles],
                "style_coefficients": [s.coefficient for s in styles],
                "batch_size": self.batch_size, "lr": self.lr, "crop": asdict(self.crop),
                "style_size": self.style_size, "loss": self.loss.to_dict(),
                "architecture": {k: v for k, v in self.architecture(1).to_dict().items() if k != "num_styles"},
                "seed": self.seed, "content_images": photos}

    def architecture(self, num_styles: int) -> Architecture:
        return Architecture(num_styles=num_styles, channels=tuple(self.channels),  # type: ignore[arg-type]
                            num_residual=self.num_residual, up_channels=self.up_channels,
                            first_kernel=self.first_kernel, last_kernel=self.last_kernel)


def init_weights(model: PasticheModel, path: str) -> dict:
    """Copy a trained model's weights into ``model``; what the training summary records of it.

    The init model must have the same styles, in order, and the same architecture:
    anything else would silently mean different weights.
    """
    init = load_model(path)
    if init.style_names != model.style_names:
        raise PasticheError(f"--init: {path} has styles {', '.join(init.style_names)}; this run trains "
                            f"{', '.join(model.style_names)} (same names in the same order needed)")
    if init.network.arch != model.network.arch:
        raise PasticheError(f"--init: {path} has architecture {init.network.arch.to_dict()}, this run "
                            f"{model.network.arch.to_dict()}")
    model.network.load_state_dict(init.network.state_dict())
    training = init.training or {}
    return {"file": Path(path).name, "steps": training.get("steps"), "loss": training.get("loss"),
            "final": training.get("final")}


def default_workers(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def prepare_styles(sources: list[StyleSource], loss: PerceptualLoss, style_size: int, crop_size: int,
                   device: torch.device) -> dict[str, torch.Tensor]:
    images = [load_style_image(s.path, style_size, crop_size).to(device) for s in sources]
    return loss.style_grams(images)


@dataclass
class TrainResult:
    model_path: Path
    checkpoint_path: Path | None
    log_path: Path | None
    steps: int
    final: dict
    model: PasticheModel


def train(config: TrainConfig, on_step: Callable[[int, LossTerms], None] | None = None) -> TrainResult:
    """Train one network on all styles; see TrainConfig for the knobs."""
    cfg = config
    cfg.validate()
    sources = resolve_styles(cfg.styles, cfg.styles_manifest, cfg.style_coefficients)
    photos = usable_photos(list_images(cfg.content, "content"), cfg.crop.size)
    place = training_placement(cfg.device, cfg.precision, cfg.channels_last)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    elif place.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    vgg_path = vgg_path_from_env(cfg.vgg)
    vgg = load_vgg(vgg_path, cfg.loss.layers, cfg.vgg_convention, place.device)
    loss = PerceptualLoss(vgg, cfg.loss)
    grams = prepare_styles(sources, loss, cfg.style_size, cfg.crop.size, place.device)

    arch = cfg.architecture(len(sources))
    validate_architecture(arch.to_dict(), "--arch")
    model = new_model([s.style for s in sources], arch, seed=cfg.seed)
    init_from = init_weights(model, cfg.init) if cfg.init and not cfg.resume else None
    trainable = list(model.network.parameters())
    coeff = torch.tensor([s.coefficient for s in sources])
    trainer = Trainer(model.network, trainable, loss, grams, coeff, place, cfg.lr)

    run_id = cfg.run_identity(sources, len(photos))
    ckpt = cfg.checkpoint_path()
    log_path = cfg.log_path()
    start, elapsed0 = 0, 0.0
    if cfg.resume:
        tensors, saved = read_checkpoint(ckpt)
        check_same_run(saved["run"], run_id, ckpt)
        trainer.load_state_tensors(tensors, saved["optimizer"])
        set_rng_state(tensors, saved["rng"])
        start, elapsed0 = saved["step"], saved["elapsed_s"]
        init_from = saved["init"]
        if start > cfg.steps:
            raise PasticheError(f"--resume: the checkpoint is at step {start}, past --steps {cfg.steps}")
        _truncate_log(log_path, start)
    else:
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("", encoding="utf-8")

    dataset = ContentCrops(photos, len(sources), cfg.crop, cfg.seed)
    workers = default_workers(place.device) if cfg.workers < 0 else cfg.workers

    def summary(step: int, elapsed: float, final: dict | None) -> dict:
        return {"kind": "multi-style", "steps": step, "complete": step >= cfg.steps,
                "images_seen": step * cfg.batch_size, "batch_size": cfg.batch_size, "lr": cfg.lr,
                "crop": asdict(cfg.crop), "style_size": cfg.style_size, "loss": cfg.loss.to_dict(),
                "style_coefficients": {s.style.name: s.coefficient for s in sources},
                "vgg": {"file": vgg_path.name, "convention": vgg.convention},
                "content_images": len(photos), "seed": cfg.seed, "device": place.describe(),
                "time_s": round(elapsed, 1), "final": final or {}, "pastiche_version": __version__,
                **({"init": init_from} if init_from else {})}

    def save(step: int, elapsed: float) -> None:
        save_checkpoint(ckpt, trainer, step, run_id, elapsed, init_from)
        model.training = summary(step, elapsed, None)
        save_model(model, cfg.out)

    settings = LoopSettings(steps=cfg.steps, batch_size=cfg.batch_size, workers=workers, log_path=log_path,
                            log_every=cfg.log_every, checkpoint_path=ckpt,
                            checkpoint_minutes=cfg.checkpoint_minutes, checkpoint_every=cfg.checkpoint_every,
                            progress=cfg.progress, description=f"training {len(sources)} style(s)")
    final = run_loop(trainer, dataset, settings, start, save, elapsed0, on_step)
    model.network.eval().requires_grad_(False)
    model.network.to("cpu", memory_format=torch.contiguous_format)
    model.training = summary(cfg.steps, final.get("total_elapsed_s", 0.0),
                             {k: final[k] for k in ("loss", "content", "style", "tv") if k in final})
    save_model(model, cfg.out)
    return TrainResult(Path(cfg.out), ckpt, log_path, cfg.steps, final, model)

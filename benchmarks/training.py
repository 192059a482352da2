"""Training benchmark: Pastiche's training step against a plain eager fp32 step.

    python benchmarks/training.py [--device D] [--batch B] [--size S] [--styles N]
                                  [--vgg PATH] [--data DIR --workers W] [--json]

Both steps train the same network (default architecture, N styles) with the
same losses (default layers relu1_1..relu4_1, content relu3_1) through
``pastiche_core.training.train.Trainer``:

* pastiche: what ``pastiche train`` uses on that device (on CUDA: bf16
  autocast, or fp16 with loss scaling, channels-last, fused Adam; on CPU:
  fp32, unless --precision / --channels-last say otherwise);
* reference: eager fp32, contiguous (NCHW) tensors, plain Adam, PyTorch's
  default math settings.

Batches are random crops already on the device, so this times the step
(forward, VGG losses, backward, Adam), not data loading; ``--data DIR``
additionally measures how many crops per second the data loader delivers
with ``--workers`` processes, to compare with the step's appetite.
The two variants alternate in blocks so machine load hits both alike;
medians are reported. Without ``--vgg`` a randomly initialized full-width
VGG-19 prefix stands in (the speed is the same as real weights).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from pastiche_core import Architecture, Style, new_model
from pastiche_core.perceptual.losses import LossConfig, PerceptualLoss
from pastiche_core.perceptual.vgg import load_vgg, write_random_vgg
from pastiche_core.training.train import Trainer, TrainPlacement, training_placement


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(place: TrainPlacement, styles: int, vgg_path: Path, loss_cfg: LossConfig, size: int,
                 reference: bool, seed: int = 0) -> Trainer:
    model = new_model([Style(f"s{i}") for i in range(styles)], Architecture(num_styles=styles), seed=seed)
    vgg = load_vgg(vgg_path, loss_cfg.layers, "caffe" if reference else None, place.device)
    loss = PerceptualLoss(vgg, loss_cfg)
    gen = torch.Generator().manual_seed(seed)
    style_imgs = [torch.rand(1, 3, size, size, generator=gen).to(place.device) for _ in range(styles)]
    grams = loss.style_grams(style_imgs)
    trainer = Trainer(model.network, list(model.network.parameters()), loss, grams, torch.ones(styles), place,
                      lr=1e-3)
    if reference:
        trainer.optimizer = torch.optim.Adam(trainer.params, lr=1e-3, foreach=False)
    return trainer


def time_block(trainer: Trainer, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> float:
    """Images per second over one pass through ``batches``."""
    sync(device)
    t = time.perf_counter()
    for x, s in batches:
        trainer.step(x, s)
    sync(device)
    return sum(x.shape[0] for x, _ in batches) / (time.perf_counter() - t)


def loader_rate(data: Path, size: int, batch: int, workers: int, batches: int) -> float:
    from pastiche_core.training.data import ContentCrops, CropSettings, list_images, make_loader

    ds = ContentCrops(list_images(data), 4, CropSettings(size=size), seed=0)
    loader = make_loader(ds, 0, batch * (batches + 2), batch, workers, pin_memory=torch.cuda.is_available())
    it = iter(loader)
    next(it)  # workers started, first batch out
    t = time.perf_counter()
    n = sum(x.shape[0] for x, _ in it)
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=256, help="crop side")
    ap.add_argument("--styles", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=3, help="timed blocks per variant (alternating)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--precision", default="auto", help="pastiche variant: auto, fp32, bf16, fp16")
    ap.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--vgg", type=Path, help="VGG-19 safetensors (default: random full-width stand-in)")
    ap.add_argument("--data", type=Path, help="also time the data loader on this photo folder")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args(argv)

    cl = None if args.channels_last == "auto" else args.channels_last == "on"
    fast = training_placement(args.device, args.precision, cl)
    ref = TrainPlacement(fast.device, None, False)
    loss_cfg = LossConfig()
    with tempfile.TemporaryDirectory() as tmp:
        vgg_path = args.vgg or write_random_vgg(Path(tmp) / "vgg.safetensors", "relu4_1")
        trainers = {"reference": make_trainer(ref, args.styles, vgg_path, loss_cfg, args.size, True),
                    "pastiche": make_trainer(fast, args.styles, vgg_path, loss_cfg, args.size, False)}
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.rand(args.batch, 3, args.size, args.size, generator=gen),
                torch.randint(args.styles, (args.batch,), generator=gen)) for _ in range(args.steps)]
    if fast.device.type == "cuda":
        batches = [(x.pin_memory(), s) for x, s in batches]
    for tr in trainers.values():
        time_block(tr, batches[: args.warmup], fast.device)
    rates: dict[str, list[float]] = {k: [] for k in trainers}
    for _ in range(args.blocks):
        for name, tr in trainers.items():
            rates[name].append(time_block(tr, batches, fast.device))
    med = {k: statistics.median(v) for k, v in rates.items()}
    device_name = fast.device.type
    if fast.device.type == "cuda":
        device_name += f" ({torch.cuda.get_device_name(fast.device)})"
    else:
        device_name += f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    result = {
        "device": device_name, "batch": args.batch, "size": args.size, "styles": args.styles,
        "pastiche": {"setup": fast.describe(), "images_per_s": round(med["pastiche"], 2),
                     "blocks": [round(r, 2) for r in rates["pastiche"]]},
        "reference": {"setup": "eager fp32, NCHW, plain Adam", "images_per_s": round(med["reference"], 2),
                      "blocks": [round(r, 2) for r in rates["reference"]]},
        "speedup": round(med["pastiche"] / med["reference"], 3),
        "torch": torch.__version__,
    }
    if args.data:
        result["data_loader"] = {"workers": args.workers,
                                 "images_per_s": round(loader_rate(args.data, args.size, args.batch,
                                                                   args.workers, 20), 1)}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"training step, {device_name}, batch {args.batch} x {args.size}px, {args.styles} styles")
    print(f"  pastiche  ({fast.describe():28}) {med['pastiche']:9.2f} images/s")
    print(f"  reference (eager fp32, NCHW, plain Adam) {med['reference']:9.2f} images/s")
    print(f"  speedup {result['speedup']:.2f}x")
    if "data_loader" in result:
        d = result["data_loader"]
        print(f"  data loader, {d['workers']} workers: {d['images_per_s']:.1f} crops/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared helpers of the training tests: a tiny VGG file and generated images."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from pastiche_core.cli.training import register_commands
from pastiche_core.perceptual.losses import LossConfig
from pastiche_core.perceptual.vgg import write_random_vgg

# Shallow layers keep the random stand-in VGG tiny and the tests fast.
SMALL_LOSS = LossConfig(content_layer="relu2_1", style_layers=("relu1_1", "relu2_1"),
                        style_weight=5.0, tv_weight=1e-4)


def tiny_vgg(tmp: Path, deepest: str = "relu2_1", convention: str | None = "caffe") -> Path:
    return write_random_vgg(tmp / f"vgg-{deepest}-{convention}.safetensors", deepest,
                            width_scale=0.125, convention=convention, seed=1)


def pattern(size: tuple[int, int], seed: int) -> np.ndarray:
    """A colourful smooth-plus-stripes test picture, uint8 H x W x 3."""
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = rng.uniform(0.05, 0.4, size=3)
    img = np.stack([0.5 + 0.5 * np.sin(xx * f[0] + yy * f[1] * (c + 1) + c) for c in range(3)], axis=2)
    img += rng.normal(0, 0.05, size=img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int, prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = folder / f"{prefix}{i}.png"
        Image.fromarray(pattern(size, seed + i)).save(p)
        paths.append(p)
    return paths


def run_cli(argv: list[str]) -> int:
    """Parse and run a training subcommand as ``pastiche`` would."""
    parser = argparse.ArgumentParser(prog="pastiche")
    register_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)

"""Temporal-coherence benchmark: per-frame vs temporal mode on Blender renders.

    python benchmarks/temporal.py [--json] [--model PATH] [--scenes-dir DIR]

Renders (once, cached) three tiny test animations with Blender
(benchmarks/temporal_scenes.py: camera pan, rotating object, moving light),
stylizes them per frame and in temporal mode, and reports for each:
- warping error: mean squared difference (display RGB in [0, 1]) between
  frame t and frame t-1 warped by Blender's exact motion, over pixels
  visible in both (pastiche_core.temporal.metrics);
- style loss: Gram-matrix distance (VGG-19 relu1_1..relu4_1, the training
  code's pastiche_core.perceptual.losses) between each frame and a style image.
Target (issue #8): temporal warping error <= 0.5 x per-frame, style loss
within 10 %. It also measures the design alternatives (warp blend only,
statistics blend only, a recursive blend that is not chunk-safe) so the
defaults in core/temporal.py rest on numbers.

Without --model the network is randomly initialized (random gamma/beta):
figures then describe an UNTRAINED network and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pastiche_core import Architecture, Style, Stylizer, load_model, new_model
from pastiche_core.inference.colour import linear_to_srgb
from pastiche_core.temporal.coherence import (
    DEFAULT_BLEND,
    DEFAULT_HISTORY,
    DEFAULT_STATS_BLEND,
    STYLIZED_WARP,
    HistoryFrame,
    Motion,
    TemporalStylizer,
    _visible_t,
    _warp_t,
    motion_from_vector_pass,
    visible_in_previous,
    warp,
)
from pastiche_core.temporal.metrics import warp_error

HERE = Path(__file__).resolve().parent
ASSETS = HERE.parent.parent / "shared" / "assets"
DEFAULT_VGG = ASSETS / "vgg" / "vgg19-imagenet-caffe.safetensors"
DEFAULT_STYLE = ASSETS / "styles" / "vangogh_the_starry_night_1889.jpg"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


# -- inputs ---------------------------------------------------------------------------

def ensure_scenes(folder: Path | None, size: int, frames: int, samples: int) -> Path:
    """Render the test animations unless a matching render is cached."""
    sys.path.insert(0, str(HERE))
    import temporal_scenes  # noqa: E402  (pure Python until main() runs)

    if folder is None:
        folder = Path(tempfile.gettempdir()) / (
            f"pastiche-temporal-scenes-v{temporal_scenes.VERSION}-{size}px-{frames}f-{samples}s")
    meta_path = folder / "scenes.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == temporal_scenes.VERSION and all(
                (folder / f"{s}.npz").exists() for s in temporal_scenes.SCENES):
            return folder
    print(f"rendering the test animations with Blender into {folder} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, str(HERE / "temporal_scenes.py"), "--out", str(folder), "--size", str(size),
           "--frames", str(frames), "--samples", str(samples)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"rendering the test scenes failed (is bpy installed?):\n{done.stderr[-3000:]}")
    return folder


def make_model(path: Path | None):
    if path is not None:
        return load_model(path), True
    # Untrained: the real architecture, random convolutions and random gamma/beta
    # so the "style" is a fixed but arbitrary nonlinear filter.
    model = new_model([Style("untrained", {})], Architecture(num_styles=1), seed=0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for norm in model.network.norms():
            norm.gamma.copy_(1.0 + 0.5 * torch.randn(norm.gamma.shape, generator=g))
            norm.beta.copy_(0.5 * torch.randn(norm.beta.shape, generator=g))
    return model, False


class StyleLoss:
    """Gram style loss against one style image, via the training code's VGG and losses."""

    def __init__(self, vgg_path: Path, style_image: Path, style_size: int = 256):
        from PIL import Image

        from pastiche_core.perceptual.losses import gram, relative_distance
        from pastiche_core.perceptual.vgg import convention_from_metadata, load_vgg, read_vgg_file

        _, metadata = read_vgg_file(vgg_path, "relu1_1")
        convention = None if convention_from_metadata(metadata) else "caffe"
        self.vgg = load_vgg(vgg_path, STYLE_LAYERS, convention)
        self._gram, self._distance = gram, relative_distance
        img = Image.open(style_image).convert("RGB")
        img.thumbnail((style_size, style_size), Image.LANCZOS)
        with torch.no_grad():
            feats = self.vgg(self._tensor(np.asarray(img, np.float32) / 255.0))
        self.targets = {n: gram(feats[n]) for n in STYLE_LAYERS}

    @staticmethod
    def _tensor(images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images))
        return (x[None] if x.dim() == 3 else x).permute(0, 3, 1, 2).float()

    @torch.no_grad()
    def __call__(self, frames: list[np.ndarray]) -> float:
        feats = self.vgg(self._tensor(np.stack(frames)))
        total = torch.zeros(len(frames))
        for n in STYLE_LAYERS:
            g = self._gram(feats[n])
            total += self._distance(g, self.targets[n].expand_as(g))
        return float(total.mean())


# -- modes ------------------------------------------------------------------------------

def run_per_frame(stylizer: Stylizer, frames, vectors, weights=None) -> list[np.ndarray]:
    return [stylizer.stylize(f, weights) for f in frames]


def run_temporal(stylizer: Stylizer, frames, vectors, blend: float = DEFAULT_BLEND,
                 stats_blend: float = DEFAULT_STATS_BLEND, preserve_contrast: bool = True,
                 history: int = DEFAULT_HISTORY, weights=None) -> list[np.ndarray]:
    ts = TemporalStylizer(stylizer, blend=blend, stats_blend=stats_blend, history=history,
                          preserve_contrast=preserve_contrast, vector_rows="top_down")
    return [ts.step(f, v, weights) for f, v in zip(frames, vectors, strict=True)]


def run_recursive(stylizer: Stylizer, frames, vectors, blend: float, weights=None) -> list[np.ndarray]:
    """Reference only: plain blend with the previous *output* (as in Ruder et
    al. 2016). Its memory is unbounded, so chunked renders would differ."""
    outs: list[np.ndarray] = []
    prev_motion: Motion | None = None
    for f, v in zip(frames, vectors, strict=True):
        motion = motion_from_vector_pass(v, "top_down")
        out = stylizer.stylize(f, weights)
        if outs and prev_motion is not None:
            valid = visible_in_previous(motion, prev_motion)
            warped, _ = warp(outs[-1], motion.to_prev)
            out = out + (blend * valid.astype(np.float32))[..., None] * (warped - out)
        outs.append(out.astype(np.float32))
        prev_motion = motion
    return outs


def blend_overhead_ms(height: int = 1080, width: int = 1920, repeats: int = 3) -> float:
    """Milliseconds per frame that temporal mode adds besides the network
    (visibility, warping, contrast-preserving blend) at the given size."""
    rng = np.random.default_rng(0)
    cur = torch.from_numpy(rng.random((height, width, 3), dtype=np.float32))
    old = torch.from_numpy(rng.random((height, width, 3), dtype=np.float32))
    vec = (rng.standard_normal((height, width, 4)) * 2).astype(np.float32)
    ts = TemporalStylizer.__new__(TemporalStylizer)  # only the blending half, no network
    ts.blend, ts.stats_blend, ts.preserve_contrast, ts.history = DEFAULT_BLEND, 0.0, True, DEFAULT_HISTORY
    mix = torch.ones(1, 1)  # both frames in the same style: the full blend weight
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        m = motion_from_vector_pass(vec)
        to_prev, to_next = torch.from_numpy(m.to_prev), torch.from_numpy(m.to_next)
        visible = _visible_t(to_prev, to_next, exact=False)
        warped, _ = _warp_t(old, to_prev, exact=False, mode=STYLIZED_WARP)
        ts._combine(None, mix, cur, None, None, None, [HistoryFrame(warped, visible, mix)])
        best = min(best, time.perf_counter() - t0)
    return 1000 * best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Per-frame vs temporal stylization of Blender test animations.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--model", type=Path, help="a trained .safetensors model (default: untrained network)")
    p.add_argument("--style", help="the model's style to use (default: its first); "
                   "give the matching painting with --style-image")
    p.add_argument("--style-image", type=Path, default=DEFAULT_STYLE, help="target of the style loss")
    p.add_argument("--vgg", type=Path, default=DEFAULT_VGG, help="VGG-19 safetensors for the style loss")
    p.add_argument("--scenes-dir", type=Path, help="where the renders are (rendered there if missing)")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--samples", type=int, default=48)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.manual_seed(0)

    folder = ensure_scenes(args.scenes_dir, args.size, args.frames, args.samples)
    model, trained = make_model(args.model)
    stylizer = Stylizer(model, device=args.device, precision="fp32")
    style = args.style or stylizer.style_names[0]
    if style not in stylizer.style_names:
        p.error(f"the model has no style {style!r}; it has: {', '.join(stylizer.style_names)}")
    w = {style: 1.0}
    style_loss = None
    style_note = "no VGG file: style loss not measured"
    if args.vgg.exists() and args.style_image.exists():
        style_loss = StyleLoss(args.vgg, args.style_image)
        style_note = f"Gram loss vs {args.style_image.name} (VGG-19 {', '.join(STYLE_LAYERS)})"

    stats_on = DEFAULT_STATS_BLEND or 0.5
    modes = {
        "per_frame": lambda fr, ve: run_per_frame(stylizer, fr, ve, w),
        "temporal": lambda fr, ve: run_temporal(stylizer, fr, ve, weights=w),
        "temporal_history_2": lambda fr, ve: run_temporal(stylizer, fr, ve, history=2, weights=w),
        "temporal_plain_blend": lambda fr, ve: run_temporal(stylizer, fr, ve, preserve_contrast=False, weights=w),
        "temporal_plus_stats_blend": lambda fr, ve: run_temporal(stylizer, fr, ve, stats_blend=stats_on, weights=w),
        "stats_blend_only": lambda fr, ve: run_temporal(stylizer, fr, ve, blend=0.0, stats_blend=stats_on,
                                                        weights=w),
        "recursive_not_chunk_safe": lambda fr, ve: run_recursive(stylizer, fr, ve, DEFAULT_BLEND, w),
    }
    scenes: dict[str, dict] = {}
    for npz in sorted(folder.glob("*.npz")):
        data = np.load(npz)
        frames = [linear_to_srgb(f) for f in data["rgb"]]
        vectors = list(data["vector"])
        motions = [motion_from_vector_pass(v, "top_down") for v in vectors]
        # The renders themselves, judged with the Vector pass read as documented and
        # with its sign flipped: a check of the convention on every run.
        flipped = [Motion(-m.to_prev, -m.to_next) for m in motions]
        row: dict[str, dict] = {"render": {"warp_error": warp_error(frames, motions).mean,
                                           "warp_error_flipped_vectors": warp_error(frames, flipped).mean}}
        for name, fn in modes.items():
            t0 = time.perf_counter()
            outs = fn(frames, vectors)
            seconds = time.perf_counter() - t0
            werr = warp_error(outs, motions)
            row[name] = {
                "warp_error": werr.mean,
                "style_loss": style_loss(outs) if style_loss else None,
                "ms_per_frame": 1000 * seconds / len(frames),
            }
        row["visible_fraction"] = werr.visible_fraction
        scenes[npz.stem] = row

    def mean(mode: str, key: str):
        vals = [s[mode][key] for s in scenes.values()]
        return None if any(v is None for v in vals) else float(np.mean(vals))

    summary = {
        "per_frame_warp_error": mean("per_frame", "warp_error"),
        "temporal_warp_error": mean("temporal", "warp_error"),
        "per_frame_style_loss": mean("per_frame", "style_loss"),
        "temporal_style_loss": mean("temporal", "style_loss"),
    }
    overhead = blend_overhead_ms()
    summary["warp_error_ratio"] = summary["temporal_warp_error"] / summary["per_frame_warp_error"]
    if summary["per_frame_style_loss"]:
        summary["style_loss_ratio"] = summary["temporal_style_loss"] / summary["per_frame_style_loss"]
    untrained_note = ("figures are for an UNTRAINED, randomly initialized network (random gamma/beta); "
                      "rerun with --model for a trained one") if not trained else None
    result = {
        **summary,
        "trained_model": trained,
        "model": str(args.model) if args.model else "untrained (random init, seed 0)",
        "style": style,
        "note": untrained_note,
        "style_loss_definition": style_note,
        "defaults": {"blend": DEFAULT_BLEND, "history": DEFAULT_HISTORY, "stats_blend": DEFAULT_STATS_BLEND},
        "blend_overhead_ms_1920x1080": overhead,
        "render": json.loads((folder / "scenes.json").read_text()),
        "scenes": scenes,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
                   f"torch {torch.__version__}, device {args.device}",
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    if untrained_note:
        print(f"NOTE: {untrained_note}\n")
    print(f"model: {result['model']}, style {style!r}; style loss: {style_note}")
    print(f"renders: {result['render']['size']} px, {result['render']['frames']} frames, Cycles "
          f"{result['render']['samples']} samples; machine: {result['machine']}\n")
    names = ["render", *modes]
    print(f"{'scene':<17}{'mode':<26}{'warp error':>12}{'x per-frame':>13}{'style loss':>12}{'ms/frame':>10}")
    for scene, row in scenes.items():
        base = row["per_frame"]["warp_error"]
        for name in names:
            r = row[name]
            sl = "" if r.get("style_loss") is None else f"{r['style_loss']:.4f}"
            ms = "" if "ms_per_frame" not in r else f"{r['ms_per_frame']:.0f}"
            print(f"{scene:<17}{name:<26}{r['warp_error']:>12.6f}{r['warp_error'] / base:>13.2f}{sl:>12}{ms:>10}")
        print(f"{'':<17}{'(render, vectors flipped)':<26}{row['render']['warp_error_flipped_vectors']:>12.6f}"
              "   <- sign check: far above the line above where things move")
        print()
    print(f"mean over scenes: warping error per-frame {summary['per_frame_warp_error']:.6f}, "
          f"temporal {summary['temporal_warp_error']:.6f} (x{summary['warp_error_ratio']:.2f}, target <= 0.5)")
    print(f"temporal mode's work besides the network (visibility, warp, blend): {overhead:.0f} ms "
          f"per 1920 x 1080 frame on this machine")
    if summary["per_frame_style_loss"]:
        print(f"style loss per-frame {summary['per_frame_style_loss']:.4f}, temporal "
              f"{summary['temporal_style_loss']:.4f} (x{summary['style_loss_ratio']:.3f}, target within 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

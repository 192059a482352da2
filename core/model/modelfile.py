"""Model files: safetensors tensors plus JSON metadata, validated on load.

Never pickle: a model file holds only tensors and strings, so opening a file
from the internet cannot run code. Loading checks the format version, the
architecture, every tensor's name, shape and dtype, the style names and
credits, and refuses anything else with an error that names the problem.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import ModelFileError
from ..io.atomic import atomic_path
from ..io.safetensors_header import TOO_SMALL, SafetensorsHeaderError, read_header
from .default_model import default_model_path
from .network import Architecture, StyleNetwork

FORMAT = "pastiche-model"
FORMAT_VERSION = 1
CREDIT_KEYS = ("artist", "title", "year", "licence", "source")
_ALLOWED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Bounds that stop a hostile header from asking for absurd allocations.
_MAX_STYLES, _MAX_CHANNELS, _MAX_RESIDUAL, _MAX_KERNEL = 4096, 1024, 64, 15


@dataclass
class Style:
    name: str
    credit: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "credit": dict(self.credit)}


@dataclass
class PasticheModel:
    """A loaded model: the network plus what the file says about its styles."""

    network: StyleNetwork
    styles: list[Style]
    training: dict = field(default_factory=dict)

    @property
    def style_names(self) -> list[str]:
        return [s.name for s in self.styles]

    @property
    def architecture(self) -> Architecture:
        return self.network.arch

    def describe(self) -> dict:
        """A JSON-ready summary (what ``pastiche info --json`` prints)."""
        return {
            "styles": [s.to_dict() for s in self.styles],
            "architecture": self.architecture.to_dict(),
            "training": self.training,
            "format_version": FORMAT_VERSION,
        }


def new_model(styles: list[Style], arch: Architecture | None = None, seed: int | None = None) -> PasticheModel:
    """A freshly initialized (untrained) model for the given styles."""
    validate_styles([s.to_dict() for s in styles])
    arch = arch or Architecture(num_styles=len(styles))
    if arch.num_styles != len(styles):
        raise ModelFileError(f"architecture has {arch.num_styles} styles but {len(styles)} were named")
    if seed is not None:
        torch.manual_seed(seed)
    return PasticheModel(StyleNetwork(arch), styles, {})


def save_model(model: PasticheModel, path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Path:
    """Write the model atomically (temporary file + rename) as safetensors."""
    path = Path(path)
    validate_styles([s.to_dict() for s in model.styles])
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.network.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "architecture": json.dumps(model.architecture.to_dict()),
        "styles": json.dumps([s.to_dict() for s in model.styles]),
        "training": json.dumps(model.training),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def resolve_model_path(model: str | None) -> Path:
    """The model the user named, else the bundled default; a clear error if neither exists."""
    if model:
        return Path(model)
    found = default_model_path()
    if found is None:
        raise ModelFileError(
            "no model given and no default model is bundled with this install: "
            "pass --model PATH (train one with `pastiche train`)"
        )
    return found


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> PasticheModel:
    """Load and fully validate a model file. Raises ModelFileError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            arch, styles, training = _parse_metadata(metadata, path)
            expected = StyleNetwork(arch).state_dict()
            keys = set(f.keys())
            missing = sorted(set(expected) - keys)
            extra = sorted(keys - set(expected))
            if missing:
                raise ModelFileError(f"{path.name}: missing tensor(s) {', '.join(missing[:5])}")
            if extra:
                raise ModelFileError(f"{path.name}: unexpected tensor(s) {', '.join(extra[:5])}")
            state = {}
            for k, ref in expected.items():
                t = f.get_tensor(k)
                if t.dtype not in _ALLOWED_DTYPES:
                    raise ModelFileError(f"{path.name}: tensor {k} has unsupported dtype {t.dtype}")
                if tuple(t.shape) != tuple(ref.shape):
                    raise ModelFileError(
                        f"{path.name}: tensor {k} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}"
                    )
                if not torch.isfinite(t).all():
                    raise ModelFileError(f"{path.name}: tensor {k} holds NaN or infinite values")
                state[k] = t.float()
    except SafetensorError as e:
        raise ModelFileError(f"{path.name} is not a valid safetensors file (truncated or corrupt?): {e}") from None
    network = StyleNetwork(arch)
    network.load_state_dict(state, strict=True)
    network.eval().requires_grad_(False)
    return PasticheModel(network.to(device), styles, training)


def _check_safetensors_header(path: Path) -> None:
    """Reject non-safetensors files (pickles, zips, text) before parsing."""
    try:
        read_header(path)
    except SafetensorsHeaderError as e:
        if e.reason == TOO_SMALL:
            raise ModelFileError(
                f"{path.name} is too small to be a safetensors model file ({e.size} bytes)") from None
        raise ModelFileError(
            f"{path.name} is not a safetensors file (Pastiche loads only safetensors, never pickles)"
        ) from None


def _parse_metadata(metadata: dict[str, str], path: Path) -> tuple[Architecture, list[Style], dict]:
    name = path.name
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{name} is a safetensors file but not a Pastiche model (no 'format: {FORMAT}')")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise ModelFileError(f"{name}: format_version is missing or not an integer") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{name} uses model format {version}; this Pastiche reads up to {FORMAT_VERSION}: please update")
    try:
        arch_d = json.loads(metadata["architecture"])
        styles_d = json.loads(metadata["styles"])
        training = json.loads(metadata.get("training", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{name}: metadata is incomplete or not valid JSON ({e})") from None
    arch = validate_architecture(arch_d, name)
    styles = validate_styles(styles_d, name)
    if len(styles) != arch.num_styles:
        raise ModelFileError(f"{name}: {len(styles)} style names for {arch.num_styles} styles in the network")
    if not isinstance(training, dict):
        raise ModelFileError(f"{name}: training summary must be a JSON object")
    return arch, styles, training


def validate_architecture(d: object, name: str = "model") -> Architecture:
    try:
        if not isinstance(d, dict):
            raise TypeError("not an object")
        arch = Architecture.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{name}: architecture metadata is malformed ({e})") from None
    checks = [
        (1 <= arch.num_styles <= _MAX_STYLES, "num_styles"),
        (len(arch.channels) == 3 and all(1 <= c <= _MAX_CHANNELS for c in arch.channels), "channels"),
        (len(arch.up) == 2 and all(1 <= c <= _MAX_CHANNELS for c in arch.up), "up_channels"),
        (0 <= arch.num_residual <= _MAX_RESIDUAL, "num_residual"),
        (arch.first_kernel % 2 == 1 and 1 <= arch.first_kernel <= _MAX_KERNEL, "first_kernel"),
        (arch.last_kernel % 2 == 1 and 1 <= arch.last_kernel <= _MAX_KERNEL, "last_kernel"),
    ]
    for ok, field_name in checks:
        if not ok:
            raise ModelFileError(f"{name}: architecture field {field_name} is out of range: {d}")
    return arch


def validate_styles(styles_d: object, name: str = "model") -> list[Style]:
    if not isinstance(styles_d, list) or not styles_d:
        raise ModelFileError(f"{name}: the style list is missing or empty")
    styles: list[Style] = []
    seen: set[str] = set()
    for i, s in enumerate(styles_d):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not s["name"].strip():
            raise ModelFileError(f"{name}: style #{i} has no name")
        sname = s["name"]
        if sname in seen:
            raise ModelFileError(f"{name}: style name {sname!r} appears twice; names must be unique")
        seen.add(sname)
        credit = s.get("credit", {}) or {}
        if not isinstance(credit, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in credit.items()):
            raise ModelFileError(f"{name}: credit of style {sname!r} must map strings to strings")
        styles.append(Style(sname, {k: str(v) for k, v in credit.items()}))
    return styles



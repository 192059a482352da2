"""Model files: safetensors tensors plus JSON metadata, validated on load.

Never pickle: a model file holds only tensors and strings, so opening a file
from the internet cannot run code. Loading checks the format version, the
architecture, every tensor's name, shape and dtype, the style names and
credits, and refuses anything else with an error that names the problem.

Integrity: the writer stores a SHA-256 of the tensor data (every tensor's raw
bytes, in sorted key order) in the metadata and the reader recomputes it, so a
flipped bit or an overwritten block is reported as a damaged file instead of
giving a subtly wrong picture. Files written before the checksum existed still
load (`pastiche info` says they carry none).

Bounded resources: the architecture in the metadata is checked against a
parameter cap and against the file's own tensor shapes (read from the header,
on PyTorch's "meta" device, which allocates nothing) before any tensor is read
or any network is built, so a small file cannot make the loader allocate GBs.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
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
# The largest network a file may declare (400 MB in float32; the full 20-style model has 1.7 M).
MAX_PARAMETERS = 100_000_000
CHECKSUM_KEY = "tensor_sha256"
# Trained weights stay within a few tens; a weight this large overflows the network
# (a black or NaN picture), so it can only be damage or a broken training run.
MAX_ABS_WEIGHT = 1e6
_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


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
    # "verified" when the file's tensor checksum matched; None for older files without one
    # (and for models made in memory).
    checksum: str | None = None

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
            "checksum": self.checksum,
        }


def reorder_styles(model: PasticheModel, names: list[str]) -> PasticheModel:
    """The same model with its styles in the order ``names`` gives (a permutation of
    them): every norm's gamma/beta rows move with their style, so each style's
    pictures stay exactly the same. Training orders styles by file; a shipped model
    puts its best-known style first (the one a bare ``pastiche stylize`` uses)."""
    if sorted(names) != sorted(model.style_names) or len(set(names)) != len(names):
        raise ModelFileError(f"reorder_styles needs the model's styles in a new order; got {names}, "
                             f"the model has {model.style_names}")
    index = torch.tensor([model.style_names.index(n) for n in names])
    with torch.no_grad():
        for norm in model.network.norms():
            norm.gamma.copy_(norm.gamma[index])
            norm.beta.copy_(norm.beta[index])
    by_name = {s.name: s for s in model.styles}
    model.styles = [by_name[n] for n in names]
    return model


def new_model(styles: list[Style], arch: Architecture | None = None, seed: int | None = None) -> PasticheModel:
    """A freshly initialized (untrained) model for the given styles."""
    validate_styles([s.to_dict() for s in styles], new=True)
    arch = arch or Architecture(num_styles=len(styles))
    if arch.num_styles != len(styles):
        raise ModelFileError(f"architecture has {arch.num_styles} styles but {len(styles)} were named")
    if seed is not None:
        torch.manual_seed(seed)
    return PasticheModel(StyleNetwork(arch), styles, {})


def save_model(model: PasticheModel, path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Path:
    """Write the model atomically (temporary file + rename) as safetensors."""
    path = Path(path)
    validate_styles([s.to_dict() for s in model.styles], new=True)
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.network.state_dict().items()}
    digest = hashlib.sha256()
    for k in sorted(tensors):
        _hash_tensor(digest, tensors[k])
    metadata = {
        CHECKSUM_KEY: digest.hexdigest(),
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
            expected = expected_tensors(arch, path.name)
            _check_tensor_index(f, expected, path.name)
            stored = metadata.get(CHECKSUM_KEY)
            digest = hashlib.sha256()
            raw = {}
            for k in sorted(expected):
                raw[k] = f.get_tensor(k)
                _hash_tensor(digest, raw[k])
            if stored is not None and digest.hexdigest() != stored:
                raise ModelFileError(
                    f"{path.name} is damaged: its tensor data does not match the checksum it was "
                    "saved with (a corrupted download or disk?); re-download or re-export the model")
            state = {}
            for k, t in raw.items():
                if not torch.isfinite(t).all():
                    raise ModelFileError(f"{path.name}: tensor {k} holds NaN or infinite values")
                big = float(t.abs().max()) if t.numel() else 0.0
                if big > MAX_ABS_WEIGHT:
                    raise ModelFileError(f"{path.name}: tensor {k} holds a weight of {big:.3g}, far beyond "
                                         f"any trained network's (at most {MAX_ABS_WEIGHT:g}): the model "
                                         "is damaged")
                state[k] = t.float()
            del raw
    except SafetensorError as e:
        raise ModelFileError(f"{path.name} is not a valid safetensors file (truncated or corrupt?): {e}") from None
    network = StyleNetwork(arch)
    network.load_state_dict(state, strict=True)
    network.eval().requires_grad_(False)
    return PasticheModel(network.to(device), styles, training,
                         checksum="verified" if stored is not None else None)


def _hash_tensor(digest: hashlib._Hash, t: torch.Tensor) -> None:
    # Raw bytes, whatever the dtype (numpy has no bfloat16): view as uint8.
    digest.update(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def expected_tensors(arch: Architecture, name: str = "model") -> dict[str, torch.Size]:
    """Every tensor name and shape the architecture needs, computed on the meta device
    (no memory); refuses architectures above MAX_PARAMETERS."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in StyleNetwork(arch).state_dict().items()}
    count = sum(s.numel() for s in shapes.values())
    if count > MAX_PARAMETERS:
        raise ModelFileError(f"{name}: the architecture declares {count:,} parameters, more than the "
                             f"supported {MAX_PARAMETERS:,}")
    return shapes


def _check_tensor_index(f, expected: dict[str, torch.Size], name: str) -> None:
    """Names, shapes and dtypes from the safetensors header, before any tensor is read."""
    keys = set(f.keys())
    missing = sorted(set(expected) - keys)
    extra = sorted(keys - set(expected))
    if missing:
        raise ModelFileError(f"{name}: missing tensor(s) {', '.join(missing[:5])}")
    if extra:
        raise ModelFileError(f"{name}: unexpected tensor(s) {', '.join(extra[:5])}")
    for k, shape in expected.items():
        info = f.get_slice(k)
        dtype = _SAFETENSORS_DTYPES.get(info.get_dtype())
        if dtype not in _ALLOWED_DTYPES:
            raise ModelFileError(f"{name}: tensor {k} has unsupported dtype {info.get_dtype()}")
        if tuple(info.get_shape()) != tuple(shape):
            raise ModelFileError(
                f"{name}: tensor {k} has shape {tuple(info.get_shape())}, expected {tuple(shape)}")


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


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def validate_styles(styles_d: object, name: str = "model", new: bool = False) -> list[Style]:
    """``new``: a model being made or saved, whose names must also be free of control
    characters (terminal escape codes); existing files load and are printed sanitized."""
    if not isinstance(styles_d, list) or not styles_d:
        raise ModelFileError(f"{name}: the style list is missing or empty")
    styles: list[Style] = []
    seen: set[str] = set()
    for i, s in enumerate(styles_d):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not s["name"].strip():
            raise ModelFileError(f"{name}: style #{i} has no name")
        sname = s["name"]
        if new and _has_control_characters(sname):
            raise ModelFileError(f"{name}: style name {sname!r} holds control characters")
        if sname in seen:
            raise ModelFileError(f"{name}: style name {sname!r} appears twice; names must be unique")
        seen.add(sname)
        credit = s.get("credit", {}) or {}
        if not isinstance(credit, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in credit.items()):
            raise ModelFileError(f"{name}: credit of style {sname!r} must map strings to strings")
        styles.append(Style(sname, {k: str(v) for k, v in credit.items()}))
    return styles



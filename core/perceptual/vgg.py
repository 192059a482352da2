"""The loss network: VGG-19 convolution layers read from a safetensors file.

The file holds tensors in torchvision's ``vgg19().features`` key layout
(``features.0.weight`` ... ``features.34.bias``). Two input conventions
exist and the weights only work with the one they were trained with:

* ``caffe``: BGR channel order, values 0-255 minus the ImageNet mean
  (the original Oxford weights, and the development copy in shared/assets);
* ``torchvision``: RGB in [0, 1] minus mean, divided by std (torchvision's
  own ImageNet weights).

The convention comes from the file's metadata (a ``convention`` key, or the
human-readable ``input`` key) or from the caller; when both are given they
must agree. The module takes display sRGB in [0, 1], converts it to the
file's convention itself, runs only the layers up to the deepest one the
losses need, and is frozen. Never unpickles anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..errors import ModelFileError
from ..io.atomic import atomic_path
from ..io.safetensors_header import SafetensorsHeaderError, has_safetensors_prefix, read_header

CONVENTIONS = ("caffe", "torchvision")

# torchvision's VGG-19 "E" configuration: channels per conv, "M" = max pool.
_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TV_MEAN = (0.485, 0.456, 0.406)
_TV_STD = (0.229, 0.224, 0.225)


def _layer_table() -> tuple[dict[str, int], dict[int, str], dict[int, int]]:
    """Names -> index in ``features``; conv index -> conv name; conv index -> width."""
    index: dict[str, int] = {}
    conv_names: dict[int, str] = {}
    widths: dict[int, int] = {}
    i, block, n = 0, 1, 1
    for c in _CFG:
        if c == "M":
            index[f"pool{block}"] = i
            i, block, n = i + 1, block + 1, 1
            continue
        conv_names[i] = f"conv{block}_{n}"
        widths[i] = int(c)
        index[f"conv{block}_{n}"] = i
        index[f"relu{block}_{n}"] = i + 1
        i, n = i + 2, n + 1
    return index, conv_names, widths


LAYER_INDEX, CONV_NAMES, VGG19_WIDTHS = _layer_table()
RELU_LAYERS = tuple(k for k in LAYER_INDEX if k.startswith("relu"))


class VGGWeightsError(ModelFileError):
    """The VGG weights file is missing, not VGG-19, incomplete or of unknown convention."""


def check_layers(layers: list[str] | tuple[str, ...]) -> None:
    for name in layers:
        if name not in RELU_LAYERS:
            raise VGGWeightsError(
                f"unknown loss layer {name!r}; use VGG-19 ReLU names such as relu1_1, relu3_1, relu4_2"
            )


def convention_from_metadata(metadata: dict[str, str] | None) -> str | None:
    """The input convention a VGG file declares, or None if it says nothing usable."""
    metadata = metadata or {}
    declared = metadata.get("convention", "").strip().lower()
    if declared in CONVENTIONS:
        return declared
    text = metadata.get("input", "").lower()
    if "caffe" in text or "bgr" in text:
        return "caffe"
    if "torchvision" in text or "std" in text:
        return "torchvision"
    return None


def convention_metadata(convention: str) -> dict[str, str]:
    """Metadata to write into a VGG file so loaders know its convention."""
    if convention == "caffe":
        text = "BGR channel order, values 0-255, minus mean [103.939, 116.779, 123.68] (Caffe convention)"
    elif convention == "torchvision":
        text = ("RGB channel order, values 0-1, minus mean [0.485, 0.456, 0.406], divided by std "
                "[0.229, 0.224, 0.225] (torchvision convention)")
    else:
        raise VGGWeightsError(f"unknown VGG input convention {convention!r}; use caffe or torchvision")
    return {"convention": convention, "input": text,
            "architecture": "vgg19.features (torchvision key layout, conv layers only)"}


class VGGFeatures(nn.Module):
    """Frozen VGG-19 prefix returning the ReLU outputs named in ``layers``.

    Input: display sRGB in [0, 1], (B, 3, H, W). Output: dict name -> features.
    """

    def __init__(self, state: dict[str, torch.Tensor], layers: list[str] | tuple[str, ...], convention: str):
        super().__init__()
        check_layers(layers)
        if convention not in CONVENTIONS:
            raise VGGWeightsError(f"unknown VGG input convention {convention!r}; use caffe or torchvision")
        self.convention = convention
        self.layers = tuple(dict.fromkeys(layers))
        self._wanted = {LAYER_INDEX[name]: name for name in self.layers}
        deepest = max(self._wanted)
        modules: list[nn.Module] = []
        for i in range(deepest + 1):
            if i in CONV_NAMES:
                w = state[f"features.{i}.weight"]
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight.data.copy_(w.float())
                conv.bias.data.copy_(state[f"features.{i}.bias"].float())
                modules.append(conv)
            elif (i - 1) in CONV_NAMES:
                modules.append(nn.ReLU(inplace=True))
            else:
                modules.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        if convention == "caffe":
            perm, scale = [2, 1, 0], torch.full((3,), 255.0)
            shift = -torch.tensor(_CAFFE_MEAN_BGR)
        else:
            perm, scale = [0, 1, 2], 1.0 / torch.tensor(_TV_STD)
            shift = -torch.tensor(_TV_MEAN) / torch.tensor(_TV_STD)
        self._perm = perm
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        # Always frozen: no dropout or batch norm here, but keep eval() semantics.
        return super().train(False)

    @property
    def widths(self) -> dict[str, int]:
        """Channels of each returned layer (the Gram matrices' size)."""
        out = {}
        for name in self.layers:
            conv = self.features[LAYER_INDEX[name] - 1]
            out[name] = conv.out_channels
        return out

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Display sRGB [0, 1] -> the weights' input convention."""
        if self._perm != [0, 1, 2]:
            x = x[:, self._perm]
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalize(x)
        out: dict[str, torch.Tensor] = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self._wanted:
                out[self._wanted[i]] = x
        return out


def _check_header(path: Path) -> None:
    try:
        read_header(path)
    except SafetensorsHeaderError:
        raise VGGWeightsError(
            f"{path.name} is not a safetensors file; Pastiche reads VGG weights only as safetensors "
            "(never pickles): see docs/training.md to convert torchvision's VGG-19 once"
        ) from None


def read_vgg_file(path: str | os.PathLike, deepest_layer: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Validated conv tensors up to ``deepest_layer`` plus the file's metadata."""
    path = Path(path)
    if not path.is_file():
        raise VGGWeightsError(
            f"VGG weights file not found: {path} (pass --vgg PATH or set PASTICHE_VGG; "
            "docs/training.md says where to get VGG-19 weights)"
        )
    _check_header(path)
    deepest = LAYER_INDEX[deepest_layer]
    needed = [i for i in CONV_NAMES if i < deepest]
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            keys = set(f.keys())
            present: set[int] = set()
            for k in keys:
                parts = k.split(".")
                if len(parts) != 3 or parts[0] != "features" or not parts[1].isdigit() or parts[2] not in ("weight", "bias"):
                    raise VGGWeightsError(
                        f"{path.name} is not a VGG-19 'features' file: unexpected tensor {k!r} "
                        "(expected torchvision keys such as features.0.weight)"
                    )
                idx = int(parts[1])
                if idx not in CONV_NAMES:
                    raise VGGWeightsError(
                        f"{path.name}: features.{idx} is not a convolution in VGG-19 "
                        "(is this VGG-16 or another network?)"
                    )
                present.add(idx)
            missing = [i for i in needed if i not in present]
            if missing:
                have = max(present) if present else None
                have_s = f"up to {CONV_NAMES[have]}" if have is not None else "no convolution layers"
                raise VGGWeightsError(
                    f"{path.name} holds VGG-19 layers {have_s} but the losses need {deepest_layer} "
                    f"(missing {CONV_NAMES[missing[0]]}); choose shallower loss layers or a complete VGG-19 file"
                )
            state: dict[str, torch.Tensor] = {}
            prev_out = 3
            for i in needed:
                for part in ("weight", "bias"):
                    if f"features.{i}.{part}" not in keys:
                        raise VGGWeightsError(f"{path.name}: features.{i}.{part} ({CONV_NAMES[i]}) is missing")
                w = f.get_tensor(f"features.{i}.weight")
                b = f.get_tensor(f"features.{i}.bias")
                name = CONV_NAMES[i]
                if not (w.is_floating_point() and b.is_floating_point()):
                    raise VGGWeightsError(f"{path.name}: {name} has non-float dtype {w.dtype}")
                if w.dim() != 4 or w.shape[2:] != (3, 3) or w.shape[1] != prev_out or tuple(b.shape) != (w.shape[0],):
                    raise VGGWeightsError(
                        f"{path.name}: {name} has weight shape {tuple(w.shape)} and bias shape {tuple(b.shape)}; "
                        f"VGG-19 expects ({VGG19_WIDTHS[i]}, {prev_out}, 3, 3): the file does not match VGG-19"
                    )
                if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
                    raise VGGWeightsError(f"{path.name}: {name} holds NaN or infinite values")
                state[f"features.{i}.weight"], state[f"features.{i}.bias"] = w, b
                prev_out = w.shape[0]
    except SafetensorError as e:
        raise VGGWeightsError(f"{path.name} is not a valid safetensors file (truncated or corrupt?): {e}") from None
    return state, metadata


def load_vgg(path: str | os.PathLike, layers: list[str] | tuple[str, ...], convention: str | None = None,
             device: str | torch.device = "cpu") -> VGGFeatures:
    """Load the VGG-19 prefix the given ReLU ``layers`` need, frozen, in fp32.

    ``convention`` (caffe or torchvision) is required when the file's
    metadata does not declare one, and must agree with it when it does.
    """
    check_layers(layers)
    if convention is not None and convention not in CONVENTIONS:
        raise VGGWeightsError(f"unknown VGG input convention {convention!r}; use caffe or torchvision")
    deepest = max(layers, key=lambda n: LAYER_INDEX[n])
    state, metadata = read_vgg_file(path, deepest)
    declared = convention_from_metadata(metadata)
    name = Path(path).name
    if declared is None and convention is None:
        raise VGGWeightsError(
            f"{name} does not say which input convention its weights use; pass --vgg-convention caffe "
            "(BGR 0-255 minus mean, Oxford/Caffe weights) or torchvision (RGB mean/std, torchvision weights)"
        )
    if declared is not None and convention is not None and declared != convention:
        raise VGGWeightsError(
            f"{name} declares the {declared} input convention but {convention} was asked for; "
            "leave --vgg-convention out or fix the file's metadata"
        )
    return VGGFeatures(state, layers, declared or convention).to(device)  # type: ignore[arg-type]


def vgg_path_from_env(path: str | os.PathLike | None) -> Path:
    """An explicit path, else $PASTICHE_VGG; a clear error when neither is set."""
    if path:
        return Path(path)
    env = os.environ.get("PASTICHE_VGG")
    if env:
        return Path(env)
    raise VGGWeightsError(
        "no VGG-19 weights given: pass --vgg PATH.safetensors or set PASTICHE_VGG "
        "(docs/training.md says where to get them)"
    )


def write_random_vgg(path: str | os.PathLike, deepest_layer: str = "relu4_1", width_scale: float = 1.0,
                     convention: str | None = "caffe", seed: int = 0) -> Path:
    """A randomly initialized VGG-19 prefix file (tests and benchmarks).

    ``width_scale`` < 1 shrinks every layer's channels (a slim, fast stand-in
    with the real key layout); ``convention`` None writes no metadata.
    """
    check_layers([deepest_layer])
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    prev = 3
    for i in sorted(CONV_NAMES):
        if i >= LAYER_INDEX[deepest_layer]:
            break
        out = max(1, round(VGG19_WIDTHS[i] * width_scale))
        std = (2.0 / (prev * 9)) ** 0.5
        tensors[f"features.{i}.weight"] = torch.randn(out, prev, 3, 3, generator=gen) * std
        tensors[f"features.{i}.bias"] = torch.zeros(out)
        prev = out
    path = Path(path)
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=convention_metadata(convention) if convention else None)
    return path


TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


def convert_to_safetensors(src: str | os.PathLike, dst: str | os.PathLike, convention: str) -> Path:
    """Turn a VGG-19 checkpoint into a Pastiche VGG file (conv layers only).

    ``src`` is a safetensors file, or a PyTorch ``.pth`` state dict such as
    torchvision's published ``vgg19-dcbb9e9d.pth``. A ``.pth`` is read with
    ``torch.load(weights_only=True)``, PyTorch's restricted unpickler that
    rebuilds tensors and plain containers only and refuses to run code: a
    one-time step the user asks for; Pastiche itself never loads pickles.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise VGGWeightsError(f"file not found: {src}")
    meta = convention_metadata(convention)
    with open(src, "rb") as fh:
        head = fh.read(9)
    if has_safetensors_prefix(head, src.stat().st_size):
        from safetensors.torch import load_file

        state = load_file(str(src))
    else:
        try:
            state = torch.load(src, map_location="cpu", weights_only=True)
        except Exception as e:  # the restricted unpickler raises many types
            raise VGGWeightsError(f"cannot read {src.name} as a PyTorch state dict (weights only): {e}") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise VGGWeightsError(f"{src.name} does not hold a state dict")
    convs = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()
             if isinstance(k, str) and k.startswith("features.") and isinstance(v, torch.Tensor)}
    if not convs:
        raise VGGWeightsError(f"{src.name} holds no 'features.N' tensors: not a torchvision VGG-19 checkpoint")
    dst.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    with atomic_path(dst) as tmp:
        save_file(convs, str(tmp), metadata=meta)
        # The layout is checked before the file is kept.
        deepest = max((i for i in CONV_NAMES if f"features.{i}.weight" in convs), default=0)
        read_vgg_file(tmp, f"relu{CONV_NAMES[deepest][4:]}")
    return dst


def download_torchvision_vgg19(folder: str | os.PathLike) -> Path:
    """Fetch torchvision's published VGG-19 checkpoint (548 MB), only when asked.

    The file name carries the first 8 hex digits of its SHA-256; they are checked.
    """
    import hashlib
    import urllib.request

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / TORCHVISION_VGG19_URL.rsplit("/", 1)[1]
    if not dst.is_file():
        try:
            with atomic_path(dst, suffix=".part") as tmp:
                urllib.request.urlretrieve(TORCHVISION_VGG19_URL, tmp)  # noqa: S310 (fixed https URL)
        except OSError as e:
            raise VGGWeightsError(f"download of {TORCHVISION_VGG19_URL} failed: {e}") from None
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    expected = dst.stem.rsplit("-", 1)[1]
    if not digest.startswith(expected):
        raise VGGWeightsError(f"{dst} has SHA-256 {digest[:16]}..., expected {expected}...: delete it and retry")
    return dst

"""Read a model file's style list from its safetensors header, without torch.

The panel needs the style names to build its sliders the moment a model is
chosen, in Blender's own process where torch may not exist. The header is a
length-prefixed JSON object; its ``__metadata__`` holds the styles. Full
validation still happens when the worker loads the model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

_MAX_HEADER = 100 * 1024 * 1024
FORMAT = "pastiche-model"


class ModelHeaderError(ValueError):
    """The file is missing or is not a readable Pastiche model."""


@dataclass(frozen=True)
class ModelHeader:
    styles: tuple[str, ...]
    credits: tuple[dict, ...]
    format_version: int


def read_model_header(path: str | os.PathLike) -> ModelHeader:
    name = os.path.basename(os.fspath(path)) or os.fspath(path)
    if not os.path.isfile(path):
        raise ModelHeaderError(f"model file not found: {os.fspath(path)}")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelHeaderError(f"{name} is too small to be a model file ({size} bytes)")
        length = int.from_bytes(head, "little")
        if length <= 0 or length > min(size - 8, _MAX_HEADER):
            raise ModelHeaderError(f"{name} is not a safetensors model file (Pastiche loads only safetensors)")
        raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
        meta = header.get("__metadata__") or {}
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise ModelHeaderError(f"{name} has a corrupt header (truncated or not safetensors?)") from None
    if meta.get("format") != FORMAT:
        raise ModelHeaderError(f"{name} is a safetensors file but not a Pastiche model")
    try:
        styles = json.loads(meta["styles"])
        version = int(meta.get("format_version", "0"))
        names = tuple(str(s["name"]) for s in styles)
        credits = tuple(dict(s.get("credit") or {}) for s in styles)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        raise ModelHeaderError(f"{name}: the style list in its metadata is malformed") from None
    if not names or len(set(names)) != len(names):
        raise ModelHeaderError(f"{name}: the style list is empty or names a style twice")
    return ModelHeader(names, credits, version)

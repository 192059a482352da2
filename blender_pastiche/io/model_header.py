"""Read a model file's style list from its safetensors header, without torch.

The panel needs the style names to build its sliders the moment a model is
chosen, in Blender's own process where torch may not exist. The header is
read by the core's one safetensors header reader (loaded by file path); its
``__metadata__`` holds the styles. Full validation still happens when the
worker loads the model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..support import core_files

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
    headers = core_files.load_safetensors_header()
    try:
        meta = headers.read_metadata(path)
    except headers.SafetensorsHeaderError as e:
        if e.reason == headers.TOO_SMALL:
            raise ModelHeaderError(f"{name} is too small to be a model file ({e.size} bytes)") from None
        if e.reason == headers.NOT_SAFETENSORS:
            raise ModelHeaderError(f"{name} is not a safetensors model file (Pastiche loads only safetensors)") from None
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

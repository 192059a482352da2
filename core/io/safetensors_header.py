"""The one safetensors header reader: a file's JSON header, read without torch.

A safetensors file starts with an 8-byte little-endian header length, then
that many bytes of JSON (an object, so its first byte is ``{``), then the
tensor data. Checking that prefix refuses pickles, zips and text before any
parser sees them.

Standard library only, no relative imports: the add-on loads this file by
path in Blender's process (``blender_pastiche.support.core_files``), and
``build_addon.py`` loads it the same way, neither importing the core package.
Callers turn SafetensorsHeaderError into their own error and wording.
"""

from __future__ import annotations

import json
import os

MAX_HEADER = 100 * 1024 * 1024  # bytes; larger headers are refused, not read

# SafetensorsHeaderError.reason values
MISSING = "missing"
TOO_SMALL = "too small"
NOT_SAFETENSORS = "not safetensors"
CORRUPT = "corrupt"


class SafetensorsHeaderError(ValueError):
    """The file is missing, too small, not safetensors, or its JSON header is corrupt."""

    def __init__(self, reason: str, message: str, size: int = 0):
        super().__init__(message)
        self.reason = reason
        self.size = size


def has_safetensors_prefix(head: bytes, size: int) -> bool:
    """True when the first 9 bytes of a ``size``-byte file can start a safetensors file."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= min(size - 8, MAX_HEADER)


def read_header(path: str | os.PathLike) -> dict:
    """The parsed JSON header of a safetensors file (tensor entries and ``__metadata__``)."""
    name = os.path.basename(os.fspath(path)) or os.fspath(path)
    if not os.path.isfile(path):
        raise SafetensorsHeaderError(MISSING, f"file not found: {os.fspath(path)}")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(9)
        if len(head) < 9:
            raise SafetensorsHeaderError(
                TOO_SMALL, f"{name} is too small to be a safetensors file ({size} bytes)", size)
        if not has_safetensors_prefix(head, size):
            raise SafetensorsHeaderError(NOT_SAFETENSORS, f"{name} is not a safetensors file", size)
        raw = head[8:] + fh.read(int.from_bytes(head[:8], "little") - 1)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise SafetensorsHeaderError(
            CORRUPT, f"{name} has a corrupt safetensors header (truncated?)", size)
    return header


def read_metadata(path: str | os.PathLike) -> dict:
    """The string metadata (``__metadata__``) of a safetensors file; {} when it has none."""
    meta = read_header(path).get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise SafetensorsHeaderError(
            CORRUPT, f"{os.path.basename(os.fspath(path))}: __metadata__ is not an object")
    return meta

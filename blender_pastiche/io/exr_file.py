"""Reads the raw float channels of a single-part scanline OpenEXR file.

Blender's image loader is no help for data passes: Blender 4.5 writes a
Vector pass through a File Output node as channels X, Y, Z, W, and loading
that file back with ``bpy.data.images.load`` replaces W (the motion towards
the next frame) with 1.0. This reader returns the stored values exactly, on
every Blender version, for the files the add-on writes itself (File Output
nodes: uncompressed, ZIPS or ZIP, half or float channels).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

MAGIC = 20000630
# compression id -> scanlines per block
_LINES_PER_BLOCK = {0: 1, 2: 1, 3: 16}  # NONE, ZIPS, ZIP
_COMPRESSION_NAMES = {1: "RLE", 4: "PIZ", 5: "PXR24", 6: "B44", 7: "B44A", 8: "DWAA", 9: "DWAB"}
_PIXEL_TYPES: dict[int, np.dtype] = {1: np.dtype("<f2"), 2: np.dtype("<f4")}  # HALF, FLOAT (UINT is not data here)
# Channel names per 4-channel file, in the order the array gets them.
# Blender 5.0 writes Cryptomatte layers as r, g, b, a.
FOUR_CHANNELS = (("R", "G", "B", "A"), ("X", "Y", "Z", "W"), ("r", "g", "b", "a"))


class ExrError(ValueError):
    """The file is not an EXR this reader handles; the message says why."""


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("utf-8", "replace"), end + 1


def _header(data: bytes, path: str) -> tuple[dict[str, tuple[str, bytes]], int]:
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != MAGIC:
        raise ExrError(f"{path} is not an OpenEXR file")
    flags = struct.unpack_from("<i", data, 4)[0]
    if flags & 0x1A00:  # tiled, deep or multi-part
        raise ExrError(f"{path} is a tiled, deep or multi-part EXR; expected a plain scanline file")
    attrs: dict[str, tuple[str, bytes]] = {}
    pos = 8
    while data[pos] != 0:
        name, pos = _cstring(data, pos)
        kind, pos = _cstring(data, pos)
        (size,) = struct.unpack_from("<i", data, pos)
        pos += 4
        attrs[name] = (kind, data[pos:pos + size])
        pos += size
    return attrs, pos + 1


def _channels(value: bytes) -> list[tuple[str, np.dtype]]:
    out = []
    pos = 0
    while value[pos] != 0:
        name, pos = _cstring(value, pos)
        ptype, _linear, xs, ys = struct.unpack_from("<iB3xii", value, pos)
        pos += 16
        if ptype not in _PIXEL_TYPES or (xs, ys) != (1, 1):
            raise ExrError(f"channel {name!r} is not a full-resolution half/float channel")
        out.append((name, _PIXEL_TYPES[ptype]))
    return out


def _unzip(block: bytes, raw_size: int) -> bytes:
    """Undo EXR's ZIP(S) coding: zlib, then a byte predictor, then interleaving."""
    if len(block) == raw_size:  # stored uncompressed when compression did not help
        return block
    coded = np.frombuffer(zlib.decompress(block), np.uint8).astype(np.int64)
    coded[1:] -= 128
    plain = (np.cumsum(coded) % 256).astype(np.uint8)
    half = (plain.size + 1) // 2
    out = np.empty_like(plain)
    out[0::2] = plain[:half]
    out[1::2] = plain[half:]
    return out.tobytes()


def read_channels(path: str, full_float: bool = False) -> dict[str, np.ndarray]:
    """Every channel of the file as float32 H x W, rows top-down (EXR's order).
    ``full_float``: refuse half channels (IDs stored as float bits, such as
    Cryptomatte's, don't survive 16 bits)."""
    with open(path, "rb") as fh:
        data = fh.read()
    attrs, pos = _header(data, path)
    try:
        channels = _channels(attrs["channels"][1])
        if full_float and any(dt.itemsize != 4 for _, dt in channels):
            raise ExrError(f"{path} stores half floats; expected full 32-bit float channels")
        compression = attrs["compression"][1][0]
        xmin, ymin, xmax, ymax = struct.unpack("<4i", attrs["dataWindow"][1])
    except (KeyError, IndexError, struct.error) as e:
        raise ExrError(f"{path}: incomplete EXR header ({e})") from e
    if compression not in _LINES_PER_BLOCK:
        name = _COMPRESSION_NAMES.get(compression, str(compression))
        raise ExrError(f"{path} uses {name} compression; expected none, ZIPS or ZIP")
    width, height = xmax - xmin + 1, ymax - ymin + 1
    per_block = _LINES_PER_BLOCK[compression]
    blocks = -(-height // per_block)
    offsets = struct.unpack_from(f"<{blocks}Q", data, pos)
    line_bytes = sum(width * dt.itemsize for _, dt in channels)
    out = {name: np.empty((height, width), np.float32) for name, _ in channels}
    for offset in offsets:
        y, size = struct.unpack_from("<ii", data, offset)
        first = y - ymin
        lines = min(per_block, height - first)
        raw = data[offset + 8:offset + 8 + size]
        raw = raw if compression == 0 else _unzip(raw, lines * line_bytes)
        if len(raw) != lines * line_bytes:
            raise ExrError(f"{path}: a block holds {len(raw)} bytes, expected {lines * line_bytes}")
        at = 0
        for row in range(first, first + lines):
            for name, dt in channels:  # stored in the header's (alphabetical) order
                n = width * dt.itemsize
                out[name][row] = np.frombuffer(raw, dt, width, at)
                at += n
    return out


def read_four_channels(path: str, full_float: bool = False) -> np.ndarray:
    """A 4-channel file (R, G, B, A or X, Y, Z, W, or r, g, b, a, optionally
    with a layer prefix such as "Image.R") as float32 H x W x 4, rows top-down."""
    found = read_channels(path, full_float)
    short = {name.rsplit(".", 1)[-1]: array for name, array in found.items()}
    for names in FOUR_CHANNELS:
        if all(n in short for n in names):
            return np.stack([short[n] for n in names], axis=-1)
    raise ExrError(f"{path} has channels {sorted(found)}; expected R, G, B, A or X, Y, Z, W")

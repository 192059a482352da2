"""High-bit-depth RGB(A) TIFF, which Pillow reads only at 8 bits and cannot write.

Pillow keeps 16 bits only for single-channel TIFF and cannot open float RGB TIFF at
all. This module reads 16-bit integer and 32-bit float RGB(A) TIFF stored
uncompressed in strips (what this module writes, and what many renderers write by
default). Other layouts (compressed, tiled, separate planes) raise TiffLayoutError,
and the image reader falls back to Pillow at 8 bits and says so.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import TiffImagePlugin

_UNCOMPRESSED = 1


class TiffLayoutError(Exception):
    """This TIFF's layout is not one this module reads (the caller falls back)."""


def tiff_sample_info(path: Path) -> tuple[int, int, int]:
    """(bits per sample, sample format: 1 uint / 3 float, samples per pixel) of the first image."""
    ifd = _first_ifd(path)
    bits = ifd.get(258, (1,))
    bits = bits[0] if isinstance(bits, tuple) else bits
    fmt = ifd.get(339, (1,))
    fmt = fmt[0] if isinstance(fmt, tuple) else fmt
    return int(bits), int(fmt), int(ifd.get(277, 1))


def tiff_size(path: Path) -> tuple[int, int]:
    """(width, height) of the first image, from its header alone."""
    ifd = _first_ifd(path)
    return int(ifd[256]), int(ifd[257])


def _first_ifd(path: Path) -> TiffImagePlugin.ImageFileDirectory_v2:
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head[:4] not in (b"II*\0", b"MM\0*"):
            raise TiffLayoutError("not a classic TIFF")
        offset = struct.unpack(("<" if head[:2] == b"II" else ">") + "I", head[4:8])[0]
        ifd = TiffImagePlugin.ImageFileDirectory_v2(head)
        fh.seek(offset)
        ifd.load(fh)
    return ifd


def read_tiff_high(path: Path) -> np.ndarray:
    """H x W x C samples (uint16 or float32) of a 16-bit or float strip TIFF."""
    ifd = _first_ifd(path)
    bits, fmt, c = tiff_sample_info(path)
    w, h = int(ifd[256]), int(ifd[257])
    compression = int(ifd.get(259, 1))
    if 322 in ifd or int(ifd.get(284, 1)) != 1 or compression != _UNCOMPRESSED:
        raise TiffLayoutError(f"compression {compression}, tiles or separate planes")
    if (bits, fmt) == (16, 1):
        dtype = np.dtype("u2")
    elif (bits, fmt) == (32, 3):
        dtype = np.dtype("f4")
    else:
        raise TiffLayoutError(f"{bits}-bit samples of format {fmt}")
    dtype = dtype.newbyteorder("<" if ifd.prefix == b"II" else ">")
    offsets, counts = ifd[273], ifd[279]
    offsets = offsets if isinstance(offsets, tuple) else (offsets,)
    counts = counts if isinstance(counts, tuple) else (counts,)
    rows_per_strip = int(ifd.get(278, h))
    strips = []
    with open(path, "rb") as fh:
        for i, (off, n) in enumerate(zip(offsets, counts, strict=True)):
            fh.seek(off)
            data = fh.read(n)
            rows = min(rows_per_strip, h - i * rows_per_strip)
            if len(data) < rows * w * c * dtype.itemsize:
                raise TiffLayoutError("a strip is truncated")
            strips.append(np.frombuffer(data, dtype=dtype, count=rows * w * c).reshape(rows, w, c))
    a = np.concatenate(strips, axis=0)
    if a.shape[0] != h:
        raise TiffLayoutError("strips do not cover the image")
    return a.astype(dtype.newbyteorder("="))


def write_tiff_high(path: Path, samples: np.ndarray) -> None:
    """Write H x W x 3|4 uint16 or float32 samples as one uncompressed strip (alpha unassociated)."""
    h, w, c = samples.shape
    fmt = 3 if samples.dtype.kind == "f" else 1
    raw = np.ascontiguousarray(samples, dtype=samples.dtype.newbyteorder("<")).tobytes()
    tags = [(256, 4, [w]), (257, 4, [h]), (258, 3, [samples.dtype.itemsize * 8] * c), (259, 3, [1]),
            (262, 3, [2]), (273, 4, [0]), (277, 3, [c]), (278, 4, [h]), (279, 4, [len(raw)]),
            (284, 3, [1])]
    if c == 4:
        tags.append((338, 3, [2]))  # unassociated (straight) alpha
    tags.append((339, 3, [fmt] * c))
    extra_offset = 8 + 2 + 12 * len(tags) + 4
    entries, extra = [], b""
    for tag, typ, values in tags:
        packed = struct.pack("<" + ("H" if typ == 3 else "I") * len(values), *values)
        if len(packed) <= 4:
            entries.append([tag, typ, len(values), packed.ljust(4, b"\0")])
        else:
            entries.append([tag, typ, len(values), struct.pack("<I", extra_offset + len(extra))])
            extra += packed
    data_offset = extra_offset + len(extra) + (extra_offset + len(extra)) % 2
    for e in entries:
        if e[0] == 273:
            e[3] = struct.pack("<I", data_offset)
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", *e[:3]) + e[3] for e in entries)
    head = b"II*\0" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + extra
    with open(path, "wb") as fh:
        fh.write(head.ljust(data_offset, b"\0"))
        fh.write(raw)

"""Reading and writing image files as float32 arrays, for the CLI and pipelines.

One reader (read_image) for every format, so each file arrives the same way:
upright (EXIF orientation applied), in sRGB (an embedded ICC profile is converted
with LittleCMS), at its bit depth, and bounded in size before anything is decoded.

Formats: PNG (8 bit through Pillow; 16 bit through pypng, because Pillow reads
16-bit RGB PNGs as 8 bit), JPEG, WebP, BMP through Pillow; TIFF through Pillow,
except 16-bit and float RGB(A) TIFF (tiff.py); OpenEXR through the optional
`OpenEXR` package (`pip install blender-pastiche[exr]`), because Pillow cannot read EXR.
EXR holds scene-linear light with premultiplied alpha (as Blender writes it);
every other format holds display sRGB with straight alpha.
"""

from __future__ import annotations

import glob
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from ..errors import ImageError, OutputError
from .atomic import atomic_path, is_temporary
from .tiff import TiffLayoutError, read_tiff_high, tiff_sample_info, tiff_size, write_tiff_high

# What Pillow reads (training images are these); the CLI also reads OpenEXR.
PILLOW_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
READ_SUFFIXES = {*PILLOW_SUFFIXES, ".exr"}
# Pillow's own decompression-bomb threshold (2 x Image.MAX_IMAGE_PIXELS, about 13,400 squared),
# applied to every reader before decoding: an 8-bit RGB image this size already needs
# 2 GB as float32.
MAX_READ_PIXELS = 178_956_970


@dataclass
class LoadedImage:
    pixels: np.ndarray          # float32 H x W x 3 or 4, alpha as ``premultiplied`` says
    colour_space: str           # "srgb" or "linear"
    bit_depth: int              # bits per sample: 8, 16 (integer, or half-float EXR) or 32 (float)
    premultiplied: bool = False  # EXR alpha is premultiplied; every other format's is straight
    half: bool = False          # an EXR stored in half floats
    notes: list[str] = field(default_factory=list)  # what the reader had to change, for the user


def expand_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> image paths."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir()
                           # hidden names skipped, as glob does: atomic writers' temporaries
                           # (the core's and the add-on's) are hidden, and one left by a
                           # killed run must never be taken for an input
                           if q.suffix.lower() in READ_SUFFIXES and q.is_file()
                           and not q.name.startswith(".") and not is_temporary(q))
            if not found:
                raise ImageError(f"folder {item} holds no images ({', '.join(sorted(READ_SUFFIXES))})")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        elif any(ch in item for ch in "*?["):
            # glob skips hidden names, atomic_path's temporaries among them
            matches = sorted(Path(m) for m in glob.glob(item) if Path(m).suffix.lower() in READ_SUFFIXES)
            if not matches:
                raise ImageError(f"pattern {item!r} matches no images")
            paths.extend(matches)
        else:
            raise ImageError(f"input not found: {item}")
    return paths


def read_image(path: str | os.PathLike) -> LoadedImage:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        if path.suffix.lower() == ".exr":
            return _read_exr(path)
        if _is_png16(path):
            return LoadedImage(_read_png16(path), "srgb", 16)
        if path.suffix.lower() in (".tif", ".tiff"):
            high = _read_tiff_high(path)
            if high is not None:
                return high
        return _read_pillow(path)
    except PermissionError:
        raise ImageError(f"cannot read {path}: permission denied") from None
    except MemoryError:
        raise ImageError(f"cannot read {path.name}: not enough memory to decode it") from None


def _check_size(path: Path, w: int, h: int) -> None:
    if w * h > MAX_READ_PIXELS:
        raise ImageError(f"{path.name} is {w} x {h} ({w * h / 1e6:.0f} megapixels), above the "
                         f"supported {MAX_READ_PIXELS / 1e6:.0f} megapixels; scale it down first")
    if w <= 0 or h <= 0:
        raise ImageError(f"{path.name} is empty ({w} x {h})")


def _read_pillow(path: Path) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            # We bound the size ourselves (_check_size), with one message for every reader.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_size(path, *im.size)
                im.load()
                return _from_pillow(im, path)
    except Image.DecompressionBombError:
        raise ImageError(f"{path.name} is larger than the supported {MAX_READ_PIXELS / 1e6:.0f} "
                         "megapixels; scale it down first") from None
    except (UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise ImageError(f"cannot read {path.name}: not a readable image ({e})") from None
    except OSError as e:
        if isinstance(e, PermissionError):
            raise
        raise ImageError(f"cannot read {path.name}: not a readable image ({e})") from None


def _from_pillow(im: Image.Image, path: Path) -> LoadedImage:
    notes: list[str] = []
    im = ImageOps.exif_transpose(im)  # a phone photo's rotation is metadata: apply it
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit greyscale (TIFF)
        a = np.asarray(im, dtype=np.float32) / 65535.0
        return LoadedImage(np.repeat(a[..., None], 3, axis=2), "srgb", 16)
    if im.mode == "F":  # 32-bit float greyscale (TIFF): values are already 0..1
        a = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return LoadedImage(np.repeat(a[..., None], 3, axis=2), "srgb", 32)
    if im.mode == "I":
        raise ImageError(f"cannot read {path.name}: 32-bit integer images are not supported "
                         "(save it as 16-bit or float)")
    has_alpha = "A" in im.mode or (im.mode == "P" and "transparency" in im.info)
    if im.mode not in ("RGB", "RGBA", "CMYK", "L"):  # palette etc.: LittleCMS needs plain modes
        icc = im.info.get("icc_profile")
        im = im.convert("RGBA" if has_alpha else "RGB")
        if icc:
            im.info["icc_profile"] = icc
    im = _to_srgb(im, notes).convert("RGBA" if has_alpha else "RGB")
    return LoadedImage(np.asarray(im, dtype=np.float32) / 255.0, "srgb", 8, notes=notes)


_SRGB = None


def _to_srgb(im: Image.Image, notes: list[str]) -> Image.Image:
    """Convert an image with an embedded ICC profile to sRGB, the network's space."""
    global _SRGB
    icc = im.info.get("icc_profile")
    if not icc:
        return im
    try:
        src = ImageCms.ImageCmsProfile(ImageCms.core.profile_frombytes(icc))
        if _SRGB is None:
            _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(im, src, _SRGB, outputMode=out_mode)
        assert converted is not None
        return converted
    except (ImageCms.PyCMSError, OSError, ValueError) as e:
        notes.append(f"its ICC colour profile could not be applied ({e}); read as sRGB")
        return im


def _read_tiff_high(path: Path) -> LoadedImage | None:
    """16-bit / float RGB(A) TIFF at full depth; None for TIFFs Pillow reads fully."""
    try:
        bits, fmt, channels = tiff_sample_info(path)
    except (TiffLayoutError, OSError, KeyError, SyntaxError, struct.error, ValueError):
        return None  # let Pillow report what is wrong
    if bits <= 8 or channels < 3:
        return None
    try:
        _check_size(path, *tiff_size(path))
        a = read_tiff_high(path)
    except TiffLayoutError as e:
        if fmt == 3:
            raise ImageError(f"cannot read {path.name}: float RGB TIFF is read only uncompressed, "
                             f"in strips ({e}); save it uncompressed or as EXR") from None
        image = _read_pillow(path)
        image.notes.append(f"16-bit RGB TIFF ({e}) is read at 8-bit precision; save it "
                           "uncompressed or as 16-bit PNG to keep 16 bits")
        return image
    a = a[..., :4] if a.shape[2] >= 4 else a[..., :3]
    if a.dtype == np.uint16:
        return LoadedImage(a.astype(np.float32) / 65535.0, "srgb", 16)
    pixels = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return LoadedImage(pixels, "srgb", 32)


def _read_exr(path: Path) -> LoadedImage:
    try:
        import OpenEXR
    except ImportError:
        raise ImageError(
            f"{path.name}: reading OpenEXR needs the OpenEXR package: pip install 'blender-pastiche[exr]'"
        ) from None
    try:
        with OpenEXR.File(str(path), header_only=True) as f:
            lo, hi = f.header()["dataWindow"]
        _check_size(path, int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1))
        with OpenEXR.File(str(path)) as f:
            channels = f.channels()
            if "RGBA" in channels:
                a = channels["RGBA"].pixels
            elif "RGB" in channels:
                a = channels["RGB"].pixels
            else:
                names = [n for n in ("R", "G", "B", "A") if n in channels]
                if len(names) < 3:
                    raise ImageError(f"{path.name}: EXR has no R, G, B channels (has {', '.join(channels)})")
                a = np.stack([channels[n].pixels for n in names], axis=2)
    except ImageError:
        raise
    except PermissionError:
        raise
    except Exception as e:  # the binding raises plain RuntimeError on corrupt files
        raise ImageError(f"cannot read {path.name}: {e}") from None
    half = a.dtype == np.float16
    pixels = np.ascontiguousarray(a, dtype=np.float32)
    # Blender (and the EXR convention) store premultiplied alpha.
    return LoadedImage(pixels, "linear", 16 if half else 32, premultiplied=pixels.shape[2] == 4, half=half)


def write_image(path: str | os.PathLike, pixels: np.ndarray, bit_depth: int = 8,
                half: bool = False) -> Path:
    """Write atomically (temporary file, then rename), so a crash never leaves a
    half-written image behind. ``bit_depth``: 8, 16 or 32 (float; TIFF only, PNG
    keeps 16). EXR is written as float32, or half floats with ``half``; its
    pixels are expected linear and premultiplied, the others' sRGB and straight."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise OutputError(f"cannot write {path}: unknown image format {suffix or '(no extension)'!r}")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: a folder of that name is in the way")
    try:
        with atomic_path(path, suffix=suffix) as tmp:
            if suffix == ".exr":
                _write_exr(tmp, pixels, half)
            else:
                _write_pillow(tmp, pixels, bit_depth, suffix)
    except OSError as e:
        # Full disk, permissions, a read-only mount: one line, not a traceback.
        err = OutputError(f"cannot write {path}: {e.strerror or e}")
        err.errno = e.errno  # lets a batch stop on a full disk (errno.ENOSPC)
        raise err from None
    return path


def _write_pillow(path: Path, pixels: np.ndarray, bit_depth: int, suffix: str) -> None:
    p = np.clip(pixels, 0.0, 1.0)
    if suffix in (".jpg", ".jpeg"):
        p = p[..., :3]
    if bit_depth >= 16 and suffix == ".png":
        _write_png16(path, p)  # Pillow cannot write 16-bit RGB(A) PNG
        return
    if bit_depth >= 16 and suffix in (".tif", ".tiff"):  # nor 16-bit or float RGB(A) TIFF
        write_tiff_high(path, p.astype(np.float32) if bit_depth == 32
                        else (p * 65535.0 + 0.5).astype(np.uint16))
        return
    im = Image.fromarray((p * 255.0 + 0.5).astype(np.uint8), "RGBA" if p.shape[2] == 4 else "RGB")
    im.save(path, quality=95) if suffix in (".jpg", ".jpeg", ".webp") else im.save(path)


def _is_png16(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(25)
    return head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 25 and head[24] == 16


def _read_png16(path: Path) -> np.ndarray:
    import png  # pypng

    try:
        reader = png.Reader(filename=str(path))
        reader.preamble()  # the header alone: bound the size before decoding rows
        _check_size(path, reader.width, reader.height)
        width, height, rows, info = reader.asDirect()
        a = np.empty((height, width * info["planes"]), dtype=np.uint16)
        for i, r in enumerate(rows):  # row by row into one preallocated array
            a[i] = r
    except (png.Error, ValueError) as e:
        raise ImageError(f"cannot read {path.name}: {e}") from None
    planes = info["planes"]
    a = a.reshape(height, width, planes).astype(np.float32) / 65535.0
    if planes in (1, 2):  # grey or grey + alpha
        grey = np.repeat(a[..., :1], 3, axis=2)
        a = grey if planes == 1 else np.concatenate([grey, a[..., 1:]], axis=2)
    return a


def _write_png16(path: Path, pixels: np.ndarray) -> None:
    import png  # pypng

    h, w, c = pixels.shape
    data = (pixels * 65535.0 + 0.5).astype(np.uint16).reshape(h, w * c)
    with open(path, "wb") as fh:
        png.Writer(w, h, greyscale=False, alpha=c == 4, bitdepth=16).write(fh, data)


def _write_exr(path: Path, pixels: np.ndarray, half: bool = False) -> None:
    try:
        import OpenEXR
    except ImportError:
        raise ImageError("writing OpenEXR needs the OpenEXR package: pip install 'blender-pastiche[exr]'") from None
    name = "RGBA" if pixels.shape[2] == 4 else "RGB"
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    data = np.ascontiguousarray(pixels, dtype=np.float16 if half else np.float32)
    try:
        with OpenEXR.File(header, {name: data}) as f:
            f.write(str(path))
    except RuntimeError as e:  # the binding reports a full disk as a plain RuntimeError
        raise OSError(f"OpenEXR could not write the file ({e})") from None

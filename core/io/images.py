"""Reading and writing image files as float32 arrays, for the CLI and pipelines.

Formats: PNG (8 bit through Pillow; 16 bit through pypng, because Pillow
reads 16-bit RGB PNGs as 8 bit), JPEG, TIFF, WebP, BMP through Pillow; OpenEXR through the optional `OpenEXR` package
(`pip install blender-pastiche[exr]`), because Pillow cannot read EXR.
EXR holds scene-linear light; every other format holds display sRGB.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageError
from .atomic import atomic_path

# What Pillow reads (training images are these); the CLI also reads OpenEXR.
PILLOW_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
READ_SUFFIXES = {*PILLOW_SUFFIXES, ".exr"}


@dataclass
class LoadedImage:
    pixels: np.ndarray          # float32 H x W x 3 or 4, straight alpha
    colour_space: str           # "srgb" or "linear"
    bit_depth: int              # 8, 16 or 32 (float)


def expand_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> image paths."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in READ_SUFFIXES and q.is_file())
            if not found:
                raise ImageError(f"folder {item} holds no images ({', '.join(sorted(READ_SUFFIXES))})")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        elif any(ch in item for ch in "*?["):
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
    if path.suffix.lower() == ".exr":
        return LoadedImage(_read_exr(path), "linear", 32)
    if _is_png16(path):
        return LoadedImage(_read_png16(path), "srgb", 16)
    try:
        with Image.open(path) as im:
            im.load()
            return _from_pillow(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"cannot read {path.name}: not a readable image ({e})") from None


def _from_pillow(im: Image.Image) -> LoadedImage:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L"):  # 16-bit greyscale (TIFF)
        a = np.asarray(im, dtype=np.float32) / 65535.0
        return LoadedImage(np.repeat(a[..., None], 3, axis=2), "srgb", 16)
    has_alpha = "A" in mode or (mode == "P" and "transparency" in im.info)
    im = im.convert("RGBA" if has_alpha else "RGB")
    return LoadedImage(np.asarray(im, dtype=np.float32) / 255.0, "srgb", 8)


def _read_exr(path: Path) -> np.ndarray:
    try:
        import OpenEXR
    except ImportError:
        raise ImageError(
            f"{path.name}: reading OpenEXR needs the OpenEXR package: pip install 'blender-pastiche[exr]'"
        ) from None
    try:
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
    except Exception as e:  # the binding raises plain RuntimeError on corrupt files
        raise ImageError(f"cannot read {path.name}: {e}") from None
    return np.ascontiguousarray(a, dtype=np.float32)


def write_image(path: str | os.PathLike, pixels: np.ndarray, bit_depth: int = 8) -> Path:
    """Write atomically (temporary file, then rename), so a crash never
    leaves a half-written image behind. EXR is written as float (linear)."""
    path = Path(path)
    suffix = path.suffix.lower()
    with atomic_path(path, suffix=suffix) as tmp:
        if suffix == ".exr":
            _write_exr(tmp, pixels)
        else:
            _write_pillow(tmp, pixels, bit_depth, suffix)
    return path


def _write_pillow(path: Path, pixels: np.ndarray, bit_depth: int, suffix: str) -> None:
    p = np.clip(pixels, 0.0, 1.0)
    if suffix in (".jpg", ".jpeg"):
        p = p[..., :3]
    if bit_depth == 16 and suffix == ".png":
        _write_png16(path, p)  # Pillow cannot write 16-bit RGB(A) PNG
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
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        a = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).astype(np.float32) / 65535.0
    except (png.Error, ValueError) as e:
        raise ImageError(f"cannot read {path.name}: {e}") from None
    planes = info["planes"]
    a = a.reshape(height, width, planes)
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


def _write_exr(path: Path, pixels: np.ndarray) -> None:
    try:
        import OpenEXR
    except ImportError:
        raise ImageError("writing OpenEXR needs the OpenEXR package: pip install 'blender-pastiche[exr]'") from None
    name = "RGBA" if pixels.shape[2] == 4 else "RGB"
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {name: np.ascontiguousarray(pixels, dtype=np.float32)}) as f:
        f.write(str(path))

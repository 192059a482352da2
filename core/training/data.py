"""Training data: random photo crops and style images with their credits.

Every training sample is a pure function of (seed, sample number): the
photo, crop position, scale, flip and style index come from a generator
seeded with both. The data pipeline's whole state is therefore one integer
(the next sample number), which makes resuming exact, and worker processes
can produce samples in any order without changing what a step sees.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import ImageError, PasticheError
from ..io.images import PILLOW_SUFFIXES
from ..model.modelfile import CREDIT_KEYS, Style

MANIFEST_NAME = "styles.json"


def list_images(folder: str | os.PathLike, what: str = "content") -> list[Path]:
    """All images under ``folder`` (recursively), sorted for reproducibility."""
    folder = Path(folder)
    if not folder.exists():
        raise PasticheError(f"{what} folder not found: {folder}")
    if not folder.is_dir():
        raise PasticheError(f"{what} path is not a folder: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PILLOW_SUFFIXES)
    if not paths:
        raise PasticheError(f"no images ({', '.join(PILLOW_SUFFIXES)}) found in {what} folder {folder}")
    return paths


def open_rgb(path: str | os.PathLike, max_short_side: int | None = None) -> Image.Image:
    """Open an image as 8-bit RGB, optionally downscaled so its short side fits."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        img = Image.open(path)
        if max_short_side and img.format == "JPEG":
            # Decode big JPEGs at 1/2, 1/4 or 1/8 scale directly: much faster.
            w, h = img.size
            f = max(1.0, min(w, h) / max_short_side)
            img.draft("RGB", (int(w / f), int(h / f)))
        img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ImageError(f"cannot read image {path}: {e}") from None
    if max_short_side and min(img.size) > max_short_side:
        w, h = img.size
        s = max_short_side / min(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return img


def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """PIL image or H x W x 3 array -> (1, 3, H, W) float32 in [0, 1]."""
    a = np.asarray(img)
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def resize_short_side(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    s = side / min(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BICUBIC, reducing_gap=3.0)


# -- styles ------------------------------------------------------------------

@dataclass
class StyleSource:
    """One style to learn: its image file, name, credit and loss coefficient."""

    path: Path
    style: Style
    coefficient: float = 1.0
    extra: dict = field(default_factory=dict)


def _name_from_file(path: Path) -> str:
    return path.stem


def read_manifest(path: str | os.PathLike) -> dict[str, dict]:
    """A styles manifest: a JSON list of {file, name, artist, title, year, licence, ...}.

    Returns file name -> entry. ``weight`` (optional) is the style's loss coefficient.
    """
    path = Path(path)
    if not path.is_file():
        raise PasticheError(f"styles manifest not found: {path}")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PasticheError(f"styles manifest {path} is not valid JSON: {e}") from None
    if isinstance(entries, dict) and isinstance(entries.get("styles"), list):
        entries = entries["styles"]
    if not isinstance(entries, list):
        raise PasticheError(f"styles manifest {path} must be a JSON list of style entries")
    out: dict[str, dict] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("file"), str):
            raise PasticheError(f"styles manifest {path}: entry #{i} has no 'file'")
        out[Path(e["file"]).name] = e
    return out


def resolve_styles(inputs: list[str | os.PathLike], manifest: str | os.PathLike | None = None,
                   coefficients: dict[str, float] | None = None) -> list[StyleSource]:
    """Style images from folders and/or files, named and credited.

    Names and credits come from a manifest (``manifest``, or a styles.json
    inside a given folder) when it lists the file, else from the file name.
    Manifest entries marked ``reserved_for_add_style_evaluation`` are left
    out when a whole folder is given. ``weights``: name -> loss coefficient.
    """
    if not inputs:
        raise PasticheError("no styles given: pass --styles with a folder or image files")
    files: list[Path] = []
    reserved: set[str] = set()
    entries: dict[str, dict] = read_manifest(manifest) if manifest else {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p, "styles")
            auto = p / MANIFEST_NAME
            if not manifest and auto.is_file():
                local = read_manifest(auto)
                entries.update({k: v for k, v in local.items() if k not in entries})
                reserved |= {k for k, v in local.items() if v.get("reserved_for_add_style_evaluation")}
            files.extend(f for f in found if f.name not in reserved)
        elif p.is_file():
            if p.suffix.lower() not in PILLOW_SUFFIXES:
                raise PasticheError(f"style {p} is not an image ({', '.join(PILLOW_SUFFIXES)})")
            files.append(p)
        else:
            raise PasticheError(f"style image or folder not found: {p}")
    if not files:
        raise PasticheError("zero styles: the given folders hold no usable style images")
    sources: list[StyleSource] = []
    seen: dict[str, Path] = {}
    for f in files:
        e = entries.get(f.name, {})
        name = str(e.get("name") or _name_from_file(f))
        if name in seen:
            raise PasticheError(f"two style images map to the name {name!r}: {seen[name]} and {f}")
        seen[name] = f
        credit = {k: str(e[k]) for k in CREDIT_KEYS if e.get(k) not in (None, "")}
        w = float(e.get("weight", 1.0))  # the manifest's key for the coefficient
        sources.append(StyleSource(f, Style(name, credit), w))
    for name, w in (coefficients or {}).items():
        match = [s for s in sources if s.style.name == name]
        if not match:
            raise PasticheError(f"--style-weight names unknown style {name!r}; styles: {', '.join(seen)}")
        match[0].coefficient = float(w)
    for s in sources:
        if not (s.coefficient > 0 and s.coefficient < float("inf")):
            raise PasticheError(f"style coefficient of {s.style.name!r} must be a finite number > 0, "
                                f"got {s.coefficient}")
    return sources


def load_style_image(path: Path, style_size: int, crop_size: int) -> torch.Tensor:
    """A style image at ``style_size`` on its short side, as (1, 3, H, W).

    Refuses images smaller than the training crop: upscaled paintings teach
    blur, not brushwork.
    """
    img = open_rgb(path)
    w, h = img.size
    if min(w, h) < crop_size:
        raise ImageError(
            f"style image {path} is {w} x {h}, smaller than the {crop_size}-pixel training crop; "
            f"use a larger image or a crop size of at most {min(w, h)}"
        )
    return to_tensor(resize_short_side(img, style_size))


# -- content crops -------------------------------------------------------------

@dataclass(frozen=True)
class CropSettings:
    size: int = 256
    # Side of the source square, as a multiple of the crop size, before resizing to it.
    scale_min: float = 0.8
    scale_max: float = 1.6
    # Photos are first brought to this short side (downscaling only), like a
    # typical training set of ~512-pixel photos.
    photo_side: int = 512
    flip: bool = True


class ContentCrops(torch.utils.data.Dataset):
    """Sample ``i`` -> (crop (3, S, S) float32 in [0, 1], style index).

    Deterministic in (seed, i); indexable without bound (the photo list wraps).
    """

    def __init__(self, photos: list[Path], num_styles: int, settings: CropSettings, seed: int,
                 cache_size: int = 64):
        if not photos:
            raise PasticheError("no content photos to train on")
        if num_styles < 1:
            raise PasticheError("zero styles to train")
        self.photos = list(photos)
        self.num_styles = num_styles
        self.settings = settings
        self.seed = int(seed)
        self.cache_size = cache_size
        self._cache: OrderedDict[int, Image.Image] = OrderedDict()

    def __len__(self) -> int:
        return 2**62  # unbounded; the sampler chooses which sample numbers to draw

    def _photo(self, k: int) -> Image.Image:
        img = self._cache.get(k)
        if img is None:
            img = open_rgb(self.photos[k], self.settings.photo_side)
            self._cache[k] = img
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(k)
        return img

    def sample_plan(self, i: int) -> tuple[int, int, float, float, float, bool]:
        """(photo, style, scale, x fraction, y fraction, flip) of sample ``i``."""
        rng = np.random.default_rng([self.seed, int(i)])
        photo = int(rng.integers(len(self.photos)))
        style = int(rng.integers(self.num_styles))
        scale = float(rng.uniform(self.settings.scale_min, self.settings.scale_max))
        fx, fy = float(rng.random()), float(rng.random())
        flip = bool(self.settings.flip and rng.random() < 0.5)
        return photo, style, scale, fx, fy, flip

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        photo, style, scale, fx, fy, flip = self.sample_plan(i)
        img = self._photo(photo)
        s = self.settings.size
        w, h = img.size
        side = max(1, min(round(s * scale), w, h))
        x0, y0 = int(fx * (w - side + 1)), int(fy * (h - side + 1))
        crop = img.resize((s, s), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
        a = np.asarray(crop, dtype=np.uint8)
        if flip:
            a = a[:, ::-1]
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div_(255.0)
        return t, style


class SampleRange(torch.utils.data.Sampler):
    """Sample numbers start, start + 1, ..., stop - 1: the resumable sampler state."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop = int(start), int(stop)

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def usable_photos(photos: list[Path], crop_size: int) -> list[Path]:
    """Drop photos too small to crop from (with a warning); error if none remain."""
    keep: list[Path] = []
    small: list[str] = []
    for p in photos:
        try:
            with Image.open(p) as im:
                w, h = im.size
        except (UnidentifiedImageError, OSError) as e:
            raise ImageError(f"cannot read content image {p}: {e}") from None
        if min(w, h) >= crop_size // 2:
            keep.append(p)
        else:
            small.append(p.name)
    if small:
        warnings.warn(f"skipping {len(small)} content image(s) smaller than half the {crop_size}-pixel crop: "
                      f"{', '.join(small[:5])}", stacklevel=2)
    if not keep:
        raise ImageError(f"every content image is smaller than half the {crop_size}-pixel training crop")
    return keep


def make_loader(dataset: ContentCrops, start: int, stop: int, batch_size: int, workers: int,
                pin_memory: bool) -> torch.utils.data.DataLoader:
    """Batches for sample numbers [start, stop); order is fixed whatever the worker count."""
    kwargs: dict = {}
    if workers > 0:
        kwargs = {"persistent_workers": False, "prefetch_factor": 4}
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=SampleRange(start, stop),
                                       num_workers=workers, pin_memory=pin_memory, drop_last=False, **kwargs)

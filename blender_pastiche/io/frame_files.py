"""Rendered frame files on disk: what each format holds, where originals are
kept, and replacing a frame without ever leaving a half-written file.

Pure Python (no bpy, no torch) so it can be tested anywhere. A frame is only
ever replaced by os.replace() of a fully written temporary file in the same
folder (the core's atomic-write helper), so a cancelled or crashed render
leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..support import core_files

# Unstylized frames are kept in this sub-folder next to the stylized ones, under
# the same file name, so both sequences load as clean image sequences.
UNSTYLIZED_DIR = "unstylized"
# Temporary files carry this marker; only files carrying it are ever swept.
TEMP_MARKER = ".pastiche-tmp"

MOVIE_FORMATS = {"FFMPEG", "AVI_JPEG", "AVI_RAW"}
# Formats whose files hold display-encoded values (the view transform is baked in).
DISPLAY_FORMATS = {"PNG", "JPEG", "JPEG2000", "BMP", "TARGA", "TARGA_RAW", "TIFF", "WEBP",
                   "IRIS", "DPX", "CINEON"}
# Formats whose files hold scene-linear, premultiplied light.
LINEAR_FORMATS = {"OPEN_EXR", "HDR"}


class FrameFormatError(ValueError):
    """The scene's output format can't be stylized frame by frame."""


@dataclass(frozen=True)
class FrameEncoding:
    """How the pixels of a written frame are to be handed to the stylizer."""
    colour_space: str        # "srgb" (display-encoded) or "linear" (scene-linear)
    premultiplied: bool      # how the file's alpha is stored
    high_precision: bool     # 16-bit integer or float: read without 8-bit rounding


def frame_encoding(file_format: str, color_depth: str = "8", media_type: str = "IMAGE") -> FrameEncoding:
    """The encoding of frames written with these image settings, or a
    FrameFormatError saying why they can't be stylized."""
    if media_type == "VIDEO" or file_format in MOVIE_FORMATS:
        raise FrameFormatError(
            "Pastiche stylizes image sequences, not movie files: set the output to an image "
            "format (PNG or OpenEXR) and encode the stylized frames into a movie afterwards")
    if media_type == "MULTI_LAYER_IMAGE" or file_format == "OPEN_EXR_MULTILAYER":
        raise FrameFormatError(
            "Pastiche can't rewrite multilayer EXR files: choose OpenEXR (single layer) or PNG, "
            "or stylize a pass with the Pastiche Stylize compositor node")
    if file_format in LINEAR_FORMATS:
        return FrameEncoding("linear", premultiplied=True, high_precision=True)
    if file_format in DISPLAY_FORMATS:
        return FrameEncoding("srgb", premultiplied=False, high_precision=str(color_depth) != "8")
    raise FrameFormatError(f"Pastiche can't stylize frames saved as {file_format}; use PNG or OpenEXR")


# A still (render(write_still=True)) is written to the output path itself, not to a
# numbered frame path. Blender keeps an extension the format accepts, replaces any
# other image extension and appends to anything else (observed with bpy 5.0.1:
# still.jpg -> still.png, still.v2 -> still.v2.png, still.JPEG kept for JPEG).
# (JPEG 2000 takes only its codec's extension, which render.file_extension gives.)
FORMAT_EXTENSIONS = {"JPEG": (".jpg", ".jpeg"), "TIFF": (".tif", ".tiff")}
IMAGE_EXTENSIONS = (".png", ".tga", ".bmp", ".jpg", ".jpeg", ".sgi", ".rgb", ".rgba", ".tif", ".tiff",
                    ".tx", ".jp2", ".j2c", ".hdr", ".dds", ".dpx", ".cin", ".exr", ".psd", ".pdd",
                    ".psb", ".webp")


def still_path(output_path: str, file_format: str, extension: str, use_extension: bool = True) -> str:
    """Where render(write_still=True) writes a still with these settings.
    ``output_path`` is the scene's absolute output path, ``extension`` its
    render.file_extension (".png")."""
    if not use_extension:
        return output_path
    accepted = FORMAT_EXTENSIONS.get(file_format, (extension,))
    stem, ext = os.path.splitext(output_path)
    if ext.lower() in accepted:
        return output_path
    if ext.lower() in IMAGE_EXTENSIONS or ext == ".":
        output_path = stem
    return output_path + extension


FileSignature = tuple[int, int, int]


def file_signature(path: str) -> FileSignature | None:
    """(inode, mtime in ns, size) of a file, None if there is none: a file whose
    signature changed across a render is the one that render wrote."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def written_file(candidates: dict[str, FileSignature | None]) -> str | None:
    """The first of ``candidates`` (path -> its signature before the render)
    that was written since, or None."""
    for path, before in candidates.items():
        now = file_signature(path)
        if now is not None and now != before:
            return path
    return None


def unstylized_path(frame_path: str) -> str:
    """Where the unstylized version of a frame is kept: <folder>/unstylized/<name>."""
    folder, name = os.path.split(os.path.abspath(frame_path))
    return os.path.join(folder, UNSTYLIZED_DIR, name)


def temp_path_for(final_path: str, tag: str = "") -> str:
    """A temporary name in the same folder (so os.replace is atomic), keeping the
    extension because image writers pick the format by it. tag tells apart
    several temporaries for one frame."""
    folder, name = os.path.split(os.path.abspath(final_path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}{TEMP_MARKER}{tag}-{os.getpid()}{ext}")


@contextmanager
def atomic_write(final_path: str) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces final_path in
    one step, on any error (an empty result included) it is deleted and
    final_path is untouched. The core's one atomic-write helper
    (core/io/atomic.py), named so sweep_stale_temps finds a crashed run's."""
    stem, ext = os.path.splitext(os.path.basename(final_path))
    with core_files.load_atomic().atomic_path(final_path, suffix=ext, prefix=f".{stem}{TEMP_MARKER}-",
                                              require_content=True) as tmp:
        yield str(tmp)


def keep_copy_of_original(frame_path: str, source: str | None = None) -> str:
    """Copy a frame (or ``source``, its unstylized render) into the unstylized/
    folder atomically; returns the copy's path."""
    dest = unstylized_path(frame_path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with atomic_write(dest) as tmp:
        shutil.copy2(source or frame_path, tmp)
    return dest


def move_aside(frame_path: str, source: str | None = None) -> str:
    """Move an unstylized frame out of the output sequence (into unstylized/),
    so a failed frame leaves a gap a re-run fills rather than a frame that
    looks done. ``source``: the unstylized file when it is not frame_path
    itself (a render of our own). Atomic: a rename within one file system."""
    dest = unstylized_path(frame_path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.replace(source or frame_path, dest)
    return dest


def sweep_stale_temps(folder: str, older_than_s: float = 600.0) -> list[str]:
    """Delete temporary files a crashed run left in folder: only ours, and only
    old ones, since another render (a farm node) may be writing one right now."""
    now = time.time()
    removed: list[str] = []
    for sub in (folder, os.path.join(folder, UNSTYLIZED_DIR)):
        if not os.path.isdir(sub):
            continue
        for name in os.listdir(sub):
            if name.startswith(".") and TEMP_MARKER in name:
                path = os.path.join(sub, name)
                try:
                    if now - os.path.getmtime(path) < older_than_s:
                        continue
                    os.remove(path)
                    removed.append(path)
                except OSError:
                    pass  # another process's file in use; harmless
    return removed

"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file.

Write to a temporary file in the destination's folder (same file system, so
the rename is atomic), give it the permissions a normal new file would get
(mkstemp creates files readable only by their owner), then rename it over
the destination.

Standard library only, no relative imports: the add-on (frame files) and
build_addon.py load this file by path, without importing the core package.

Temporary files are named ``.pastiche-tmp.<name>.<random><suffix>``: hidden, and
recognisable, so that a folder listing can skip them (a ``kill -9`` mid-write
leaves one behind, which must never be taken for an input) and a later run can
remove stale ones (is_temporary, remove_stale_temporaries).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_PREFIX = ".pastiche-tmp."
# A temporary file this old belongs to a writer that died (writes take seconds, not hours).
STALE_AFTER_S = 3600.0


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file of atomic_path (finished or abandoned)."""
    return Path(path).name.startswith(TEMP_PREFIX)


def remove_stale_temporaries(folder: str | os.PathLike, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete atomic_path temporaries in ``folder`` older than ``older_than_s``:
    left by a killed writer. Younger ones may belong to a writer still running."""
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.iterdir():
        try:
            if is_temporary(p) and p.is_file() and now - p.stat().st_mtime > older_than_s:
                p.unlink()
                removed.append(p)
        except OSError:
            continue  # raced with another cleaner, or not ours to delete
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", prefix: str | None = None,
                require_content: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``.

    ``suffix`` lets writers that choose a format by extension see the right one;
    ``prefix`` names the temporary (default ``.<name>.``) so a sweep can find
    a crashed run's leftovers. With ``require_content`` an empty or missing
    result is an OSError and ``path`` stays as it was (image writers that
    fail quietly).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix if prefix is not None else TEMP_PREFIX + path.name + ".",
                                suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if require_content and (not tmp.is_file() or tmp.stat().st_size == 0):
            raise OSError(f"writing {path} produced no file")
        # On disk before the rename, so a power cut cannot leave an empty file in its place.
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)

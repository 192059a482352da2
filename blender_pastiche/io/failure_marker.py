"""The failure marker: ``pastiche-failed-frames.txt`` next to the output frames.

A render farm can't read Blender's console, and `blender -b -a` used to exit
0 whatever happened to the frames. Every stylized render (the render hooks
and Render Stylized Animation) therefore keeps this file up to date in the
output folder: one line per frame that is NOT a finished stylized frame,

    frame 6: the Pastiche worker (pid 123) stopped responding for 60 s ...

A re-run removes the lines of the frames it finished and adds its own
failures; when no line is left the file is deleted, so "no marker" means
"every frame this folder's renders attempted is stylized". Frames left
unstylized on purpose (no style at that frame) are not failures and are not
listed. Pure Python (no bpy), written atomically.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from .frame_files import atomic_write

MARKER_NAME = "pastiche-failed-frames.txt"
_LINE = re.compile(r"^frame (-?\d+): (.*)$")


def marker_path(folder: str) -> str:
    return os.path.join(folder, MARKER_NAME)


def read_marker(folder: str) -> dict[int, str]:
    """frame -> why it failed, from the folder's marker (empty when there is none)."""
    try:
        with open(marker_path(folder), encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return {}
    out: dict[int, str] = {}
    for line in lines:
        m = _LINE.match(line)
        if m:
            out[int(m.group(1))] = m.group(2)
    return out


def update_marker(folder: str, failed: Mapping[int, str], finished: Iterable[int] = ()) -> str | None:
    """Merge one render's results into the folder's marker: ``finished``
    frames leave it, ``failed`` frames enter it (with why). Returns the
    marker's path, or None when no failure is left (and the file is gone)."""
    entries = read_marker(folder)
    for frame in finished:
        entries.pop(int(frame), None)
    for frame, why in failed.items():
        entries[int(frame)] = " ".join(str(why).split())  # one line per frame
    path = marker_path(folder)
    if not entries:
        if os.path.exists(path):
            os.remove(path)
        return None
    os.makedirs(folder, exist_ok=True)
    with atomic_write(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(f"frame {f}: {entries[f]}\n" for f in sorted(entries))
    return path

"""Capturing render passes from the compositor to files Python can read.

A render's passes can't be read from Python (the Render Result holds no
readable pixels), so a Render Layers node and a File Output node in the
scene's compositor write the wanted passes of each render to single-layer
32-bit float EXRs (ZIP: lossless, so data such as Cryptomatte IDs survives
bit for bit). They don't change the composited picture. ``PassCapture``
names the nodes, installs and removes them, and finds the files:
``<stem><frame>.exr`` in an animation, ``<stem>.exr`` for a still render
in 5.0. Files are read raw (io/exr_file.py), rows top-down.

Users: temporal mode's Vector pass (temporal.py, for one run) and the style
regions' Cryptomatte passes (regions.py, kept in the file while regions need it).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from typing import Any

import numpy as np

from ..io import exr_file
from ..support import compat


class CaptureError(Exception):
    """A captured pass is missing or can't be read; the message says which."""


class PassCapture:
    """Render Layers ``layer``'s ``outputs`` written to ``folder`` on every render."""

    def __init__(self, prefix: str, folder: str, layer: str, outputs: list[str], file_name: str):
        self.prefix = prefix            # node names start with it (".": hidden from lists)
        self.folder = folder
        self.layer = layer
        self.outputs = list(outputs)
        self.file_name = file_name

    @property
    def node_names(self) -> tuple[str, str]:
        return f"{self.prefix} Layers", f"{self.prefix} Output"

    def install(self, tree: Any) -> None:
        """Add (or replace) the two nodes in ``tree``."""
        self.remove_nodes(tree)
        os.makedirs(self.folder, exist_ok=True)
        rl = tree.nodes.new("CompositorNodeRLayers")
        out = tree.nodes.new("CompositorNodeOutputFile")
        rl.name, out.name = self.node_names
        rl.label, out.label = self.node_names
        rl.layer = self.layer
        compat.setup_pass_outputs(out, self.folder, self.file_name, self.outputs)
        for i, name in enumerate(self.outputs):
            socket = rl.outputs.get(name)
            if socket is None:
                raise CaptureError(f"the view layer {self.layer!r} has no {name} pass to capture")
            tree.links.new(socket, out.inputs[i])
        rl.location, out.location = (-400, -600), (-100, -600)

    def installed(self, tree: Any) -> bool:
        """True when ``tree`` has the nodes, linked to these outputs, writing to ``folder``."""
        if tree is None:
            return False
        rl, out = (tree.nodes.get(n) for n in self.node_names)
        if rl is None or out is None or rl.layer != self.layer or out.mute or rl.mute:
            return False
        folder = out.base_path if compat.IS_4X else out.directory
        if os.path.normpath(folder) != os.path.normpath(self.folder):
            return False
        linked = [link.from_socket.name for link in tree.links
                  if link.to_node == out and link.from_node == rl]
        # (5.0 adds an unnamed socket for a new item: only the links count.)
        return sorted(linked) == sorted(self.outputs)

    def remove_nodes(self, tree: Any) -> None:
        if tree is None:
            return
        for name in self.node_names:
            node = tree.nodes.get(name)
            if node is not None:
                tree.nodes.remove(node)

    # -- the files ---------------------------------------------------------------------
    def _stem(self, output: str) -> str:
        return f"{self.file_name}{output}"

    def files(self, output: str) -> dict[int | None, str]:
        """The files of ``output`` in the folder by frame (None: a still render's)."""
        pattern = re.compile(rf"^{re.escape(self._stem(output))}(\d*)\.exr$")
        out: dict[int | None, str] = {}
        for path in glob.glob(os.path.join(glob.escape(self.folder), "*.exr")):
            m = pattern.match(os.path.basename(path))
            if m:
                out[int(m.group(1)) if m.group(1) else None] = path
        return out

    def latest(self, output: str, frame: int | None = None, still: bool = False) -> str:
        """The file ``output`` was written to for ``frame`` of an animation, or by a
        still render (``still``: its file names no frame); default: the newest. Never
        another frame's file: its masks would be of another picture."""
        found = self.files(output)
        if still or frame is not None:
            path = found.get(None if still else frame)
            if path is None:
                raise CaptureError(f"the render wrote no {output} pass for frame {frame} (is Compositing "
                                   "on, in Output Properties > Post Processing?)")
            return path
        if not found:
            raise CaptureError(f"the render wrote no {output} pass (is Compositing on, in Output "
                               "Properties > Post Processing?)")
        return max(found.values(), key=os.path.getmtime)

    def take(self, dest: str, frame: int | None = None) -> dict[str, str]:
        """Move the last render's file of every output into ``dest`` (so the
        next render can't overwrite them); output -> new path."""
        os.makedirs(dest, exist_ok=True)
        taken = {}
        for output in self.outputs:
            src = self.latest(output, frame)
            taken[output] = os.path.join(dest, f"{output}.exr")
            shutil.move(src, taken[output])
        return taken

    def clear(self) -> None:
        """Before a render: no file of an earlier frame may be mistaken for this one's."""
        for f in glob.glob(os.path.join(glob.escape(self.folder), "*.exr")):
            os.remove(f)

    def delete_folder(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def read_pass(path: str, full_float: bool = False) -> np.ndarray:
    """One captured 4-channel pass: H x W x 4 float32, rows top-down."""
    try:
        return exr_file.read_four_channels(path, full_float)
    except (exr_file.ExrError, OSError) as e:
        raise CaptureError(f"the captured pass {os.path.basename(path)} can't be read: {e}") from e

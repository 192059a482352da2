"""The wire protocol between the add-on and the worker, used by both ends.

Every message is a 4-byte big-endian length, then that many bytes of UTF-8
JSON holding one object. Pixels never travel in messages: requests name .npy
files (``{"path": ...}``).

This module imports only the standard library and nothing of its own
package. The worker imports it as ``pastiche_core.ipc.wire`` (or from its
file, when started by path); the add-on loads this same file by path from
the core it bundles (``blender_pastiche.support.core_files.load_wire``),
because importing the ``pastiche_core`` package would import torch into
Blender's process.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from typing import Any, BinaryIO

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">I")
MAX_MESSAGE = 64 * 1024 * 1024  # JSON only; pixels go through files


class ProtocolError(ValueError):
    """A message broke the framing: too large, or not a JSON object."""


def json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in results; make them plain JSON.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def read_exact(stream: BinaryIO, n: int) -> bytes | None:
    """n bytes from stream, or None if it ends first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class Channel:
    """Length-prefixed JSON messages over two binary streams (thread-safe send).

    allow_nan: whether send() may write NaN and infinities (JSON has neither;
    the worker refuses to, the add-on's requests pass them on for the core to
    reject with its own message)."""

    def __init__(self, reader: BinaryIO, writer: BinaryIO, *, allow_nan: bool = False):
        self.reader = reader
        self.writer = writer
        self.allow_nan = allow_nan
        self._lock = threading.Lock()

    def send(self, message: dict) -> None:
        data = json.dumps(message, allow_nan=self.allow_nan, default=json_default).encode("utf-8")
        with self._lock:
            self.writer.write(HEADER.pack(len(data)) + data)
            self.writer.flush()

    def receive(self) -> dict | None:
        """The next message, or None when the other side closed the pipe."""
        head = read_exact(self.reader, HEADER.size)
        if head is None:
            return None
        (size,) = HEADER.unpack(head)
        if size > MAX_MESSAGE:
            raise ProtocolError(f"message of {size} bytes is larger than the limit of {MAX_MESSAGE}")
        body = read_exact(self.reader, size)
        if body is None:
            return None
        msg = json.loads(body.decode("utf-8"))
        if not isinstance(msg, dict):
            raise ProtocolError("a message must be a JSON object")
        return msg

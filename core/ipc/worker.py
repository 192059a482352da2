"""The worker process's entry point.

Started as ``python -m pastiche_core.ipc.worker`` or as ``python <core>/ipc/worker.py``
(the add-on bundles the core under its own folder and starts it by path).
This file imports only the standard library at the top, so a Python without
torch or numpy still starts, says what is missing in its hello message and
exits, instead of dying with a traceback nobody reads. Then it imports the
core and hands the channel to ipc/server.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

# The worker shares its CPU with Blender (UI, render threads): OpenMP threads
# that spin while waiting steal those cores and, measured on 2 cores under
# load, halve the network's speed (docs/performance.md). Passive waiting is
# set before torch loads OpenMP; the environment still overrides it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _load_file(name: str, path: str, package_dir: str | None = None) -> ModuleType:
    """Import a file (or, with package_dir, a package) under ``name`` without
    putting its folder on sys.path."""
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[package_dir] if package_dir else None)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def protocol_channel(wire: ModuleType):
    """Take over stdout for the protocol; anything else printed goes to stderr."""
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return wire.Channel(sys.stdin.buffer, proto_out)


def missing_dependency(exc: ImportError) -> dict:
    name = getattr(exc, "name", None) or str(exc)
    return {"type": "hello", "ok": False, "pid": os.getpid(), "python": sys.executable,
            "error": {"type": "MissingDependency",
                      "message": f"the worker's Python ({sys.executable}) cannot import {name!r}: "
                                 f"Install PyTorch in the add-on preferences, or set Worker Python "
                                 f"there to another Python that has PyTorch, numpy and "
                                 f"safetensors ({exc})"}}


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    if __package__:
        wire = importlib.import_module(f"{__package__}.wire")
    else:
        # Python put this folder first on sys.path; its modules are not top-level ones.
        if sys.path and os.path.abspath(sys.path[0] or ".") == here:
            sys.path.pop(0)
        wire = _load_file("_pastiche_wire", os.path.join(here, "wire.py"))
    channel = protocol_channel(wire)
    try:
        if __package__:
            server = importlib.import_module(f"{__package__}.server")
        else:
            # The package holding this folder, as ``pastiche_core`` whatever its folder is
            # called (core/, or a bundled copy).
            package_dir = os.path.dirname(here)
            _load_file("pastiche_core", os.path.join(package_dir, "__init__.py"), package_dir)
            server = importlib.import_module("pastiche_core.ipc.server")
        server._torch_summary()  # imports torch: fail here, with a message, if it is missing
    except ImportError as exc:
        channel.send(missing_dependency(exc))
        return 3
    return server.serve(channel)


if __name__ == "__main__":
    sys.exit(main())

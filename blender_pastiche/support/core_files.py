"""Where the Pastiche core lives, decided in one place.

The core is ``pastiche_core`` when it is installed (development, a user's own
environment), else the copy bundled inside the add-on at
``blender_pastiche/pastiche_core``. Blender's own process never needs torch:
the add-on only needs the core's *files* (the worker script, the bundled
model), so locating it does not import it. ``import_core()`` imports it for
callers that really run torch in-process (tests, tools).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "pastiche_core"


def core_dir() -> Path:
    """The folder of the core package (holds __init__.py and ipc/worker.py)."""
    try:
        spec = importlib.util.find_spec("pastiche_core")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "ipc" / "worker.py").is_file():
                return Path(location)
    if (BUNDLED_DIR / "ipc" / "worker.py").is_file():
        return BUNDLED_DIR
    raise ImportError(
        "the Pastiche core was not found: install pastiche_core or use an add-on build "
        f"that bundles it at {BUNDLED_DIR}", name="pastiche_core")


def worker_script() -> Path:
    """The worker entry point, started by file path so any Python can run it."""
    return core_dir() / "ipc" / "worker.py"


def default_model_path() -> Path | None:
    """The model shipped with the core, if this build ships one."""
    try:
        path = core_dir() / "models" / "default.safetensors"
    except ImportError:
        return None
    return path if path.is_file() else None


def import_core() -> ModuleType:
    """Import the core in this process (needs torch here)."""
    try:
        return importlib.import_module("pastiche_core")
    except ImportError as exc:
        if getattr(exc, "name", None) != "pastiche_core":
            raise  # the core is there but one of its dependencies is not
    package = (__package__ or "blender_pastiche.support").rpartition(".")[0]
    return importlib.import_module(f"{package}.pastiche_core")

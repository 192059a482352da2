"""Where the Pastiche core lives, decided in one place.

The core is ``pastiche_core`` when it is installed (development, a user's own
environment), else the copy bundled inside the add-on at
``blender_pastiche/pastiche_core``. Blender's own process never needs torch:
the add-on only needs the core's *files* (the worker script, the bundled
model, the wire protocol), so locating them does not import the core.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .package import ADDON_PACKAGE

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
    """The model shipped with the core, if this build ships one (the core's own
    rule, core/model/default_model.py)."""
    try:
        return load_core_file("model/default_model.py").default_model_path()
    except ImportError:
        return None


def load_core_file(relative: str) -> ModuleType:
    """One standard-library-only module of the core, loaded from its file.

    Importing it as part of the core package would run the package's
    __init__, which imports torch; the modules loaded this way (the wire
    protocol, the safetensors header reader, atomic writes) import only the
    standard library, so they load on their own. Loaded once, then cached in
    sys.modules."""
    stem = relative.rpartition("/")[2].removesuffix(".py")
    name = f"{ADDON_PACKAGE}._pastiche_{stem}"
    module = sys.modules.get(name)
    if module is None:
        path = core_dir().joinpath(*relative.split("/"))
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {relative} from {path}", name="pastiche_core")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


def load_wire() -> ModuleType:
    """The core's wire protocol (core/ipc/wire.py)."""
    return load_core_file("ipc/wire.py")


def load_safetensors_header() -> ModuleType:
    """The core's safetensors header reader (core/io/safetensors_header.py)."""
    return load_core_file("io/safetensors_header.py")


def load_atomic() -> ModuleType:
    """The core's atomic file writes (core/io/atomic.py)."""
    return load_core_file("io/atomic.py")

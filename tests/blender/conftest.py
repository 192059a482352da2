"""Shared set-up for tests that run real Blender (bpy as a Python module).

Blender's user folders are redirected to a temporary directory BEFORE bpy is
imported, so tests never touch the home folder. Fixtures:

- ``bpy_module``: the imported bpy (session-wide; bpy cannot be re-initialised)
- ``addon``: the add-on registered once for the session (module object);
  its worker is shut down at the end
- ``clean_scene``: empties the file (``read_homefile(use_empty=True)`` keeps
  registered classes) and returns the scene
- ``make_model(path, styles=("a", "b"), seed=0)``: writes a tiny model with
  randomized per-style gamma/beta so styles really differ
- ``tiny_model`` / ``three_style_model``: ready-made model files (session)

Run only the Blender tests with ``pytest tests/blender``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_USER_DIR = tempfile.mkdtemp(prefix="pastiche-blender-user-")
for _var in ("BLENDER_USER_RESOURCES", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS",
             "BLENDER_USER_DATAFILES", "BLENDER_USER_EXTENSIONS"):
    os.environ.setdefault(_var, os.path.join(_USER_DIR, _var.lower()))
os.environ.setdefault("XDG_CONFIG_HOME", os.path.join(_USER_DIR, "xdg-config"))
os.environ.setdefault("XDG_CACHE_HOME", os.path.join(_USER_DIR, "xdg-cache"))
os.environ["HOME"] = _USER_DIR

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.blender


def write_tiny_model(path: str | os.PathLike, styles=("a", "b"), seed: int = 0) -> Path:
    """A tiny model whose styles differ (random gamma/beta per style)."""
    from ..model_factory import write_randomized_model

    return write_randomized_model(path, styles, seed, credits={s: {"artist": f"test {s}"} for s in styles})


@pytest.fixture(scope="session")
def bpy_module():
    return bpy


@pytest.fixture(scope="session")
def make_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")

    def make(name: str = "model.safetensors", styles=("a", "b"), seed: int = 0) -> Path:
        return write_tiny_model(folder / name, styles, seed)

    return make


@pytest.fixture(scope="session")
def tiny_model(make_model) -> Path:
    return make_model("tiny.safetensors", ("a", "b"), seed=1)


@pytest.fixture(scope="session")
def three_style_model(make_model) -> Path:
    return make_model("three.safetensors", ("a", "b", "c"), seed=2)


@pytest.fixture(scope="session")
def addon():
    import blender_pastiche
    from blender_pastiche.worker import client as worker_client

    blender_pastiche.register()
    yield blender_pastiche
    blender_pastiche.unregister()
    worker_client.shutdown()


@pytest.fixture
def clean_scene(addon):
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene

"""Fixtures for the add-on's bpy-free modules (io.frame_files, io.exr_file,
worker.client): they run without Blender, so these tests never skip for it."""

from __future__ import annotations

import pytest

from ..model_factory import write_randomized_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny two-style model whose styles differ (random gamma/beta per style)."""
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    return write_randomized_model(path, ("a", "b"), 1, credits={s: {"artist": f"test {s}"} for s in ("a", "b")})

"""The one atomic-write helper (core/io/atomic.py), shared with the add-on and the build."""

from __future__ import annotations

import os

import pytest

from pastiche_core.io.atomic import atomic_path


def test_replaces_only_on_success_and_names_the_temporary(tmp_path):
    final = tmp_path / "f.png"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(final, suffix=".png", prefix=".f-marker-") as tmp:
        assert tmp.name.startswith(".f-marker-") and tmp.suffix == ".png"
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert final.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.png"]
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f.png"]


def test_require_content_refuses_an_empty_result(tmp_path):
    final = tmp_path / "f.exr"
    final.write_bytes(b"old")
    with pytest.raises(OSError, match="produced no file"), atomic_path(final, require_content=True):
        pass
    assert final.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.exr"]
    with atomic_path(tmp_path / "g.bin"):
        pass  # without require_content an empty file is a valid result
    assert (tmp_path / "g.bin").read_bytes() == b""

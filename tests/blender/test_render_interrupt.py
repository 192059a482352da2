"""Cancel and worker death in the middle of a stylized animation (real bpy):
no half-written or temporary file, a clear report, Blender state intact."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("bpy")
pytest.importorskip("OpenEXR")

from . import scenes
from .test_render_animation import read_exr, render

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return scenes.make_tiny_model(str(tmp_path_factory.mktemp("model") / "tiny.safetensors"))


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder)
                  for f in fs if f.endswith((".exr", ".png")))


def test_cancel_mid_animation(tmp_path, model):
    report = render("operator", tmp_path, model, cancel_after=5)
    assert report["result"] == ["CANCELLED"]
    assert "cancelled after 1 of 3 frame(s)" in report["log"]
    assert files(tmp_path) == ["frame_0005.exr", "unstylized/frame_0005.exr"]
    assert report["leftover_files"] == []
    read_exr(tmp_path / "frame_0005.exr")  # complete, readable
    assert report["frame_after"] == 7  # the frame the scene was on before


def test_worker_killed_mid_frame_operator(tmp_path, model):
    report = render("operator", tmp_path, model, kill_at=6)
    assert report["killed_pid"]
    assert report["result"] == ["CANCELLED"]
    assert "stopped at frame 6" in report["log"] and "WorkerDied" in report["log"], report["log"]
    # Frame 5 done; frame 6's render is kept aside, not left looking stylized; 7 never started.
    assert files(tmp_path) == ["frame_0005.exr", "unstylized/frame_0005.exr", "unstylized/frame_0006.exr"]
    assert report["leftover_files"] == []
    for f in files(tmp_path):
        read_exr(tmp_path / f)


def test_worker_killed_mid_frame_handler_path_recovers(tmp_path, model):
    """A farm render goes on: the failed frame is set aside (a re-run fills the gap),
    the worker restarts for the next frame."""
    report = render("hooks", tmp_path, model, kill_at=6)
    assert [o["ok"] for o in report["outcomes"]] == [True, False, True], report["log"]
    assert "ERROR: frame 6 was not stylized" in report["log"]
    assert files(tmp_path) == ["frame_0005.exr", "frame_0007.exr", "unstylized/frame_0005.exr",
                               "unstylized/frame_0006.exr", "unstylized/frame_0007.exr"]
    assert report["leftover_files"] == []

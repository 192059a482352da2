"""The failure marker a render farm reads (io/failure_marker.py): merged over
re-runs, one line per frame, gone once every frame is stylized."""

from __future__ import annotations

import os

from blender_pastiche.io import failure_marker


def test_marker_lists_failures_and_a_rerun_clears_them(tmp_path):
    folder = str(tmp_path)
    path = failure_marker.update_marker(folder, {6: "the worker\nstopped responding", 9: "cancelled"})
    assert path == os.path.join(folder, "pastiche-failed-frames.txt")
    assert open(path).read() == "frame 6: the worker stopped responding\nframe 9: cancelled\n"
    # A chunk that re-renders frame 6 fine and fails frame 12 keeps frame 9's line.
    failure_marker.update_marker(folder, {12: "ModelFileError"}, finished=[6, 7])
    assert failure_marker.read_marker(folder) == {9: "cancelled", 12: "ModelFileError"}
    assert failure_marker.update_marker(folder, {}, finished=[9, 12]) is None
    assert not os.path.exists(path)
    assert [p for p in os.listdir(folder)] == []  # no temporary file left either


def test_no_marker_reads_as_no_failure(tmp_path):
    assert failure_marker.read_marker(str(tmp_path)) == {}
    assert failure_marker.update_marker(str(tmp_path), {}, finished=[1]) is None

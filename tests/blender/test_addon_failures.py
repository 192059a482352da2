"""Failure paths through the add-on's operators: no model, a corrupt model, no
torch in the worker's Python, the worker killed mid-job. Each gives a clear
report, leaves Blender's data as it was, and the next job works."""

from __future__ import annotations

import os
import signal
import time

import bpy
import numpy as np
import pytest

from blender_pastiche.worker import client as worker_client

pytestmark = pytest.mark.blender


def _photo():
    image = bpy.data.images.new("photo", 24, 16, alpha=True, float_buffer=True)
    image.pixels.foreach_set(np.random.default_rng(0).random(24 * 16 * 4, dtype=np.float32))
    return image


def _stylize_fails(match: str) -> None:
    names = sorted(i.name for i in bpy.data.images)
    with pytest.raises(RuntimeError, match=match):
        bpy.ops.pastiche.stylize_image(image_name="photo")
    assert sorted(i.name for i in bpy.data.images) == names  # nothing half-made


def _use(scene, path):
    scene.pastiche.model_source = "FILE"
    scene.pastiche.model_path = str(path)
    scene.pastiche.device = "CPU"


def test_no_model(clean_scene):
    _photo()
    clean_scene.pastiche.model_source = "FILE"
    clean_scene.pastiche.model_path = ""
    _stylize_fails("no model chosen")


def test_all_weights_zero_is_a_warning_not_a_failure(clean_scene, tiny_model):
    _photo()
    _use(clean_scene, tiny_model)
    for item in clean_scene.pastiche.styles:
        item.weight = 0.0
    assert bpy.ops.pastiche.stylize_image(image_name="photo") == {"CANCELLED"}
    assert "photo (Pastiche)" not in bpy.data.images


def test_corrupt_model(clean_scene, tiny_model, tmp_path):
    _photo()
    _use(clean_scene, tiny_model)  # sliders from a good model
    corrupt = tmp_path / "tiny.safetensors"
    data = bytearray(tiny_model.read_bytes())
    corrupt.write_bytes(bytes(data[: len(data) // 2]))  # truncated download
    clean_scene.pastiche.model_path = str(corrupt)
    _stylize_fails("ModelFileError: .*tiny.safetensors")
    clean_scene.pastiche.model_path = str(tiny_model)
    assert bpy.ops.pastiche.stylize_image(image_name="photo") == {"FINISHED"}


def test_no_torch_in_the_workers_python(clean_scene, tiny_model, tmp_path):
    _photo()
    _use(clean_scene, tiny_model)
    (tmp_path / "torch.py").write_text("raise ImportError(\"No module named 'torch'\", name='torch')\n")
    worker_client.restart()
    worker_client.add_worker_path(tmp_path)
    try:
        _stylize_fails("MissingDependency: .*cannot import 'torch'")
    finally:
        worker_client.remove_worker_path(tmp_path)
    assert bpy.ops.pastiche.stylize_image(image_name="photo") == {"FINISHED"}


def test_worker_killed_mid_job(clean_scene, tiny_model):
    """A job running in the background (as from the UI), the worker killed under it."""
    from blender_pastiche.io import pixels
    from blender_pastiche.props import scene as properties

    _photo()
    _use(clean_scene, tiny_model)
    client = worker_client.get_client()
    client.call("ping", timeout=120)  # a running worker
    pid = client.pid
    big = np.random.default_rng(1).random((1024, 1024, 3), dtype=np.float32)
    job = worker_client.submit_stylize(big, properties.effective_weights(clean_scene), tile=128,
                                       **{k: v for k, v in properties.stylize_options(clean_scene).items()
                                          if k != "tile"})
    deadline = time.monotonic() + 60
    while not job.message.startswith("stylizing") and time.monotonic() < deadline and not job.done():
        time.sleep(0.01)
    assert not job.done(), "the job finished before the worker could be killed"
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(worker_client.WorkerError) as err:
        job.wait(timeout=60)
    assert err.value.kind == "WorkerDied" and "killed by signal 9" in err.value.message
    assert "killed" in worker_client.status()["last_error"]
    # Blender's data is untouched and the next job starts a fresh worker.
    assert pixels.read_image(bpy.data.images["photo"]).array.shape == (16, 24, 4)
    assert bpy.ops.pastiche.stylize_image(image_name="photo") == {"FINISHED"}
    assert worker_client.get_client().pid not in (None, pid)

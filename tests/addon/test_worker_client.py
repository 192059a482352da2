"""The add-on's worker client against a real worker process: blocking and
asynchronous jobs, progress, cancel, a worker killed mid-job, a Python
without torch, and no process left behind."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time

import numpy as np
import pytest

from blender_pastiche.worker import client as worker_client
from blender_pastiche.worker.client import WorkerClient, WorkerConfig, WorkerError

SLOW_EXTENSION = textwrap.dedent("""
    import time
    from pastiche_core.ipc.server import request

    @request("test_sleep")
    def sleep(state, msg, progress):
        progress(0.1, "sleeping")
        time.sleep(float(msg.get("seconds", 30)))
        return {"slept": True}
""")


@pytest.fixture
def slow_client(tmp_path):
    """A client whose worker also knows a 'test_sleep' request (a long job)."""
    (tmp_path / "slow_ext.py").write_text(SLOW_EXTENSION)
    config = WorkerConfig(python=sys.executable, extra_paths=(str(tmp_path),),
                          env={"PASTICHE_WORKER_EXTENSIONS": "slow_ext"})
    client = WorkerClient(lambda: config)
    yield client
    client.shutdown()


def _wait_running(job, timeout=60.0):
    deadline = time.monotonic() + timeout
    while job.message != "sleeping" and not job.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.message == "sleeping", (job.state, job.message, job.error)


def test_blocking_stylize_equals_the_core(tiny_model):
    from pastiche_core import Stylizer

    rng = np.random.default_rng(3)
    image = rng.random((20, 36, 4), dtype=np.float32)
    client = WorkerClient(lambda: WorkerConfig(python=sys.executable))
    try:
        out = client.stylize(image, {"a": 0.25, "b": 0.75}, model=tiny_model, device="cpu",
                             colour_space="linear", premultiplied=True, preserve_color=True)
        ref = Stylizer(tiny_model, device="cpu").stylize(
            image, {"a": 0.25, "b": 0.75}, colour_space="linear", premultiplied=True, preserve_color=True)
        np.testing.assert_allclose(out, ref, atol=1e-6)
        st = client.status()
        assert st["state"] == "idle" and st["device"].startswith("cpu") and st["pid"]
        assert list(client.pixel_dir().iterdir()) == []  # pixel files cleaned up
    finally:
        pid = client.pid
        client.shutdown()
    assert worker_client.wait_for_exit(pid)


def test_async_job_reports_progress_and_cancel_stops_the_worker(slow_client, tiny_model):
    job = slow_client.submit("test_sleep", {"seconds": 60})
    queued = slow_client.submit("ping")
    _wait_running(job)
    assert slow_client.status()["state"] == "busy"
    pid = slow_client.pid
    queued.cancel()  # still waiting in the queue: just dropped
    job.cancel()     # running: the worker is stopped
    with pytest.raises(WorkerError) as err:
        job.wait(timeout=30)
    assert err.value.kind == "Cancelled" and job.state == "cancelled"
    with pytest.raises(WorkerError) as err:
        queued.wait(timeout=30)
    assert err.value.kind == "Cancelled"
    assert worker_client.wait_for_exit(pid)
    # The next job starts a fresh worker.
    assert slow_client.call("ping", timeout=120)["pong"] is True
    assert slow_client.pid != pid


def test_worker_killed_mid_job_is_reported_and_replaced(slow_client, tiny_model):
    job = slow_client.submit("test_sleep", {"seconds": 60})
    _wait_running(job)
    pid = slow_client.pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerError) as err:
        job.wait(timeout=30)
    assert err.value.kind == "WorkerDied"
    assert f"pid {pid}" in err.value.message and "killed by signal 9" in err.value.message
    assert "next job starts a fresh worker" in err.value.message
    assert slow_client.status()["state"] == "stopped"
    image = np.full((16, 16, 3), 0.5, np.float32)
    out = slow_client.stylize(image, {"a": 1.0}, model=tiny_model, device="cpu", timeout=120)
    assert out.shape == image.shape and slow_client.pid not in (None, pid)


def test_python_without_torch_gives_a_clear_error(tmp_path, tiny_model):
    (tmp_path / "torch.py").write_text("raise ImportError(\"No module named 'torch'\", name='torch')\n")
    client = WorkerClient(lambda: WorkerConfig(python=sys.executable, extra_paths=(str(tmp_path),)))
    try:
        with pytest.raises(WorkerError) as err:
            client.stylize(np.zeros((16, 16, 3), np.float32), {"a": 1}, model=tiny_model, timeout=120)
        assert err.value.kind == "MissingDependency"
        assert "'torch'" in err.value.message and "preferences" in err.value.message
        assert client.status()["state"] == "stopped"
    finally:
        client.shutdown()


def test_missing_python_and_missing_model(tmp_path, tiny_model):
    client = WorkerClient(lambda: WorkerConfig(python=str(tmp_path / "no-python")))
    try:
        with pytest.raises(WorkerError) as err:
            client.call("ping", timeout=60)
        assert err.value.kind == "WorkerStartFailed" and "no-python" in err.value.message
        with pytest.raises(WorkerError) as err:
            client.submit_stylize(np.zeros((16, 16, 3), np.float32), {"a": 1}, model=None)
        assert err.value.kind == "NoModel"
    finally:
        client.shutdown()


def test_keep_alive_off_stops_the_worker_after_each_job(tiny_model):
    client = WorkerClient(lambda: WorkerConfig(python=sys.executable, keep_alive=False))
    try:
        out = client.stylize(np.full((16, 16, 3), 0.5, np.float32), {"a": 1.0}, model=tiny_model,
                             device="cpu", timeout=120)
        assert out.shape == (16, 16, 3)
        assert client.status()["state"] == "stopped"
    finally:
        client.shutdown()


def _slow_config(tmp_path, **kwargs) -> WorkerConfig:
    (tmp_path / "slow_ext.py").write_text(SLOW_EXTENSION)
    return WorkerConfig(python=sys.executable, extra_paths=(str(tmp_path),),
                        env={"PASTICHE_WORKER_EXTENSIONS": "slow_ext"}, **kwargs)


def test_a_frozen_worker_is_killed_within_its_response_timeout(tmp_path):
    """SIGSTOP (a hung or frozen worker): the job fails with a named error
    within timeout + 2 s instead of waiting for ever; the next job gets a new worker."""
    timeout = 1.5
    client = WorkerClient(lambda: _slow_config(tmp_path, response_timeout=timeout))
    try:
        job = client.submit("test_sleep", {"seconds": 60})
        _wait_running(job)
        pid = client.pid
        os.kill(pid, signal.SIGSTOP)
        frozen = time.monotonic()
        with pytest.raises(WorkerError) as err:
            job.wait(timeout=30)
        waited = time.monotonic() - frozen
        assert err.value.kind == "WorkerUnresponsive"
        assert f"(pid {pid}) stopped responding for 1.5 s and was killed" in err.value.message
        # The deadline runs from the last message, which may precede the freeze by up to
        # one heartbeat interval; it must never fire later than timeout + 2 s.
        beat = _slow_config(tmp_path, response_timeout=timeout).heartbeat_interval()
        assert 0 < beat < timeout
        assert timeout - beat <= waited < timeout + 2.0, (waited, beat)
        assert worker_client.wait_for_exit(pid)  # SIGKILL works on a stopped process
        assert client.call("ping", timeout=120)["pong"] is True
        assert client.pid not in (None, pid)
    finally:
        client.shutdown()


def test_a_long_job_that_sends_heartbeats_is_not_killed(tmp_path):
    """The deadline is on silence, not on the job's length: a 2 s job under a
    0.5 s timeout finishes, because the working worker sends heartbeats."""
    client = WorkerClient(lambda: _slow_config(tmp_path, response_timeout=0.5))
    try:
        assert client.call("test_sleep", timeout=120, seconds=2.0)["slept"] is True
    finally:
        client.shutdown()


def test_keep_alive_switched_off_applies_without_a_restart(tiny_model):
    settings = {"keep": True}
    client = WorkerClient(lambda: WorkerConfig(python=sys.executable, keep_alive=settings["keep"]))
    image = np.full((16, 16, 3), 0.5, np.float32)
    try:
        client.stylize(image, {"a": 1.0}, model=tiny_model, device="cpu", timeout=120)
        pid = client.pid
        assert pid is not None  # kept running
        settings["keep"] = False  # the preference turned off, no restart in between
        client.stylize(image, {"a": 1.0}, model=tiny_model, device="cpu", timeout=120)
        assert client.status()["state"] == "stopped"
        assert worker_client.wait_for_exit(pid)
    finally:
        client.shutdown()


def test_pixel_folders_of_dead_sessions_are_swept_and_nothing_else(tmp_path):
    import subprocess

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    prefix = worker_client.PIXEL_DIR_PREFIX
    stale = tmp_path / f"{prefix}{gone.pid}-abc"
    live = tmp_path / f"{prefix}{os.getppid()}-def"        # a running process's folder
    mine = tmp_path / f"{prefix}{os.getpid()}-ghi"          # this process's own
    other = [tmp_path / "pastiche-render-x", tmp_path / f"{prefix}notapid-x", tmp_path / "someone-else"]
    for folder in (stale, live, mine, *other):
        folder.mkdir()
        (folder / "in-1.npy").write_bytes(b"x")
    assert worker_client.sweep_stale_pixel_dirs(tmp_path) == [stale]
    assert not stale.exists()
    assert all(p.exists() for p in (live, mine, *other))


def test_the_pixel_folder_is_named_after_its_process():
    client = WorkerClient(lambda: WorkerConfig(python=sys.executable))
    try:
        name = client.pixel_dir().name
        assert name.startswith(f"{worker_client.PIXEL_DIR_PREFIX}{os.getpid()}-")
    finally:
        client.shutdown()


def test_stylize_with_regions_sends_the_coverage_as_a_file_and_equals_the_core(tiny_model):
    from pastiche_core import Stylizer
    from pastiche_core.inference.regions import StyleRegions

    rng = np.random.default_rng(4)
    image = rng.random((20, 36, 3), dtype=np.float32)
    coverage = np.zeros((20, 36, 1), np.float32)
    coverage[:, :18] = 1.0
    coverage[:, 18] = 0.5
    client = WorkerClient(lambda: WorkerConfig(python=sys.executable))
    try:
        regions = {"coverage": coverage, "mixes": [{"b": 1.0}], "strengths": [0.7],
                   "method": "composite", "names": ["style region 'left'"]}
        job = client.submit_stylize(image, {"a": 1.0}, model=tiny_model, device="cpu", regions=regions)
        assert job.fields["regions"]["coverage"]["path"].endswith(".npy")
        out = job.wait(60)
        assert not os.path.exists(job.fields["regions"]["coverage"]["path"])  # cleaned up
        ref = Stylizer(tiny_model, device="cpu").stylize(
            image, StyleRegions(coverage, [{"b": 1.0}], base={"a": 1.0}, strengths=[0.7]))
        np.testing.assert_allclose(out, ref, atol=1e-6)
        # A bad map fails with the core's message, naming the region.
        bad = dict(regions, mixes=[{"b": 0.0}])
        with pytest.raises(WorkerError, match="style region 'left'"):
            client.stylize(image, {"a": 1.0}, model=tiny_model, device="cpu", regions=bad)
    finally:
        client.shutdown()

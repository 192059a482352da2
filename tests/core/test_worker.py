"""The worker process: protocol, requests, errors, start-up modes. No bpy."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import pastiche_core
from pastiche_core import Stylizer
from pastiche_core.ipc import server as worker_mod

from ..model_factory import write_randomized_model

CORE_DIR = Path(pastiche_core.__file__).resolve().parent
HEADER = struct.Struct(">I")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return write_randomized_model(tmp_path_factory.mktemp("m") / "tiny.safetensors")


class Proc:
    """A worker subprocess spoken to with the real framing."""

    def __init__(self, argv: list[str], env: dict | None = None, cwd: str | None = None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, cwd=cwd)

    def send(self, msg: dict) -> None:
        import json

        data = json.dumps(msg).encode()
        self.p.stdin.write(HEADER.pack(len(data)) + data)
        self.p.stdin.flush()

    def recv(self) -> dict | None:
        import json

        head = self.p.stdout.read(4)
        if len(head) < 4:
            return None
        return json.loads(self.p.stdout.read(HEADER.unpack(head)[0]))

    def result(self, msg: dict) -> dict:
        self.send(msg)
        progress = []
        while True:
            r = self.recv()
            assert r is not None, self.p.stderr.read().decode()
            if r["type"] == "result":
                r["_progress"] = progress
                return r
            progress.append(r)

    def close(self) -> int:
        if self.p.poll() is None:
            self.p.stdin.close()
        code = self.p.wait(timeout=20)
        self.p.stdout.close()
        self.p.stderr.close()
        return code


@pytest.fixture(scope="module")
def worker():
    proc = Proc([sys.executable, str(CORE_DIR / "ipc" / "worker.py")])
    hello = proc.recv()
    assert hello["type"] == "hello" and hello["ok"], hello
    yield proc
    assert proc.close() == 0


def test_hello_lists_requests_and_devices(worker):
    r = worker.result({"id": 1, "type": "info"})
    assert r["ok"] and r["pid"] == worker.p.pid
    assert {"load", "stylize", "info", "ping", "shutdown"} <= set(r["requests"])
    assert "cpu" in r["devices"] and r["model"] is None


def test_load_and_stylize_match_the_stylizer(worker, model_path, tmp_path):
    r = worker.result({"id": 2, "type": "load", "model": str(model_path), "device": "cpu"})
    assert r["ok"], r
    assert r["styles"] == ["a", "b"] and r["device"].startswith("cpu")
    assert r["_progress"] and r["_progress"][0]["message"] == "loading model"
    again = worker.result({"id": 3, "type": "load", "model": str(model_path), "device": "cpu"})
    assert again["cached"] is True

    rng = np.random.default_rng(0)
    image = rng.random((24, 40, 4), dtype=np.float32)
    image[..., :3] *= image[..., 3:4]  # premultiplied
    np.save(tmp_path / "in.npy", image)
    r = worker.result({"id": 4, "type": "stylize", "input": {"path": str(tmp_path / "in.npy")},
                       "output": {"path": str(tmp_path / "out.npy")}, "weights": {"a": 1, "b": 3},
                       "colour_space": "linear", "premultiplied": True, "strength": 0.8})
    assert r["ok"], r
    assert r["weights"] == [0.25, 0.75]
    out = np.load(tmp_path / "out.npy")
    expected = Stylizer(model_path, device="cpu").stylize(
        image, {"a": 1, "b": 3}, colour_space="linear", premultiplied=True, strength=0.8)
    assert out.shape == image.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_errors_are_results_and_the_worker_keeps_running(worker, model_path, tmp_path):
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(model_path.read_bytes()[: 2000])
    r = worker.result({"id": 5, "type": "load", "model": str(bad)})
    assert not r["ok"] and r["error"]["type"] == "ModelFileError"
    assert "corrupt.safetensors" in r["error"]["message"]

    r = worker.result({"id": 6, "type": "frobnicate"})
    assert not r["ok"] and r["error"]["type"] == "RequestError" and "frobnicate" in r["error"]["message"]

    # The failed load dropped the old model: stylize says to load one first.
    r = worker.result({"id": 7, "type": "stylize", "input": {"path": "x"}, "output": {"path": "y"}})
    assert not r["ok"] and "no model is loaded" in r["error"]["message"]

    assert worker.result({"id": 8, "type": "load", "model": str(model_path)})["ok"]
    r = worker.result({"id": 9, "type": "stylize", "input": {"path": str(tmp_path / "missing.npy")},
                       "output": {"path": str(tmp_path / "o.npy")}, "weights": {"a": 1}})
    assert not r["ok"] and "pixel file not found" in r["error"]["message"]

    np.save(tmp_path / "in.npy", np.zeros((16, 16, 3), np.float32))
    r = worker.result({"id": 10, "type": "stylize", "input": {"path": str(tmp_path / "in.npy")},
                       "output": {"path": str(tmp_path / "o.npy")}, "weights": {"nope": 1}})
    assert not r["ok"] and r["error"]["type"] == "WeightsError" and "nope" in r["error"]["message"]
    assert worker.result({"id": 11, "type": "ping"})["pong"] is True


def test_swatches_one_per_style(worker, model_path, tmp_path):
    assert worker.result({"id": 12, "type": "load", "model": str(model_path)})["ok"]
    r = worker.result({"id": 13, "type": "swatches", "size": 32, "output": {"path": str(tmp_path / "s.npy")}})
    assert r["ok"], r
    stack = np.load(tmp_path / "s.npy")
    assert stack.shape == (2, 32, 32, 3)
    assert np.abs(stack[0] - stack[1]).mean() > 1e-3  # styles differ


def test_handlers_are_a_table_and_oom_is_reported():
    """A new request type joins by decorator; out-of-memory becomes a clear error."""

    @worker_mod.request("test_oom")
    def _oom(state, msg, progress):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    try:
        sent = []

        class Chan:
            def send(self, m):
                sent.append(m)

        r = worker_mod.handle(worker_mod.WorkerState(), {"id": 1, "type": "test_oom"}, Chan())
        assert r["ok"] is False and r["error"]["type"] == "OutOfMemory"
        assert "tile size" in r["error"]["message"] and "2.00 GiB" in r["error"]["message"]
    finally:
        del worker_mod.REQUESTS["test_oom"]


def test_runs_as_module_and_from_a_bundled_copy(tmp_path, model_path):
    # -m pastiche_core.ipc.worker
    p = Proc([sys.executable, "-m", "pastiche_core.ipc.worker"])
    assert p.recv()["ok"]
    assert p.result({"id": 1, "type": "shutdown"})["ok"]
    assert p.close() == 0
    # A copy under another parent folder, started by path (as the add-on bundles it).
    bundle = tmp_path / "addon" / "pastiche_core"
    shutil.copytree(CORE_DIR, bundle, ignore=shutil.ignore_patterns("__pycache__"))
    p = Proc([sys.executable, str(bundle / "ipc" / "worker.py")], cwd=str(tmp_path))
    assert p.recv()["ok"]
    r = p.result({"id": 1, "type": "info"})
    assert r["ok"]
    r = p.result({"id": 2, "type": "load", "model": str(model_path)})
    assert r["ok"], r
    assert p.close() == 0


def test_extension_modules_add_requests(tmp_path):
    (tmp_path / "my_ext.py").write_text(textwrap.dedent("""
        from pastiche_core.ipc.server import request

        @request("echo")
        def echo(state, msg, progress):
            progress(0.5, "echoing")
            return {"echo": msg.get("text")}
    """))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PASTICHE_WORKER_EXTENSIONS="my_ext,not_there")
    p = Proc([sys.executable, str(CORE_DIR / "ipc" / "worker.py")], env=env)
    hello = p.recv()
    assert hello["ok"] and "echo" in hello["requests"]
    assert any("not_there" in e for e in hello["extension_errors"])
    r = p.result({"id": 1, "type": "echo", "text": "hi"})
    assert r["echo"] == "hi" and r["_progress"][0]["message"] == "echoing"
    assert p.close() == 0


def test_python_without_torch_says_so(tmp_path):
    (tmp_path / "torch.py").write_text("raise ImportError(\"No module named 'torch'\", name='torch')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    p = Proc([sys.executable, str(CORE_DIR / "ipc" / "worker.py")], env=env)
    hello = p.recv()
    assert hello["type"] == "hello" and hello["ok"] is False
    assert hello["error"]["type"] == "MissingDependency"
    assert "'torch'" in hello["error"]["message"] and sys.executable in hello["error"]["message"]
    assert p.close() == 3


def test_stray_prints_do_not_corrupt_the_protocol(tmp_path):
    (tmp_path / "noisy.py").write_text(textwrap.dedent("""
        print("hello from a noisy import")
        from pastiche_core.ipc.server import request

        @request("noisy")
        def noisy(state, msg, progress):
            print("noise on stdout " * 100)
            return {"fine": True}
    """))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PASTICHE_WORKER_EXTENSIONS="noisy")
    p = Proc([sys.executable, str(CORE_DIR / "ipc" / "worker.py")], env=env)
    assert p.recv()["ok"]
    assert p.result({"id": 1, "type": "noisy"})["fine"] is True
    assert p.close() == 0


def test_the_worker_waits_passively_unless_told_otherwise(tmp_path):
    """The worker shares the CPU with Blender: spinning OpenMP threads would steal its cores."""
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(f"""
        import os, runpy, sys
        sys.argv = [{str(CORE_DIR / "ipc" / "worker.py")!r}, "--help-env"]
        try:
            runpy.run_path(sys.argv[0], run_name="not_main")
        finally:
            print(os.environ.get("OMP_WAIT_POLICY"))
    """))
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "ACTIVE"

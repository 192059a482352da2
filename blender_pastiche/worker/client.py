"""Starts, owns and stops the core's worker process; Blender never runs torch.

Two ways in, both served by one background "pump" thread that talks to the
worker one request at a time:

- blocking, for background mode and render handlers::

      out = worker_client.stylize(pixels, {"starry": 0.7}, model=path,
                                  colour_space="linear", premultiplied=True)

- asynchronous, for the UI: ``request = submit_stylize(...)``, then poll
  ``request.done()`` / ``request.fraction`` from a ``bpy.app.timers`` function or a
  modal operator, ``request.cancel()`` on Esc, ``request.wait()`` for the array.

The worker is started lazily with the Python from the preferences (Blender's
own by default) and restarted after it dies, so a crash or out-of-memory in
torch is a reported error, never a dead Blender. This module does not import
bpy: preferences feed it through ``set_config_provider``.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..support import core_files as core_import

START_TIMEOUT = 180.0  # first torch import on a cold disk can be slow
STOP_TIMEOUT = 5.0
# A worker that sends nothing (no progress, no heartbeat) for this long while
# it has a request is killed and the job fails with WorkerUnresponsive. The
# worker sends heartbeats every HEARTBEAT_FRACTION of it while it works, so
# only a frozen process (stopped, hung in the kernel, swapped out) is caught.
RESPONSE_TIMEOUT = 60.0
HEARTBEAT_FRACTION = 0.2
PIXEL_DIR_PREFIX = "pastiche-pixels-"  # + owning pid + "-": swept when that process is gone


class WorkerError(Exception):
    """A failed request. ``kind`` is a short machine-readable type: WorkerDied,
    WorkerUnresponsive, Cancelled, MissingDependency, WorkerStartFailed,
    NoModel, OutOfMemory, or the core's error class (ModelFileError,
    WeightsError, ImageError...)."""

    def __init__(self, kind: str, message: str, detail: str = ""):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.detail = detail


@dataclass
class WorkerConfig:
    """How to start the worker. ``python`` empty means this process's own
    (Blender's); ``extra_paths`` go on its PYTHONPATH whichever Python runs it."""

    python: str = ""
    extra_paths: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = START_TIMEOUT
    keep_alive: bool = True  # False: stop the worker when the queue runs empty (frees GPU memory)
    response_timeout: float = RESPONSE_TIMEOUT  # s of silence during a request before the worker is killed

    def heartbeat_interval(self) -> float:
        """How often the worker says it is alive while it works."""
        return max(0.05, min(5.0, self.response_timeout * HEARTBEAT_FRACTION))

    def executable(self) -> str:
        return self.python.strip() or sys.executable

    def runs_own_python(self) -> bool:
        """True when the worker runs on this process's Python (no Python chosen)."""
        return not self.python.strip()


# Folders put on the worker's PYTHONPATH when it runs on Blender's own Python
# (where the torch installer put torch). Packages there are built for that
# Python's version, so a user-chosen Python never gets them.
_worker_paths: list[str] = []


def add_worker_path(path: str | os.PathLike) -> None:
    """Make ``path`` importable in a worker on Blender's own Python (takes
    effect at the next start)."""
    p = os.fspath(path)
    if p not in _worker_paths:
        _worker_paths.append(p)


def remove_worker_path(path: str | os.PathLike) -> None:
    p = os.fspath(path)
    if p in _worker_paths:
        _worker_paths.remove(p)


class Request:
    """One request to the worker. States: queued, running, done, failed, cancelled."""

    def __init__(self, kind: str, fields: dict, finish: Callable[[dict], Any] | None = None,
                 cleanup: Callable[[], None] | None = None):
        self.kind = kind
        self.fields = fields
        self.state = "queued"
        self.fraction = 0.0
        self.message = "waiting for the worker"
        self.result: dict | None = None
        self.value: Any = None  # what finish() made of the result (e.g. the pixel array)
        self.error: WorkerError | None = None
        self._finish = finish
        self._cleanup = cleanup
        self._event = threading.Event()
        self._client: WorkerClient | None = None
        self.cancel_requested = False

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until finished; return ``value`` (or the result dict) or raise WorkerError."""
        if not self._event.wait(timeout):
            raise WorkerError("Timeout", f"the worker did not finish {self.kind!r} within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.value if self._finish is not None else self.result

    def cancel(self) -> None:
        """Queued: dropped. Running: the worker is stopped (frees its memory) and
        the next request starts a fresh one."""
        if self.done():
            return
        self.cancel_requested = True
        if self._client is not None:
            self._client._cancel(self)

    # Called by the pump thread only.
    def _settle(self, state: str, error: WorkerError | None = None) -> None:
        if self._event.is_set():
            return
        self.state = state
        self.error = error
        if self._cleanup is not None:
            try:
                self._cleanup()
            except OSError:
                pass
        self._event.set()


class _Process:
    """One running worker and the threads that drain its pipes."""

    def __init__(self, config: WorkerConfig):
        script = core_import.worker_script()
        env = worker_env(config)
        self.python = config.executable()
        self.config = config
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
        try:
            self.popen = subprocess.Popen(
                [self.python, "-u", str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env, creationflags=flags, close_fds=True)
        except OSError as e:
            raise WorkerError("WorkerStartFailed",
                              f"cannot start the worker Python {self.python!r}: {e}. "
                              "Check the Python path in the Pastiche add-on preferences") from None
        self.stderr_tail: deque[str] = deque(maxlen=60)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True,
                                               name="pastiche-worker-stderr")
        self._stderr_thread.start()
        assert self.popen.stdout is not None and self.popen.stdin is not None
        # The core's own framing (core/ipc/wire.py); NaN weights go through for the core to refuse.
        self.channel = core_import.load_wire().Channel(self.popen.stdout, self.popen.stdin,
                                                       allow_nan=True)
        self.hello: dict = {}
        self.last_heard = time.monotonic()  # when the worker last sent anything
        self.unresponsive_for: float | None = None  # set when the watchdog killed it

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _drain_stderr(self) -> None:
        assert self.popen.stderr is not None
        for raw in iter(self.popen.stderr.readline, b""):
            self.stderr_tail.append(raw.decode("utf-8", "replace").rstrip())

    def send(self, message: dict) -> None:
        self.channel.send(message)

    def receive(self) -> dict | None:
        msg = self.channel.receive()
        self.last_heard = time.monotonic()
        return msg

    def kill_unresponsive(self, silent_for: float) -> None:
        """The watchdog's verdict: SIGKILL works on a stopped process too (SIGTERM waits)."""
        self.unresponsive_for = silent_for
        try:
            self.popen.kill()
        except OSError:
            pass

    def death_report(self) -> str:
        code = self.popen.poll()
        if code is None:
            try:
                code = self.popen.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                code = None
        how = "is not responding" if code is None else (
            f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
        tail = "\n".join(list(self.stderr_tail)[-12:])
        return f"the worker process (pid {self.pid}) {how}" + (f"; its last output:\n{tail}" if tail else "")

    def stop(self, graceful: bool = True) -> None:
        if self.alive() and graceful:
            try:
                self.send({"id": 0, "type": "shutdown"})
                self.popen.wait(timeout=STOP_TIMEOUT)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._stderr_thread.join(timeout=2.0)
        if self.popen.stderr is not None:
            self.popen.stderr.close()


def worker_env(config: WorkerConfig) -> dict[str, str]:
    """The environment a worker starts with: ours, the config's additions, and
    the extra paths in front of PYTHONPATH."""
    env = dict(os.environ)
    env.update(config.env)
    paths = [*config.extra_paths, *(_worker_paths if config.runs_own_python() else ())]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env["PASTICHE_HEARTBEAT_S"] = f"{config.heartbeat_interval():g}"
    return env


def _pixel_base() -> Path:
    """Where pixel folders go: RAM (tmpfs) where there is one."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def _pixel_dir() -> Path:
    """A private folder for pixel files, named after this process so a later
    Blender can tell it is stale once we are gone (sweep_stale_pixel_dirs)."""
    base = _pixel_base()
    sweep_stale_pixel_dirs(base)
    return Path(tempfile.mkdtemp(prefix=f"{PIXEL_DIR_PREFIX}{os.getpid()}-", dir=str(base)))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def sweep_stale_pixel_dirs(base: str | os.PathLike | None = None) -> list[Path]:
    """Remove pixel folders left by Blender sessions that were killed: only
    ours (PIXEL_DIR_PREFIX, owned by this user) and only when the process
    named in the folder's name no longer runs. Returns what was removed."""
    folder = Path(base) if base is not None else _pixel_base()
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith(PIXEL_DIR_PREFIX):
            continue
        pid_text = name[len(PIXEL_DIR_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if not entry.is_dir() or entry.is_symlink() or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            continue
        if not _process_exists(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


class WorkerClient:
    """Owns at most one worker process; runs requests on it one at a time, in order."""

    def __init__(self, config_provider: Callable[[], WorkerConfig] | None = None):
        self._config_provider = config_provider or WorkerConfig
        self._queue: queue.Queue[Request | None] = queue.Queue()
        self._lock = threading.RLock()
        self._proc: _Process | None = None
        self._current: Request | None = None
        self._pump: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._files = itertools.count(1)
        self._pixel_dir: Path | None = None
        self.last_error: WorkerError | None = None
        self.hello: dict = {}
        self.model_info: dict = {}
        self.starting = False

    # -- public --------------------------------------------------------------
    def submit(self, kind: str, fields: dict | None = None, *,
               finish: Callable[[dict], Any] | None = None,
               cleanup: Callable[[], None] | None = None) -> Request:
        """Queue a request; ``fields`` may hold ``model``/``device``/``precision``
        to have that model loaded first. ``finish`` runs on the result in the
        pump thread and its return value becomes ``request.value``."""
        request = Request(kind, dict(fields or {}), finish, cleanup)
        request._client = self
        with self._lock:
            if self._pump is None or not self._pump.is_alive():
                self._pump = threading.Thread(target=self._run, daemon=True, name="pastiche-worker-pump")
                self._pump.start()
        self._queue.put(request)
        return request

    def call(self, kind: str, timeout: float | None = None, **fields: Any) -> dict:
        """Blocking request; returns the worker's result dict or raises WorkerError."""
        return self.submit(kind, fields).wait(timeout)

    def submit_stylize(self, pixels: np.ndarray, weights: Any, *, model: str | os.PathLike | None,
                       device: str = "auto", precision: str = "auto", colour_space: str = "srgb",
                       premultiplied: bool = False, strength: float = 1.0,
                       preserve_color: bool = False, tile: int | None = None,
                       brush_size: float = 1.0, detail: float = 0.0,
                       regions: dict | None = None) -> Request:
        """Asynchronous stylize; ``request.wait()`` / ``request.value`` is the result array.
        ``regions``: the worker's ``regions`` field (style regions, core/ipc/server.py
        request_mix); its ``coverage`` may be the H x W x K array itself, which
        goes to the worker as a file like the pixels."""
        if model is None or not str(model).strip():
            raise WorkerError("NoModel", "no model chosen: pick a model file in the Pastiche panel")
        image = _checked_pixels(pixels)
        folder = self.pixel_dir()
        n = next(self._files)
        src, dst = folder / f"in-{n}.npy", folder / f"out-{n}.npy"
        np.save(src, image, allow_pickle=False)
        fields = {"model": os.fspath(model), "device": device, "precision": precision,
                  "input": {"path": str(src)}, "output": {"path": str(dst)},
                  "weights": None if weights is None else _plain_weights(weights),
                  "colour_space": colour_space, "premultiplied": bool(premultiplied),
                  "strength": float(strength), "preserve_color": bool(preserve_color),
                  "tile": None if tile is None else int(tile),
                  "brush_size": float(brush_size), "detail": float(detail)}
        cov = folder / f"regions-{n}.npy"
        if regions is not None:
            coverage = regions.get("coverage")
            if isinstance(coverage, np.ndarray):
                np.save(cov, np.ascontiguousarray(coverage, dtype=np.float32), allow_pickle=False)
                coverage = {"path": str(cov)}
            fields["regions"] = dict(regions, coverage=coverage)

        def finish(result: dict) -> np.ndarray:
            return np.load(result["output"]["path"], allow_pickle=False)

        def cleanup() -> None:
            for p in (src, dst, cov):
                p.unlink(missing_ok=True)

        return self.submit("stylize", fields, finish=finish, cleanup=cleanup)

    def stylize(self, pixels: np.ndarray, weights: Any, timeout: float | None = None,
                **options: Any) -> np.ndarray:
        """Blocking stylize: same shape and dtype float32 as ``pixels``."""
        return self.submit_stylize(pixels, weights, **options).wait(timeout)

    def status(self) -> dict:
        """A snapshot for the panel: state, device, pid, current request, last error."""
        with self._lock:
            proc, request = self._proc, self._current
            if proc is None or not proc.alive():
                state = "starting" if self.starting else "stopped"
            else:
                state = "busy" if request is not None else "idle"
            return {"state": state, "pid": proc.pid if proc and proc.alive() else None,
                    "python": proc.python if proc else self._config_provider().executable(),
                    "torch": self.hello.get("torch"), "devices": self.hello.get("devices", []),
                    "device": self.model_info.get("device"), "model": self.model_info.get("model"),
                    "job": None if request is None else {"kind": request.kind, "fraction": request.fraction,
                                                     "message": request.message},
                    "queued": self._queue.qsize(),
                    "last_error": None if self.last_error is None else str(self.last_error)}

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.alive() else None

    def pixel_dir(self) -> Path:
        with self._lock:
            if self._pixel_dir is None or not self._pixel_dir.is_dir():
                self._pixel_dir = _pixel_dir()
            return self._pixel_dir

    def stop(self) -> None:
        """Stop the worker (frees its GPU memory); queued requests stay queued and
        start a new worker."""
        with self._lock:
            proc, self._proc = self._proc, None
            self.model_info = {}
        if proc is not None:
            proc.stop()

    def shutdown(self) -> None:
        """Cancel everything, stop the worker and the pump, remove pixel files."""
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is not None:
                request._settle("cancelled", WorkerError("Cancelled", "the add-on was shut down"))
        current = self._current
        if current is not None:
            current.cancel_requested = True
        self.stop()
        pump = self._pump
        if pump is not None and pump.is_alive():
            self._queue.put(None)
            pump.join(timeout=STOP_TIMEOUT)
        self._pump = None
        with self._lock:
            if self._pixel_dir is not None:
                shutil.rmtree(self._pixel_dir, ignore_errors=True)
                self._pixel_dir = None

    # -- pump thread -----------------------------------------------------------
    def _cancel(self, request: Request) -> None:
        with self._lock:
            running = self._current is request
            proc = self._proc
        if running and proc is not None:
            proc.stop(graceful=False)  # the pump sees EOF and settles the request as cancelled

    def _run(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            if request.cancel_requested:
                request._settle("cancelled", WorkerError("Cancelled", "cancelled before it started"))
                continue
            with self._lock:
                self._current = request
            request.state = "running"
            try:
                try:
                    result = self._execute(request)
                finally:
                    self._stop_if_not_kept()
                request.result = result
                if request._finish is not None:
                    request.value = request._finish(result)
                request.fraction = 1.0
                request.message = "done"
                request._settle("done")
            except WorkerError as failure:
                if request.cancel_requested:
                    request._settle("cancelled", WorkerError(
                        "Cancelled", "cancelled by the user; the worker was stopped"))
                else:
                    self.last_error = failure
                    request._settle("failed", failure)
            except Exception as e:  # a bug here must not kill the pump: report it
                err = WorkerError("InternalError", f"{type(e).__name__}: {e}")
                self.last_error = err
                request._settle("failed", err)
            finally:
                with self._lock:
                    self._current = None

    def _stop_if_not_kept(self) -> None:
        """With keep_alive off, stop the worker once no request is waiting (before
        the request is settled, so whoever waits on it sees the worker stopped).
        The setting is read now, not from when the worker started, so turning
        Keep Worker Running off applies after the request in progress."""
        with self._lock:
            proc = self._proc
        if proc is not None and not self._config_provider().keep_alive and self._queue.empty():
            self.stop()

    def _ensure_process(self, request: Request) -> _Process:
        with self._lock:
            proc = self._proc
        if proc is not None and proc.alive():
            return proc
        if proc is not None:
            proc.stop(graceful=False)
        config = self._config_provider()
        request.message = "starting the worker"
        self.starting = True
        try:
            proc = _Process(config)
            # A worker that never says hello is killed after the timeout.
            watchdog = threading.Timer(config.start_timeout, lambda: proc.stop(graceful=False))
            watchdog.daemon = True
            watchdog.start()
            try:
                hello = proc.receive()
            finally:
                watchdog.cancel()
        finally:
            self.starting = False
        if hello is None or hello.get("type") != "hello":
            report = proc.death_report()
            proc.stop(graceful=False)
            raise WorkerError("WorkerStartFailed", f"the worker did not start: {report}")
        if not hello.get("ok"):
            proc.stop(graceful=False)
            err = hello.get("error") or {}
            raise WorkerError(err.get("type", "WorkerStartFailed"), err.get("message", "unknown error"))
        proc.hello = hello
        with self._lock:
            self._proc = proc
            self.hello = hello
            self.model_info = {}
        return proc

    def _watch(self, proc: _Process, timeout: float, done: threading.Event) -> None:
        """Watchdog thread for one request: kill the worker once it has been
        silent (no progress, no heartbeat) for ``timeout`` seconds."""
        tick = max(0.02, min(1.0, timeout / 10))
        while not done.wait(tick):
            silent = time.monotonic() - proc.last_heard
            if silent >= timeout:
                proc.kill_unresponsive(silent)
                return

    def _exchange(self, proc: _Process, request: Request, kind: str, fields: dict) -> dict:
        req_id = next(self._ids)
        timeout = float(self._config_provider().response_timeout)
        finished = threading.Event()
        proc.last_heard = time.monotonic()
        if timeout > 0:
            threading.Thread(target=self._watch, args=(proc, timeout, finished), daemon=True,
                             name="pastiche-worker-watchdog").start()
        try:
            proc.send({**fields, "id": req_id, "type": kind})
            while True:
                msg = proc.receive()
                if msg is None:
                    break
                if msg.get("type") == "progress" and msg.get("id") == req_id:
                    request.fraction = float(msg.get("fraction", 0.0))
                    request.message = str(msg.get("message", ""))
                elif msg.get("type") == "result" and msg.get("id") in (req_id, None):
                    if msg.get("ok"):
                        return msg
                    err = msg.get("error") or {}
                    raise WorkerError(err.get("type", "WorkerError"), err.get("message", "unknown error"),
                                      err.get("detail", ""))
        except (OSError, ValueError):
            pass  # broken pipe: the worker is gone; reported below
        finally:
            finished.set()
        silent = proc.unresponsive_for
        report = "" if silent is not None else proc.death_report()
        with self._lock:
            if self._proc is proc:
                self._proc = None
                self.model_info = {}
        proc.stop(graceful=False)
        if silent is not None:
            raise WorkerError("WorkerUnresponsive",
                              f"the Pastiche worker (pid {proc.pid}) stopped responding for "
                              f"{timeout:g} s and was killed; the next job starts a fresh worker "
                              "(Worker Response Timeout in the add-on preferences)")
        raise WorkerError("WorkerDied", f"{report}. The next job starts a fresh worker")

    def _execute(self, request: Request) -> dict:
        proc = self._ensure_process(request)
        fields = dict(request.fields)
        model = fields.pop("model", None)
        device = fields.pop("device", "auto")
        precision = fields.pop("precision", "auto")
        if model is not None and request.kind not in ("load",):
            loaded = self._exchange(proc, request, "load", {"model": model, "device": device,
                                                        "precision": precision})
            self.model_info = {k: loaded.get(k) for k in ("model", "styles", "device", "credits")}
        elif request.kind == "load":
            fields.update(model=model, device=device, precision=precision)
        result = self._exchange(proc, request, request.kind, fields)
        if request.kind == "load":
            self.model_info = {k: result.get(k) for k in ("model", "styles", "device", "credits")}
        return result


def _checked_pixels(pixels: np.ndarray) -> np.ndarray:
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        shape = getattr(pixels, "shape", None)
        raise WorkerError("ImageError", f"expected an H x W x 3 or 4 float array, got shape {shape}")
    return np.ascontiguousarray(pixels, dtype=np.float32)


def _plain_weights(weights: Any) -> Any:
    if isinstance(weights, dict):
        return {str(k): float(v) for k, v in weights.items()}
    return [float(w) for w in weights]


# -- the add-on's single client -------------------------------------------------

_client: WorkerClient | None = None
_config_provider: Callable[[], WorkerConfig] = WorkerConfig


def set_config_provider(provider: Callable[[], WorkerConfig]) -> None:
    """Preferences install a provider reading the user's Python path and so on."""
    global _config_provider
    _config_provider = provider


def get_client() -> WorkerClient:
    global _client
    if _client is None:
        _client = WorkerClient(lambda: _config_provider())
    return _client


def stylize(pixels: np.ndarray, weights: Any, **options: Any) -> np.ndarray:
    """Blocking stylize through the add-on's worker (see WorkerClient.submit_stylize
    for the options: model, device, precision, colour_space, premultiplied,
    strength, preserve_color, tile, brush_size, detail; and timeout)."""
    return get_client().stylize(pixels, weights, **options)


def submit_stylize(pixels: np.ndarray, weights: Any, **options: Any) -> Request:
    return get_client().submit_stylize(pixels, weights, **options)


def submit(kind: str, fields: dict | None = None, **kwargs: Any) -> Request:
    return get_client().submit(kind, fields, **kwargs)


def status() -> dict:
    if _client is None:
        return {"state": "stopped", "pid": None, "job": None, "last_error": None, "device": None,
                "devices": [], "torch": None, "model": None, "queued": 0,
                "python": _config_provider().executable()}
    return _client.status()


def restart() -> None:
    """Stop the worker now; the next request starts a new one (new settings apply)."""
    if _client is not None:
        _client.stop()


def shutdown() -> None:
    """Stop everything; no process or file is left behind."""
    global _client
    client, _client = _client, None
    if client is not None:
        client.shutdown()


def wait_for_exit(pid: int, timeout: float = 5.0) -> bool:
    """True once process ``pid`` no longer runs (for tests and diagnostics)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        time.sleep(0.05)
    return False

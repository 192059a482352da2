"""The worker's server: the requests it answers and the loop that answers them.

The worker process (ipc/worker.py starts it) runs the network for a parent
(Blender) over pipes, with the messages of ipc/wire.py. stdout carries only
protocol messages (stray prints are sent to stderr).

    worker -> {"type": "hello", "ok": true, "pid", "python", "torch", "devices", "requests"}
    parent -> {"id": 7, "type": "load", "model": PATH, "device": "auto", "precision": "auto"}
    worker -> {"id": 7, "type": "progress", "fraction": 0.0, "message": "loading model"}
    worker -> {"id": 7, "type": "result", "ok": true, ...}
           or {"id": 7, "type": "result", "ok": false,
               "error": {"type": "ModelFileError", "message": "...", "detail": "traceback"}}
    worker -> {"type": "heartbeat"}   every PASTICHE_HEARTBEAT_S seconds while a request runs

Pixels never travel in JSON: a request names .npy files (``{"path": ...}``)
that the parent wrote (on tmpfs where there is one) and that the worker reads
with a memory map; results are written next to them atomically.

Request types live in the table REQUESTS; ``@request("name")`` adds one, so
other modules (temporal stylization, ...) add requests without touching the
loop: list the module in EXTENSION_MODULES (relative to this package) or in
the environment variable PASTICHE_WORKER_EXTENSIONS (absolute names).
A handler gets (state, message, progress) and returns a JSON-ready dict.
Heavy imports (numpy, torch, the Stylizer) happen inside the handlers.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from ..io.atomic import atomic_path
from .wire import PROTOCOL_VERSION, Channel

# Modules (relative to this package) imported at start-up so their
# @request handlers join the table. Other features append their module here.
EXTENSION_MODULES: tuple[str, ...] = ("temporal_requests",)  # temporal mode

# Optional request fields this worker understands ("regions": style regions on
# stylize / temporal requests), so a parent can tell an older worker apart.
FEATURES: tuple[str, ...] = ("regions",)

ProgressFn = Callable[[float, str], None]
Handler = Callable[["WorkerState", dict, ProgressFn], dict]
REQUESTS: dict[str, Handler] = {}


def request(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for request type ``name`` in the dispatch table."""

    def add(fn: Handler) -> Handler:
        REQUESTS[name] = fn
        return fn

    return add


class RequestError(Exception):
    """A request was malformed (missing field, bad pixel file, no model loaded)."""


# -- state and requests --------------------------------------------------------

class WorkerState:
    """What the worker holds between requests: one loaded Stylizer."""

    def __init__(self) -> None:
        self.stylizer: Any = None
        self.model_key: tuple | None = None
        self.model_path: str | None = None
        self.stopping = False
        # Free slot for request types added by other modules (e.g. temporal state).
        self.extras: dict[str, Any] = {}

    def require_stylizer(self) -> Any:
        if self.stylizer is None:
            raise RequestError("no model is loaded: send a 'load' request first")
        return self.stylizer


def _field(msg: dict, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if name not in msg or msg[name] is None:
        if default is ...:
            raise RequestError(f"request {msg.get('type')!r} needs the field {name!r}")
        return default
    value = msg[name]
    if not isinstance(value, kind):
        raise RequestError(f"field {name!r} has the wrong type ({type(value).__name__})")
    return value


def read_pixels(ref: Any):
    """Open the .npy file a request points to as a read-only memory map."""
    import numpy as np

    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        raise RequestError("a pixel reference must be an object with a 'path' to a .npy file")
    path = ref["path"]
    if not os.path.isfile(path):
        raise RequestError(f"pixel file not found: {path}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise RequestError(f"cannot read pixel file {path}: {e}") from None


def write_pixels(ref: Any, array) -> dict:
    """Write a result array to the path a request asked for, atomically."""
    import numpy as np

    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        raise RequestError("an output reference must be an object with a 'path' for a .npy file")
    path = ref["path"]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
    return {"path": path, "shape": list(array.shape), "dtype": str(array.dtype)}


def _torch_summary() -> dict:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "devices": devices}


@request("ping")
def _ping(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    return {"pong": True, "pid": os.getpid()}


@request("info")
def _info(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    from ..version import __version__

    out: dict[str, Any] = {"pid": os.getpid(), "python": sys.executable, "core": __version__,
                           "requests": sorted(REQUESTS), **_torch_summary()}
    if state.stylizer is not None:
        s = state.stylizer
        out.update(model=state.model_path, styles=s.style_names, device=s.placement.describe())
    else:
        out.update(model=None, styles=[], device=None)
    return out


@request("load")
def _load(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    from ..inference.memory import reuse_freed_memory
    from ..inference.stylizer import Stylizer

    reuse_freed_memory()  # the worker stylizes frame after frame: keep freed pages (memory.py)
    path = os.path.abspath(_field(msg, "model", str))
    device = _field(msg, "device", str, "auto")
    precision = _field(msg, "precision", str, "auto")
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        mtime = None  # load_model reports the missing file with its own message
    key = (path, mtime, device, precision)
    cached = key == state.model_key and state.stylizer is not None
    if not cached:
        progress(0.0, "loading model")
        state.stylizer = None
        state.model_key = None
        _free_device_memory()
        state.stylizer = Stylizer(path, device=device, precision=precision)
        state.model_key = key
        state.model_path = path
    s = state.stylizer
    return {"model": path, "styles": s.style_names,
            "credits": [st.to_dict() for st in s.model.styles],
            "device": s.placement.describe(), "cached": cached}


@request("unload")
def _unload(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    state.stylizer = None
    state.model_key = None
    state.model_path = None
    _free_device_memory()
    return {}


def request_options(msg: dict) -> dict:
    """The Stylizer keyword options of a request, checked for type."""
    tile = msg.get("tile")
    if tile is not None and (not isinstance(tile, int) or isinstance(tile, bool)):
        raise RequestError("field 'tile' must be null or an integer")
    return {
        "colour_space": _field(msg, "colour_space", str, "srgb"),
        "premultiplied": bool(_field(msg, "premultiplied", bool, False)),
        "strength": float(_field(msg, "strength", (int, float), 1.0)),
        "preserve_color": bool(_field(msg, "preserve_color", bool, False)),
        "tile": tile,
        # Brush Size and Detail (core/inference/brush.py); the Stylizer checks their range.
        "brush_size": float(_field(msg, "brush_size", (int, float), 1.0)),
        "detail": float(_field(msg, "detail", (int, float), 0.0)),
    }


def request_weights(msg: dict) -> Any:
    weights = msg.get("weights")
    if weights is None or isinstance(weights, (dict, list)):
        return weights
    raise RequestError("field 'weights' must be an object name -> weight, a list, or null")


def request_mix(msg: dict) -> Any:
    """The request's weights, or StyleRegions when it carries
    ``"regions": {"coverage": {"path": H x W x K .npy}, "mixes": [K mixes],
    "strengths": [K numbers, optional], "method": "composite" | "blend"}``;
    the request's weights are the base mix where the regions leave room."""
    weights = request_weights(msg)
    regions = msg.get("regions")
    if regions is None:
        return weights
    if not isinstance(regions, dict):
        raise RequestError("field 'regions' must be an object with 'coverage' and 'mixes'")
    import numpy as np

    from ..inference.regions import METHODS, StyleRegions

    mixes = regions.get("mixes")
    if not isinstance(mixes, list) or not mixes or not all(isinstance(m, (dict, list)) for m in mixes):
        raise RequestError("field 'regions.mixes' must be a non-empty list of mixes (name -> weight)")
    strengths = regions.get("strengths")
    if strengths is not None and (not isinstance(strengths, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in strengths)):
        raise RequestError("field 'regions.strengths' must be a list of numbers")
    method = regions.get("method", "composite")
    if method not in METHODS:
        raise RequestError(f"field 'regions.method' must be one of {', '.join(METHODS)}")
    names = regions.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RequestError("field 'regions.names' must be a list of strings")
    coverage = np.asarray(read_pixels(regions.get("coverage")), dtype=np.float32)
    return StyleRegions(coverage, mixes, base=weights, strengths=strengths, method=method,
                        names=tuple(names))


@request("stylize")
def _stylize(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    import numpy as np

    stylizer = state.require_stylizer()
    image = read_pixels(msg.get("input"))
    options = request_options(msg)
    progress(0.0, f"stylizing {image.shape[1]} x {image.shape[0]}")
    out = stylizer.stylize(np.asarray(image, dtype=np.float32), request_mix(msg), **options)
    progress(1.0, "writing result")
    base = request_weights(msg)
    return {"output": write_pixels(msg.get("output"), out),
            "weights": None if base is None and msg.get("regions") else stylizer.mix_vector(base).tolist()}


def swatch_pattern(size: int):
    """A small colourful test picture: hues across, light to dark down, a disc."""
    import numpy as np

    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(1, size - 1)
    hue = x * 6.0
    rgb = np.stack([np.clip(np.abs(hue - 3.0) - 1.0, 0, 1),
                    np.clip(2.0 - np.abs(hue - 2.0), 0, 1),
                    np.clip(2.0 - np.abs(hue - 4.0), 0, 1)], axis=2)
    rgb = rgb * (1.0 - 0.6 * y[..., None]) + 0.25 * y[..., None]
    disc = ((x - 0.5) ** 2 + (y - 0.55) ** 2) < 0.06
    rgb[disc] = rgb[disc] * 0.3 + 0.7
    return np.clip(rgb, 0, 1).astype(np.float32)


@request("swatches")
def _swatches(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    """One small picture per style, made by the model itself, for the panel."""
    import numpy as np

    stylizer = state.require_stylizer()
    size = int(_field(msg, "size", int, 64))
    if not 16 <= size <= 512:
        raise RequestError(f"swatch size must be between 16 and 512, got {size}")
    pattern = swatch_pattern(size)
    names = stylizer.style_names
    outs = []
    for i, name in enumerate(names):
        progress(i / len(names), f"swatch {name}")
        outs.append(stylizer.stylize(pattern, {name: 1.0}, colour_space="srgb", tile=0))
    return {"styles": names, "output": write_pixels(msg.get("output"), np.stack(outs))}


@request("shutdown")
def _shutdown(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    state.stopping = True
    return {}


def _free_device_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing memory must never raise
        pass


# -- the loop ------------------------------------------------------------------

def _error_type(exc: BaseException) -> str:
    name = type(exc).__name__
    if name in ("OutOfMemoryError",) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()):
        return "OutOfMemory"
    if isinstance(exc, MemoryError):
        return "OutOfMemory"
    return name


def _error_message(exc: BaseException, kind: str) -> str:
    text = str(exc) or type(exc).__name__
    if kind == "OutOfMemory":
        first = text.strip().splitlines()[0] if text.strip() else "out of memory"
        return (f"out of memory on the device: {first}. Try a smaller tile size, the CPU device, "
                "or a smaller image; the worker freed its memory and is still running")
    return text


def handle(state: WorkerState, msg: dict, channel: Channel) -> dict:
    """Run one request; every failure becomes an error result."""
    req_id = msg.get("id")
    kind = msg.get("type")

    def progress(fraction: float, message: str = "") -> None:
        channel.send({"id": req_id, "type": "progress", "fraction": float(fraction), "message": message})

    handler = REQUESTS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        return {"id": req_id, "type": "result", "ok": False,
                "error": {"type": "RequestError",
                          "message": f"unknown request type {kind!r}; known: {', '.join(sorted(REQUESTS))}"}}
    try:
        body = handler(state, msg, progress)
        return {"id": req_id, "type": "result", "ok": True, **body}
    except Exception as exc:  # report everything; the worker keeps running
        etype = _error_type(exc)
        if etype == "OutOfMemory":
            _free_device_memory()
        return {"id": req_id, "type": "result", "ok": False,
                "error": {"type": etype, "message": _error_message(exc, etype),
                          "detail": traceback.format_exc(limit=8)}}


class Heartbeat:
    """While a request runs, says "still alive" every ``interval`` seconds
    ({"type": "heartbeat"}), so the parent can tell a long job from a frozen
    worker (the add-on kills a worker silent for its response timeout). Quiet
    between requests: nobody reads the pipe then, and it must not fill up."""

    def __init__(self, channel: Channel, interval: float):
        self.channel = channel
        self.interval = interval
        self.busy = threading.Event()
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="pastiche-heartbeat")
        if interval > 0:
            self._thread.start()

    def _beat(self) -> None:
        while not self.stopped.wait(self.interval):
            if self.busy.is_set():
                try:
                    self.channel.send({"type": "heartbeat"})
                except (OSError, ValueError):
                    return  # the parent is gone

    def stop(self) -> None:
        self.stopped.set()


def heartbeat_interval() -> float:
    """From PASTICHE_HEARTBEAT_S (the add-on sets it from its timeout); 0 turns it off."""
    try:
        return max(0.0, float(os.environ.get("PASTICHE_HEARTBEAT_S", "2")))
    except ValueError:
        return 2.0


def serve(channel: Channel) -> int:
    """Announce ourselves, then answer requests until shutdown or EOF."""
    import importlib

    extension_errors = []
    extra = filter(None, os.environ.get("PASTICHE_WORKER_EXTENSIONS", "").split(","))
    for name in [f"{__package__}.{n}" for n in EXTENSION_MODULES] + [n.strip() for n in extra]:
        try:
            importlib.import_module(name)
        except Exception as e:  # a broken extension must not take the basic requests down
            extension_errors.append(f"{name}: {type(e).__name__}: {e}")
            traceback.print_exc()
    heartbeat = Heartbeat(channel, heartbeat_interval())
    hello = {"type": "hello", "ok": True, "protocol": PROTOCOL_VERSION, "pid": os.getpid(),
             "python": sys.executable, "requests": sorted(REQUESTS),
             "extension_errors": extension_errors, "heartbeat": heartbeat.interval,
             "features": list(FEATURES), **_torch_summary()}
    channel.send(hello)
    state = WorkerState()
    try:
        while not state.stopping:
            try:
                msg = channel.receive()
            except ValueError as e:  # wire.ProtocolError or unreadable JSON
                channel.send({"id": None, "type": "result", "ok": False,
                              "error": {"type": "RequestError", "message": f"unreadable message: {e}"}})
                return 2  # the stream is out of step; the parent restarts us
            if msg is None:
                return 0  # parent closed the pipe (exited or stopped us)
            heartbeat.busy.set()
            try:
                result = handle(state, msg, channel)
            finally:
                heartbeat.busy.clear()
            channel.send(result)
    finally:
        heartbeat.stop()
    return 0

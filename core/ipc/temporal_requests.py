"""Worker requests for temporal mode: the previous frame's state lives here.

Loaded by the worker through EXTENSION_MODULES. The parent (the add-on's
render handler) sends, for every frame of an animation render, in order:

    {"type": "temporal_stylize", "frame": 12, "input": {"path": ...},
     "vector": {"path": ...}, "output": {"path": ...}, "weights": {...},
     "vector_rows": "top_down", ...Stylizer options...}

and, before the first frame it renders (every chunk of a render farm, and the
first frame of an unchunked render alike), the ``history`` frames before it
(1 by default: just the frame before), oldest first:

    {"type": "temporal_prime", "frame": 11, "input": ..., "vector": ..., "weights": ...}

Because the state is a function of those frames alone (core/temporal/coherence.py),
every chunk then yields the frames an unchunked render would. A temporal_stylize
whose frame does not follow the state's frame is refused rather than silently
stylized without its predecessor; ``"first": true`` starts without one (for
a frame that truly has no predecessor, e.g. a preview; renders should prime,
so that the first frame of a chunk and of a whole render are treated alike).
"""

from __future__ import annotations

from typing import Any

from .server import (
    ProgressFn,
    RequestError,
    WorkerState,
    _field,
    read_pixels,
    request,
    request_mix,
    request_options,
    write_pixels,
)

_KEY = "temporal"


class _Session:
    def __init__(self, temporal: Any, settings: tuple):
        self.temporal = temporal
        self.settings = settings
        self.frame: int | None = None  # the latest frame the state holds
        self.depth = 0                 # how many consecutive frames it has seen (up to history)
        self.rooted = False            # the run began at a frame with nothing before it

    def advanced(self, frame: int, fresh: bool, rooted: bool = False) -> None:
        consecutive = not fresh and self.frame is not None and frame == self.frame + 1
        self.depth = min(self.depth + 1, self.temporal.history) if consecutive else 1
        self.rooted = rooted or (consecutive and self.rooted)
        self.frame = frame

    def ready_for(self, frame: int) -> bool:
        return self.frame == frame - 1 and (self.rooted or self.depth >= self.temporal.history)


def _session(state: WorkerState, msg: dict) -> _Session:
    """The temporal stylizer for the loaded model and these settings (new if either changed)."""
    from ..temporal.coherence import (
        DEFAULT_BLEND,
        DEFAULT_HISTORY,
        DEFAULT_STATS_BLEND,
        TemporalStylizer,
    )

    stylizer = state.require_stylizer()
    settings = (id(stylizer),
                float(_field(msg, "blend", (int, float), DEFAULT_BLEND)),
                float(_field(msg, "stats_blend", (int, float), DEFAULT_STATS_BLEND)),
                bool(_field(msg, "preserve_contrast", bool, True)),
                _field(msg, "vector_rows", str, "top_down"),
                int(_field(msg, "history", int, DEFAULT_HISTORY)))
    current = state.extras.get(_KEY)
    if current is None or current.settings != settings:
        ts = TemporalStylizer(stylizer, blend=settings[1], stats_blend=settings[2],
                              preserve_contrast=settings[3], vector_rows=settings[4],
                              history=settings[5])
        current = state.extras[_KEY] = _Session(ts, settings)
    return current


def _frame_inputs(msg: dict):
    import numpy as np

    frame = _field(msg, "frame", int)
    image = np.asarray(read_pixels(msg.get("input")), dtype=np.float32)
    vector = np.asarray(read_pixels(msg.get("vector")), dtype=np.float32)
    return frame, image, vector


@request("temporal_prime")
def _temporal_prime(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    session = _session(state, msg)
    frame, image, vector = _frame_inputs(msg)
    options = request_options(msg)
    progress(0.0, f"priming temporal state from frame {frame}")
    first = bool(_field(msg, "first", bool, False))  # nothing before this frame exists
    fresh = first or session.frame is None or frame != session.frame + 1
    if fresh:
        session.temporal.reset()  # priming starts a new window
    session.temporal.prime(image, vector, request_mix(msg), colour_space=options["colour_space"],
                           premultiplied=options["premultiplied"], brush_size=options["brush_size"])
    session.advanced(frame, fresh, rooted=first)
    return {"frame": frame, "primed": session.depth, "history": session.temporal.history}


@request("temporal_stylize")
def _temporal_stylize(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    session = _session(state, msg)
    frame, image, vector = _frame_inputs(msg)
    first = bool(_field(msg, "first", bool, False))
    history = session.temporal.history
    if first:
        session.temporal.reset()  # the animation's very first frame: nothing before it
    elif not session.ready_for(frame):
        have = "no state" if session.frame is None else f"{session.depth} frame(s) up to {session.frame}"
        raise RequestError(f"temporal frame {frame} needs frames {frame - history} to {frame - 1} but the "
                           f"worker holds {have}: send 'temporal_prime' for each of them first")
    options = request_options(msg)
    options.pop("tile", None)  # temporal mode stylizes whole frames
    progress(0.0, f"stylizing frame {frame} (temporal)")
    out = session.temporal.step(image, vector, request_mix(msg), **options)
    session.advanced(frame, first, rooted=first)
    progress(1.0, "writing result")
    return {"output": write_pixels(msg.get("output"), out), "frame": frame,
            "blended_fraction": session.temporal.last_valid_fraction}


@request("temporal_check")
def _temporal_check(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    """Before a temporal render: can frames of this size be stylized whole?
    (Temporal mode does not tile; the check costs no network pass.)"""
    from ..inference.stylizer import Stylizer

    stylizer = state.require_stylizer()
    width, height = int(_field(msg, "width", int)), int(_field(msg, "height", int))
    if width <= 0 or height <= 0:
        raise RequestError(f"frame size must be positive, got {width} x {height}")
    if Stylizer.needs_tiling((height, width), None):
        raise RequestError(f"temporal mode stylizes whole frames; {width} x {height} is above the "
                           "untiled limit, render smaller or turn Temporal Coherence off")
    return {"width": width, "height": height, "styles": stylizer.style_names}


@request("temporal_reset")
def _temporal_reset(state: WorkerState, msg: dict, progress: ProgressFn) -> dict:
    state.extras.pop(_KEY, None)
    return {}

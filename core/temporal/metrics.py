"""Warping error: how much a sequence flickers, measured with the true motion.

For consecutive frames, warp frame t-1 along frame t's motion to frame t and
take the mean squared difference over the pixels that were visible in both
(Lai et al. 2018, "Learning blind video temporal consistency", with the
renderer's exact motion in place of estimated optical flow). Values are in
the frames' own units squared; for display RGB in [0, 1] a still sequence
scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ImageError
from .coherence import Motion, visible_in_previous, warp


def frame_warp_error(previous: np.ndarray, current: np.ndarray, motion: Motion,
                     previous_motion: Motion) -> tuple[float, int]:
    """(mean squared error over visible pixels and channels, number of those
    pixels) between ``current`` and ``previous`` warped by ``motion``. NaN
    when no pixel was visible in the previous frame."""
    if previous.shape != current.shape:
        raise ImageError(f"frames differ in shape: {previous.shape} vs {current.shape}")
    if current.shape[:2] != motion.shape:
        raise ImageError(f"motion is {motion.shape[1]} x {motion.shape[0]} but the frame is "
                         f"{current.shape[1]} x {current.shape[0]}")
    warped, _ = warp(previous.astype(np.float64), motion.to_prev)
    valid = visible_in_previous(motion, previous_motion)
    n = int(valid.sum())
    if n == 0:
        return math.nan, 0
    diff = current.astype(np.float64)[valid] - warped[valid]
    return float(np.mean(diff * diff)), n


@dataclass(frozen=True)
class WarpError:
    mean: float                # mean of the per-frame errors (frames with no visible pixel skipped)
    per_frame: list[float]     # error of frame t against t-1, for t = 1 .. T-1
    visible_fraction: float    # mean fraction of pixels that entered the measurement


def warp_error(frames: Sequence[np.ndarray], motions: Sequence[Motion]) -> WarpError:
    """Warping error of a whole sequence; ``motions[t]`` is frame t's motion."""
    if len(frames) != len(motions):
        raise ImageError(f"{len(frames)} frames but {len(motions)} motion fields")
    if len(frames) < 2:
        raise ImageError("the warping error needs at least two frames")
    per_frame: list[float] = []
    fractions: list[float] = []
    for t in range(1, len(frames)):
        err, n = frame_warp_error(frames[t - 1], frames[t], motions[t], motions[t - 1])
        per_frame.append(err)
        fractions.append(n / (frames[t].shape[0] * frames[t].shape[1]))
    finite = [e for e in per_frame if not math.isnan(e)]
    mean = float(np.mean(finite)) if finite else math.nan
    return WarpError(mean, per_frame, float(np.mean(fractions)))

"""Temporal coherence: Vector-pass convention, warping, the warping-error
metric on frames with known motion, static scenes and render-farm chunking.
Synthetic frames only (no bpy, no shared assets)."""

import math

import numpy as np
import pytest
import torch

from pastiche_core import ArgumentError, ImageError, Stylizer
from pastiche_core.model.network import NormStats
from pastiche_core.temporal.coherence import (
    Motion,
    TemporalStylizer,
    blend_stats,
    contrast_preserving_blend,
    mix_similarity,
    motion_from_vector_pass,
    visible_in_previous,
    warp,
)
from pastiche_core.temporal.metrics import frame_warp_error, warp_error

from .conftest import make_model, smooth_image

W = {"ink": 0.6, "cobalt": 0.4}


def vector_pass(to_prev: np.ndarray, to_next: np.ndarray) -> np.ndarray:
    """Motion in top-down array coordinates -> Blender's Vector pass as read
    from an EXR (y up): xy = previous position - here, zw = here - next."""
    return np.stack([to_prev[..., 0], -to_prev[..., 1], -to_next[..., 0], to_next[..., 1]],
                    axis=-1).astype(np.float32)


def texture(h, w, seed=0):
    """A detailed, smooth-ish world texture that makes misalignment visible."""
    big = smooth_image(h, w, seed=seed)
    r = np.random.default_rng(seed + 7)
    return np.clip(big + 0.25 * r.standard_normal(big.shape), 0, 1).astype(np.float32)


def moving_square_sequence(frames=6, size=40, square=12, speed=3, pan=2):
    """A square moving right on screen by ``speed`` px/frame over a
    background that scrolls left as the camera pans right by ``pan`` px/frame. Returns frames, their exact
    Motion and the Vector passes. Integer motion keeps the frames exact."""
    margin = pan * frames + 4
    world = texture(size, size + margin, seed=1)
    patch = texture(square, square, seed=2)
    images, motions = [], []
    for t in range(frames):
        cam = pan * t
        img = world[:, cam:cam + size].copy()
        x0 = 4 + speed * t
        img[14:14 + square, x0:x0 + square] = patch
        images.append(img)
        to_prev = np.zeros((size, size, 2), np.float32)
        to_next = np.zeros((size, size, 2), np.float32)
        # Background: moves left on screen as the camera pans right.
        to_prev[..., 0] = pan
        to_next[..., 0] = -pan
        to_prev[14:14 + square, x0:x0 + square, 0] = -speed
        to_next[14:14 + square, x0:x0 + square, 0] = speed
        motions.append(Motion(to_prev, to_next))
    vectors = [vector_pass(m.to_prev, m.to_next) for m in motions]
    return images, motions, vectors


# -- the Vector pass -----------------------------------------------------------

def test_vector_pass_convention_matches_a_blender_render():
    # Observed in a Cycles render (bpy 5.0.1, EXR read top-down): a quad moving
    # +2.5 px right and 5 px up per frame has Vector = (-2.5, -5, -2.5, -5).
    v = np.tile(np.array([-2.5, -5.0, -2.5, -5.0], np.float32), (3, 4, 1))
    m = motion_from_vector_pass(v, "top_down")
    np.testing.assert_array_equal(m.to_prev[0, 0], [-2.5, 5.0])   # was left and lower (larger row)
    np.testing.assert_array_equal(m.to_next[0, 0], [2.5, -5.0])   # will be right and higher
    b = motion_from_vector_pass(v, "bottom_up")                     # rows bottom-up: up is +row
    np.testing.assert_array_equal(b.to_prev[0, 0], [-2.5, -5.0])
    np.testing.assert_array_equal(b.to_next[0, 0], [2.5, 5.0])


def test_bad_vector_passes_are_refused_with_clear_errors():
    with pytest.raises(ImageError, match="H x W x 4"):
        motion_from_vector_pass(np.zeros((4, 4, 2), np.float32))
    bad = np.zeros((4, 4, 4), np.float32)
    bad[1, 1, 2] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        motion_from_vector_pass(bad)
    with pytest.raises(ImageError, match="row order"):
        motion_from_vector_pass(np.zeros((4, 4, 4), np.float32), "sideways")


# -- warping and visibility ----------------------------------------------------

def test_warp_with_zero_motion_is_bit_exact_and_integer_motion_shifts():
    img = texture(9, 11)
    same, inside = warp(img, np.zeros((9, 11, 2), np.float32))
    assert np.array_equal(same, img) and inside.all()
    off = np.zeros((9, 11, 2), np.float32)
    off[..., 0] = 2      # sample two columns to the right
    off[..., 1] = -1     # and one row up
    out, inside = warp(img, off)
    np.testing.assert_array_equal(out[1:, :-2], img[:-1, 2:])
    assert not inside[0].any() and not inside[:, -2:].any() and inside[1:, :-2].all()


def test_fast_warp_agrees_with_the_exact_one_and_keeps_still_pixels_exact():
    from pastiche_core.temporal.coherence import _warp_t

    img = torch.from_numpy(texture(30, 40))
    off = torch.from_numpy(np.random.default_rng(2).normal(0, 2, (30, 40, 2)).astype(np.float32))
    off[:10] = 0.0  # a still region
    exact, inside = _warp_t(img, off)
    fast, inside_fast = _warp_t(img, off, exact=False)
    assert torch.equal(inside, inside_fast)
    assert (fast - exact)[inside].abs().max() < 1e-3
    assert torch.equal(fast[:10], img[:10])


def test_warp_interpolates_linearly_between_pixels():
    ramp = np.tile(np.arange(8, dtype=np.float32)[None, :, None], (3, 1, 1))  # value = column
    off = np.full((3, 8, 2), 0.0, np.float32)
    off[..., 0] = 0.25
    out, _ = warp(ramp, off)
    np.testing.assert_allclose(out[:, :-1, 0], np.tile(np.arange(7) + 0.25, (3, 1)), atol=1e-6)


def test_disoccluded_pixels_are_not_visible_in_the_previous_frame():
    _, motions, _ = moving_square_sequence(frames=2, pan=0, speed=3)
    visible = visible_in_previous(motions[1], motions[0])
    expected = np.ones((40, 40), bool)
    expected[14:26, 4:7] = False  # uncovered when the square left columns 4..6
    np.testing.assert_array_equal(visible, expected)


def test_pixels_entering_the_frame_are_not_visible_in_the_previous_frame():
    _, motions, _ = moving_square_sequence(frames=2, pan=2, speed=2)  # square still on screen
    visible = visible_in_previous(motions[1], motions[0])
    assert not visible[:, -2:].any()      # new on the right edge
    assert visible[:14, :-2].all() and visible[26:, :-2].all()  # away from the square's rows
    assert not visible[14:26, 2:6].any()  # background the square (screen +2) and pan (-2) reveal


# -- the metric -----------------------------------------------------------------

def test_warping_error_is_zero_for_frames_that_follow_their_motion():
    images, motions, _ = moving_square_sequence()
    result = warp_error(images, motions)
    assert result.mean == 0.0 and len(result.per_frame) == len(images) - 1
    assert 0.8 < result.visible_fraction < 1.0


def test_warping_error_measures_independent_noise_as_twice_its_variance():
    images, motions, _ = moving_square_sequence(frames=8, size=64)
    r = np.random.default_rng(5)
    sigma = 0.05
    noisy = [im + sigma * r.standard_normal(im.shape).astype(np.float32) for im in images]
    assert warp_error(noisy, motions).mean == pytest.approx(2 * sigma**2, rel=0.08)


def test_warping_error_of_a_known_difference_and_of_wrong_motion():
    images, motions, _ = moving_square_sequence(frames=2)
    brighter = images[1] + 0.1
    err, n = frame_warp_error(images[0], brighter, motions[1], motions[0])
    assert err == pytest.approx(0.01, rel=1e-6)
    assert n == int(visible_in_previous(motions[1], motions[0]).sum())
    # The same frames judged with the motion's sign flipped (the classic bug) are far off.
    flipped = [Motion(-m.to_prev, -m.to_next) for m in motions]
    assert frame_warp_error(images[0], images[1], flipped[1], flipped[0])[0] > 0.01
    # No motion at all (per-frame comparison) also misses: the camera pans.
    still = [Motion.still(40, 40)] * 2
    assert frame_warp_error(images[0], images[1], still[1], still[0])[0] > 0.01


def test_warping_error_rejects_mismatched_input():
    images, motions, _ = moving_square_sequence(frames=2)
    with pytest.raises(ImageError, match="motion fields"):
        warp_error(images, motions[:1])
    with pytest.raises(ImageError, match="two frames"):
        warp_error(images[:1], motions[:1])
    # Every pixel "came from" far outside the previous frame: nothing to compare.
    gone = Motion(np.full((40, 40, 2), 100, np.float32), np.zeros((40, 40, 2), np.float32))
    assert math.isnan(frame_warp_error(images[0], images[1], gone, motions[0])[0])


# -- blending ----------------------------------------------------------------------

def test_contrast_preserving_blend_is_exact_for_equal_inputs():
    a = texture(24, 24)
    w = np.full((24, 24, 1), 0.5, np.float32)
    assert np.array_equal(contrast_preserving_blend(a, a.copy(), w), a)
    assert np.array_equal(contrast_preserving_blend(a, texture(24, 24, 5), np.zeros_like(w)), a)


def test_contrast_preserving_blend_keeps_the_contrast_of_unrelated_textures():
    r = np.random.default_rng(0)
    a = (0.5 + 0.1 * r.standard_normal((64, 64, 3))).astype(np.float32)
    b = (0.5 + 0.1 * r.standard_normal((64, 64, 3))).astype(np.float32)
    w = np.full((64, 64, 1), 0.5, np.float32)
    plain = a + w * (b - a)
    kept = contrast_preserving_blend(a, b, w)
    assert plain.std() == pytest.approx(0.1 / np.sqrt(2), rel=0.05)   # averaging loses contrast
    assert kept.std() == pytest.approx(0.1, rel=0.1)                   # the blend puts it back
    assert abs(kept.mean() - 0.5) < 0.01


# -- instance-norm statistics ---------------------------------------------------------

def test_blending_statistics_is_exact_for_equal_inputs_and_interpolates():
    a = NormStats([(torch.full((1, 2, 1, 1), 1.0), torch.full((1, 2, 1, 1), 4.0))])
    b = NormStats([(torch.full((1, 2, 1, 1), 3.0), torch.full((1, 2, 1, 1), 2.0))])
    same = blend_stats(a, a, 0.37)
    assert torch.equal(same.recorded[0][0], a.recorded[0][0])
    half = blend_stats(a, b, 0.5)
    assert torch.allclose(half.recorded[0][0], torch.tensor(2.0))
    assert torch.allclose(half.recorded[0][1], torch.tensor(3.0))
    assert torch.equal(blend_stats(a, b, 1.0).recorded[0][1], b.recorded[0][1])


# -- the temporal stylizer ------------------------------------------------------------------

@pytest.fixture
def stylizer():
    return Stylizer(make_model(), device="cpu")


def test_first_frame_is_the_per_frame_stylization(stylizer):
    images, _, vectors = moving_square_sequence(frames=1)
    ts = TemporalStylizer(stylizer)
    np.testing.assert_allclose(ts.step(images[0], vectors[0], W), stylizer.stylize(images[0], W),
                               atol=1e-6)


@pytest.mark.parametrize("settings", [{}, {"stats_blend": 0.5}, {"history": 3}])
def test_static_scene_gives_identical_frames(stylizer, settings):
    frame = smooth_image(36, 44, channels=4)
    still = np.zeros((36, 44, 4), np.float32)
    ts = TemporalStylizer(stylizer, **settings)
    outs = [ts.step(frame, still, W, colour_space="linear", premultiplied=True) for _ in range(4)]
    for out in outs[1:]:
        assert np.array_equal(out, outs[0])
    assert ts.last_valid_fraction == 1.0  # the previous frame really was blended in
    np.testing.assert_allclose(outs[0], stylizer.stylize(frame, W, colour_space="linear",
                                                         premultiplied=True), atol=1e-6)


def run(ts, images, vectors, start, end):
    for t in range(max(0, start - ts.history), start):
        ts.prime(images[t], vectors[t], W)
    return [ts.step(images[t], vectors[t], W) for t in range(start, end)]


@pytest.mark.parametrize("settings", [{}, {"stats_blend": 0.5}, {"history": 2}])
def test_chunked_and_unchunked_renders_give_the_same_frames(stylizer, settings):
    images, _, vectors = moving_square_sequence(frames=7)
    full = run(TemporalStylizer(stylizer, **settings), images, vectors, 0, 7)
    for splits in [(0, 3, 7), (0, 1, 4, 5, 7)]:
        chunked = []
        for s, e in zip(splits[:-1], splits[1:], strict=True):
            # A fresh worker per chunk, as on a render farm.
            chunked += run(TemporalStylizer(stylizer, **settings), images, vectors, s, e)
        for t, (a, b) in enumerate(zip(full, chunked, strict=True)):
            assert np.array_equal(a, b), f"frame {t} differs with chunks {splits}"
    # ...and temporal mode really changed those frames.
    per_frame = [stylizer.stylize(im, W) for im in images]
    assert np.abs(full[3] - per_frame[3]).mean() > 1e-3


def test_a_longer_history_needs_as_many_primed_frames(stylizer):
    images, _, vectors = moving_square_sequence(frames=6)
    full = run(TemporalStylizer(stylizer, history=2), images, vectors, 0, 6)
    short = TemporalStylizer(stylizer, history=2)
    short.prime(images[2], vectors[2], W)  # one frame where two are needed
    assert not np.array_equal(short.step(images[3], vectors[3], W), full[3])


def test_temporal_mode_lowers_the_warping_error_on_a_moving_scene(stylizer):
    images, motions, vectors = moving_square_sequence(frames=8)
    r = np.random.default_rng(3)
    # Render noise that changes every frame, like a low-sample path tracer.
    noisy = [np.clip(im + 0.08 * r.standard_normal(im.shape), 0, 1).astype(np.float32) for im in images]
    per_frame = [stylizer.stylize(im, W) for im in noisy]
    ts = TemporalStylizer(stylizer)
    temporal = [ts.step(im, v, W) for im, v in zip(noisy, vectors, strict=True)]
    e_pf = warp_error(per_frame, motions).mean
    e_t = warp_error(temporal, motions).mean
    assert e_t < 0.6 * e_pf


def test_a_cut_or_a_new_size_starts_afresh(stylizer):
    a = texture(32, 32, seed=1)
    b = texture(40, 40, seed=2)
    ts = TemporalStylizer(stylizer)
    ts.step(a, np.zeros((32, 32, 4), np.float32), W)
    np.testing.assert_allclose(ts.step(b, np.zeros((40, 40, 4), np.float32), W),
                               stylizer.stylize(b, W), atol=1e-6)
    # Everything "moved" off-screen: nothing visible in the previous frame, so it is a cut.
    far = np.zeros((40, 40, 4), np.float32)
    far[..., 0] = 500
    c = texture(40, 40, seed=3)
    np.testing.assert_allclose(ts.step(c, far, W), stylizer.stylize(c, W), atol=1e-6)
    assert ts.last_valid_fraction == 0.0


def test_temporal_stylizer_rejects_bad_settings_and_mismatched_vectors(stylizer):
    with pytest.raises(ImageError, match="blend"):
        TemporalStylizer(stylizer, blend=1.5)
    with pytest.raises(ImageError, match="history"):
        TemporalStylizer(stylizer, history=0)
    ts = TemporalStylizer(stylizer)
    with pytest.raises(ImageError, match="Vector pass is 8 x 8"):
        ts.step(texture(16, 16), np.zeros((8, 8, 4), np.float32), W)
    with pytest.raises(ArgumentError, match="strength"):
        ts.step(texture(16, 16), np.zeros((16, 16, 4), np.float32), W, strength=2.0)


# -- the worker requests (handlers called directly, as the worker loop does) -------------

def _worker_frames(tmp_path, images, vectors):
    refs = []
    for t, (im, v) in enumerate(zip(images, vectors, strict=True)):
        np.save(tmp_path / f"in{t}.npy", im)
        np.save(tmp_path / f"vec{t}.npy", v)
        refs.append(({"path": str(tmp_path / f"in{t}.npy")}, {"path": str(tmp_path / f"vec{t}.npy")}))
    return refs


@pytest.mark.parametrize("history", [1, 2])
def test_worker_requests_keep_state_and_give_chunk_independent_frames(tmp_path, stylizer, history):
    from pastiche_core.ipc import temporal_requests  # noqa: F401  (registers the requests)
    from pastiche_core.ipc.server import REQUESTS, RequestError, WorkerState

    images, _, vectors = moving_square_sequence(frames=5)
    refs = _worker_frames(tmp_path, images, vectors)
    common = {"weights": W, "vector_rows": "top_down", "history": history}
    quiet = lambda *a: None  # noqa: E731

    def frame_msg(t, tag):
        return {"frame": t, "input": refs[t][0], "vector": refs[t][1], "first": t == 0,
                "output": {"path": str(tmp_path / f"out{tag}{t}.npy")}, **common}

    def render(start, end, tag, primed=history):
        state = WorkerState()  # a fresh worker per chunk
        state.stylizer = stylizer
        for t in range(max(0, start - primed), start):
            REQUESTS["temporal_prime"](state, frame_msg(t, tag), quiet)
        outs = []
        for t in range(start, end):
            REQUESTS["temporal_stylize"](state, frame_msg(t, tag), quiet)
            outs.append(np.load(tmp_path / f"out{tag}{t}.npy"))
        return outs, state

    full, state = render(0, 5, "a")
    chunked = render(0, 2, "b")[0] + render(2, 5, "c")[0]
    for a, b in zip(full, chunked, strict=True):
        assert np.array_equal(a, b)
    direct = TemporalStylizer(stylizer, history=history)
    for t in range(5):
        assert np.array_equal(full[t], direct.step(images[t], vectors[t], W))
    # A frame that does not follow the held state is refused, not stylized without it...
    with pytest.raises(RequestError, match="temporal_prime"):
        REQUESTS["temporal_stylize"](state, {**frame_msg(0, "x"), "frame": 9, "first": False}, quiet)
    # ...and so is one primed with fewer frames than the history needs.
    if history > 1:
        with pytest.raises(RequestError, match="needs frames 1 to 2"):
            render(3, 4, "d", primed=1)


def test_a_keyed_style_switch_is_followed_at_once_not_dragged(stylizer):
    """Keys that switch the mix (ink -> cobalt) on a still scene: the frame after
    the switch is the new mix's own stylization, not half the old style (#13).
    A small mix change between frames still blends."""
    frame = texture(32, 32, seed=4)
    still = np.zeros((32, 32, 4), np.float32)
    ink, cobalt = {"ink": 1.0, "cobalt": 0.0}, {"ink": 0.0, "cobalt": 1.0}
    for history in (1, 3):
        ts = TemporalStylizer(stylizer, history=history, stats_blend=0.5)
        for _ in range(3):
            ts.step(frame, still, ink)
        np.testing.assert_allclose(ts.step(frame, still, cobalt), stylizer.stylize(frame, cobalt), atol=1e-6)
    ts = TemporalStylizer(stylizer)
    ts.step(frame, still, ink)
    near = {"ink": 0.9, "cobalt": 0.1}
    out = ts.step(frame, still, near)
    own, old = stylizer.stylize(frame, near), stylizer.stylize(frame, ink)
    assert np.abs(out - own).mean() > 0.05 * np.abs(old - own).mean()  # still blended with the frame before
    assert mix_similarity(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.9, 0.1]])) == pytest.approx(0.8)

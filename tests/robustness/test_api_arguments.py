"""Bad Python API arguments raise a PasticheError naming the argument, never a raw TypeError."""

from __future__ import annotations

import numpy as np
import pytest

from pastiche_core import ArgumentError, PasticheError, Stylizer, WeightsError
from pastiche_core.temporal.coherence import TemporalStylizer

from ..model_factory import randomized_model

IMG = np.random.default_rng(0).random((20, 24, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def stylizer():
    return Stylizer(randomized_model(("a", "b")), device="cpu")


@pytest.mark.parametrize("weights, message", [
    ("abc", "weights must be a mapping"),
    (0.5, "weights must be a mapping"),
    (["x", "y"], "must be numbers"),
    ({"a": "abc"}, "not a number"),
    ({"a": None}, "not a number"),
])
def test_bad_weights(stylizer, weights, message):
    with pytest.raises(WeightsError, match=message):
        stylizer.stylize(IMG, weights)


@pytest.mark.parametrize("options, message", [
    ({"strength": None}, "strength must be a number"),
    ({"strength": "abc"}, "strength must be a number"),
    ({"strength": float("nan")}, "strength must be finite"),
    ({"strength": 2}, "strength must be between 0 and 1"),
    ({"tile": 32}, "tile size must be 0"),
    ({"tile": "big"}, "tile must be a whole number"),
    ({"premultiplied": "yes"}, "premultiplied must be True or False"),
    ({"colour_space": "rec2020"}, "unknown colour space"),
])
def test_bad_options(stylizer, options, message):
    with pytest.raises(ArgumentError, match=message):
        stylizer.stylize(IMG, {"a": 1}, **options)


@pytest.mark.parametrize("batch_size", [0, -2, 1.0, None])
def test_bad_batch_size(stylizer, batch_size):
    with pytest.raises(ArgumentError, match="batch_size"):
        stylizer.stylize_batch([IMG], {"a": 1}, batch_size=batch_size)


def test_a_bare_array_is_not_taken_for_a_list_of_frames(stylizer):
    with pytest.raises(ArgumentError, match="list of arrays"):
        stylizer.stylize_batch(IMG, {"a": 1})


def test_temporal_step_checks_arguments_the_same_way(stylizer):
    t = TemporalStylizer(stylizer)
    vector = np.zeros((20, 24, 4), dtype=np.float32)
    with pytest.raises(ArgumentError, match="strength must be a number"):
        t.step(IMG, vector, {"a": 1}, strength="abc")  # type: ignore[arg-type]


def test_every_error_is_a_pastiche_error_and_valid_calls_still_work(stylizer):
    assert issubclass(ArgumentError, PasticheError) and issubclass(WeightsError, PasticheError)
    out = stylizer.stylize(IMG, [1, 0], strength=1, tile=0)
    assert out.shape == IMG.shape and np.isfinite(out).all()

import numpy as np
import pytest
import torch

from pastiche_core import Stylizer, WeightsError
from pastiche_core.inference.mixing import normalize_weight_map, normalize_weights, parse_style_args

from .conftest import make_model, smooth_image

NAMES = ["ink", "ochre", "cobalt"]


def test_weights_are_normalized_from_mapping_and_sequence():
    np.testing.assert_allclose(normalize_weights({"ink": 2, "cobalt": 6}, NAMES), [0.25, 0, 0.75])
    np.testing.assert_allclose(normalize_weights([1, 1, 2], NAMES), [0.25, 0.25, 0.5])


@pytest.mark.parametrize("bad, message", [
    ({"ink": -1, "ochre": 2}, "non-negative"),
    ({"ink": float("nan")}, "finite"),
    ({"ink": float("inf")}, "finite"),
    ({"ink": 0, "ochre": 0}, "sum to zero"),
    ({"umber": 1}, "unknown style"),
    ([1, 2], "2 weights for a model with 3"),
    ({"ink": "lots"}, "not a number"),
])
def test_invalid_weights_are_rejected_with_a_clear_message(bad, message):
    with pytest.raises(WeightsError, match=message):
        normalize_weights(bad, NAMES)


def test_a_misspelt_style_gets_the_closest_name_suggested():
    with pytest.raises(WeightsError, match=r"unknown style\(s\) 'coballt' \(did you mean 'cobalt'\?\)"):
        normalize_weights({"coballt": 1}, NAMES)
    with pytest.raises(WeightsError) as nothing_close:
        normalize_weights({"umber": 1}, NAMES)
    assert "did you mean" not in str(nothing_close.value)


def test_parse_style_args():
    assert parse_style_args(["ink=0.3", "ochre"]) == {"ink": 0.3, "ochre": 1.0}
    with pytest.raises(WeightsError, match="not a number"):
        parse_style_args(["ink=abc"])


def test_one_hot_mix_reproduces_the_single_style_exactly(model):
    """A one-hot mix must give bit-for-bit the style's own gamma/beta."""
    x = torch.rand(1, 3, 32, 32)
    net = model.network
    for i in range(3):
        one_hot = torch.zeros(1, 3)
        one_hot[0, i] = 1.0
        mixed = net(x, one_hot)
        # Reference: a one-style network holding only style i's rows.
        single = make_model(["solo"])
        single.network.load_state_dict({
            k: (v[i:i + 1] if k.endswith(("gamma", "beta")) else v) for k, v in net.state_dict().items()
        })
        torch.testing.assert_close(mixed, single.network(x, torch.ones(1, 1)), rtol=0, atol=0)


def test_permuting_styles_and_weights_gives_the_same_image():
    img = smooth_image(40, 48)
    model = make_model()
    perm = [2, 0, 1]
    permuted = make_model([NAMES[p] for p in perm])
    state = model.network.state_dict()
    permuted.network.load_state_dict({
        k: (v[perm] if k.endswith(("gamma", "beta")) else v) for k, v in state.items()
    })
    w = {"ink": 0.2, "ochre": 0.5, "cobalt": 0.3}
    a = Stylizer(model, device="cpu").stylize(img, w)
    b = Stylizer(permuted, device="cpu").stylize(img, w)
    # Equal up to float summation order in the weighted sums.
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_weights_are_normalized_before_mixing(model):
    img = smooth_image(32, 32)
    s = Stylizer(model, device="cpu")
    np.testing.assert_allclose(s.stylize(img, [2, 4, 2]), s.stylize(img, [0.25, 0.5, 0.25]), atol=1e-6)


def test_constant_weight_map_equals_the_global_mix(model):
    img = smooth_image(36, 44)
    s = Stylizer(model, device="cpu")
    w = np.array([0.1, 0.6, 0.3], dtype=np.float32)
    wmap = np.broadcast_to(w * 5, (36, 44, 3)).copy()  # unnormalized on purpose
    np.testing.assert_allclose(s.stylize(img, wmap), s.stylize(img, w), atol=1e-5)


def test_weight_map_mixes_regions_differently(model):
    img = smooth_image(32, 64)
    s = Stylizer(model, device="cpu")
    wmap = np.zeros((32, 64, 3), dtype=np.float32)
    wmap[:, :32, 0] = 1
    wmap[:, 32:, 2] = 1
    out = s.stylize(img, wmap)
    left, right = s.stylize(img, [1, 0, 0]), s.stylize(img, [0, 0, 1])
    # Far from the boundary each half looks like its own style.
    assert np.abs(out[:, :8] - left[:, :8]).mean() < np.abs(out[:, :8] - right[:, :8]).mean()
    assert np.abs(out[:, -8:] - right[:, -8:]).mean() < np.abs(out[:, -8:] - left[:, -8:]).mean()


def test_bad_weight_maps_are_rejected():
    with pytest.raises(WeightsError, match="H x W x 3"):
        normalize_weight_map(np.ones((4, 4, 2)), 3)
    zero = np.ones((4, 4, 3))
    zero[1, 1] = 0
    with pytest.raises(WeightsError, match="1 pixel"):
        normalize_weight_map(zero, 3)
    neg = np.ones((4, 4, 3))
    neg[0, 0, 0] = -1
    with pytest.raises(WeightsError, match="negative"):
        normalize_weight_map(neg, 3)

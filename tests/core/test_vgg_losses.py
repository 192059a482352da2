"""The VGG loss network (file checks, conventions, pruning) and the loss terms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pastiche_core.perceptual.losses import (
    LossConfig,
    PerceptualLoss,
    gram,
    relative_distance,
    total_variation,
)
from pastiche_core.perceptual.vgg import (
    LAYER_INDEX,
    VGGWeightsError,
    convention_from_metadata,
    load_vgg,
    read_vgg_file,
    write_random_vgg,
)
from tests.core.training_testlib import run_cli, tiny_vgg


def test_layer_names_match_torchvision_vgg19_positions() -> None:
    # The positions the shared VGG file's manifest lists for vgg19().features.
    expected = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_4": 17,
                "relu4_1": 20, "relu4_2": 22, "relu4_4": 26, "relu5_1": 29}
    assert {k: LAYER_INDEX[k] for k in expected} == expected


def test_convention_is_read_from_metadata() -> None:
    shared_style = {"input": "BGR channel order, values 0-255, minus mean [103.939, 116.779, 123.68] (Caffe convention)"}
    assert convention_from_metadata(shared_style) == "caffe"
    assert convention_from_metadata({"convention": "torchvision"}) == "torchvision"
    assert convention_from_metadata({"input": "RGB, mean/std normalized (torchvision)"}) == "torchvision"
    assert convention_from_metadata({}) is None


def test_only_needed_layers_are_kept_and_frozen(tmp_path: Path) -> None:
    path = write_random_vgg(tmp_path / "v.safetensors", "relu3_1", width_scale=0.125)
    vgg = load_vgg(path, ["relu1_1", "relu2_1"])
    assert len(vgg.features) == LAYER_INDEX["relu2_1"] + 1
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    out = vgg(torch.rand(1, 3, 16, 16))
    assert set(out) == {"relu1_1", "relu2_1"}
    assert out["relu2_1"].shape == (1, 16, 8, 8)


def test_features_equal_a_hand_built_vgg_in_each_convention(tmp_path: Path) -> None:
    for convention in ("caffe", "torchvision"):
        path = write_random_vgg(tmp_path / f"{convention}.safetensors", "relu2_1", width_scale=0.125,
                                convention=convention)
        state, _ = read_vgg_file(path, "relu2_1")
        x = torch.rand(2, 3, 12, 12)
        if convention == "caffe":
            z = x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
        else:
            z = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
                [0.229, 0.224, 0.225]).view(1, 3, 1, 1)

        def conv(t: torch.Tensor, i: int, state: dict = state) -> torch.Tensor:
            return F.relu(F.conv2d(t, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))

        r11 = conv(z, 0)
        r21 = conv(F.max_pool2d(conv(r11, 2), 2), 5)
        got = load_vgg(path, ["relu1_1", "relu2_1"])(x)
        torch.testing.assert_close(got["relu1_1"], r11, rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(got["relu2_1"], r21, rtol=1e-5, atol=1e-3)


def test_bad_vgg_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    shallow = tiny_vgg(tmp_path, "relu1_2")
    with pytest.raises(VGGWeightsError, match=r"up to conv1_2 but the losses need relu2_1"):
        load_vgg(shallow, ["relu2_1"])
    with pytest.raises(VGGWeightsError, match="convention"):
        load_vgg(tiny_vgg(tmp_path, convention=None), ["relu1_1"])
    # An explicit convention makes a metadata-less file usable...
    assert load_vgg(tiny_vgg(tmp_path, convention=None), ["relu1_1"], "torchvision").convention == "torchvision"
    # ...but may not contradict the file's own declaration.
    with pytest.raises(VGGWeightsError, match="declares the caffe"):
        load_vgg(tiny_vgg(tmp_path), ["relu1_1"], "torchvision")
    vgg16_like = tmp_path / "vgg16.safetensors"
    save_file({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64),
               "features.17.weight": torch.zeros(512, 256, 3, 3), "features.17.bias": torch.zeros(512)},
              str(vgg16_like), metadata={"convention": "caffe"})
    with pytest.raises(VGGWeightsError, match="VGG-16"):
        load_vgg(vgg16_like, ["relu1_1"])
    broken_chain = tmp_path / "chain.safetensors"
    save_file({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8),
               "features.2.weight": torch.zeros(8, 5, 3, 3), "features.2.bias": torch.zeros(8)},
              str(broken_chain), metadata={"convention": "caffe"})
    with pytest.raises(VGGWeightsError, match="does not match VGG-19"):
        load_vgg(broken_chain, ["relu1_2"])
    pickle_like = tmp_path / "vgg19.pth"
    pickle_like.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(VGGWeightsError, match="never pickles"):
        load_vgg(pickle_like, ["relu1_1"])
    with pytest.raises(VGGWeightsError, match="unknown loss layer"):
        load_vgg(shallow, ["conv9_9"])


def test_gram_is_normalized_by_size() -> None:
    f = torch.ones(1, 2, 3, 4)
    g = gram(f)
    assert torch.allclose(g, torch.full((1, 2, 2), 12 / 24))
    f2 = torch.ones(1, 2, 6, 8)  # same statistics, 4x the pixels: same Gram
    assert torch.allclose(gram(f2), g)


def test_relative_distance_and_tv() -> None:
    t = torch.rand(3, 4, 5)
    assert torch.all(relative_distance(t, t) == 0)
    assert torch.allclose(relative_distance(torch.zeros_like(t), t), torch.ones(3), atol=1e-6)
    # Scale invariance: the loss means the same whatever the feature scale (both VGG conventions).
    x = torch.rand(3, 4, 5)
    torch.testing.assert_close(relative_distance(50 * x, 50 * t), relative_distance(x, t))
    flat = torch.full((2, 3, 8, 8), 0.5)
    assert torch.all(total_variation(flat) == 0)
    stripes = flat.clone()
    stripes[..., ::2] = 0
    assert torch.all(total_variation(stripes) > 0)


def test_style_terms_follow_indices_mixes_and_coefficients(tmp_path: Path) -> None:
    cfg = LossConfig(content_layer="relu2_1", style_layers=("relu1_1", "relu2_1"), tv_weight=0.0)
    loss = PerceptualLoss(load_vgg(tiny_vgg(tmp_path), cfg.layers), cfg)
    styles = [torch.rand(1, 3, 24, 24), torch.rand(1, 3, 20, 28) * 0.5]
    grams = loss.style_grams(styles)
    assert grams["relu1_1"].shape == (2, 8, 8)
    x, c = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    by_index = loss(x, c, grams, torch.tensor([0, 1]))
    by_mix = loss(x, c, grams, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(by_index.style, by_mix.style)
    scaled = loss(x, c, grams, torch.tensor([0, 1]), coefficients=torch.tensor([2.0, 0.5]))
    torch.testing.assert_close(scaled.style, by_index.style * torch.tensor([2.0, 0.5]))
    # A picture's own Gram is a perfect style match; its own features a perfect content match.
    own = loss(styles[0], styles[0], loss.style_grams([styles[0]]), torch.tensor([0]))
    assert float(own.style[0]) < 1e-10 and float(own.content[0]) == 0


def test_loss_config_rejects_bad_values() -> None:
    with pytest.raises(Exception, match="style layer"):
        LossConfig(style_layers=())
    with pytest.raises(Exception, match="style weight"):
        LossConfig(style_weight=-1)
    with pytest.raises(Exception, match="unknown loss layer"):
        LossConfig(content_layer="relu9_1")
    assert LossConfig.from_dict(LossConfig().to_dict()) == LossConfig()


def test_convert_vgg_from_a_torch_state_dict(tmp_path: Path) -> None:
    state = {"features.0.weight": torch.randn(4, 3, 3, 3), "features.0.bias": torch.randn(4),
             "features.2.weight": torch.randn(4, 4, 3, 3), "features.2.bias": torch.randn(4),
             "classifier.0.weight": torch.randn(2, 2)}
    torch.save(state, tmp_path / "vgg19.pth")  # the user's one-time input; Pastiche reads it weights-only
    out = tmp_path / "vgg.safetensors"
    assert run_cli(["convert-vgg", str(tmp_path / "vgg19.pth"), "--out", str(out)]) == 0
    vgg = load_vgg(out, ["relu1_2"])
    assert vgg.convention == "torchvision"
    assert torch.equal(vgg.features[2].weight, state["features.2.weight"])
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(VGGWeightsError, match="cannot read junk.pth"):
        run_cli(["convert-vgg", str(tmp_path / "junk.pth"), "--out", str(out)])
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(VGGWeightsError, match="no 'features.N' tensors"):
        run_cli(["convert-vgg", str(tmp_path / "other.pth"), "--out", str(out)])

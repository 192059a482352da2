"""add-style: only the new gamma/beta rows are learned; old styles stay bit-identical."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pastiche_core import PasticheError, Stylizer, load_model, save_model
from pastiche_core.errors import ImageError
from pastiche_core.perceptual.losses import PerceptualLoss
from pastiche_core.perceptual.vgg import load_vgg
from pastiche_core.training.add_style import AddStyleConfig, add_style, one_style_network
from pastiche_core.training.data import ContentCrops, CropSettings, list_images, load_style_image
from tests.core.conftest import make_model
from tests.core.training_testlib import SMALL_LOSS, pattern, tiny_vgg, write_images


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    base = make_model(("ink", "ochre"))
    base.training = {"loss": SMALL_LOSS.to_dict(), "steps": 123}
    model_path = save_model(base, tmp_path / "base.safetensors")
    write_images(tmp_path / "content", 3, (48, 64), seed=0)
    (style,) = write_images(tmp_path / "new", 1, (40, 40), seed=77, prefix="stripes")
    return {"tmp": tmp_path, "model": model_path, "style": style, "vgg": tiny_vgg(tmp_path)}


def config(s: dict, **kw) -> AddStyleConfig:
    base = AddStyleConfig(model=str(s["model"]), style=str(s["style"]), name="stripes",
                          out=str(s["tmp"] / "plus.safetensors"), content=str(s["tmp"] / "content"),
                          vgg=str(s["vgg"]), steps=15, batch_size=2, lr=5e-2, crop=CropSettings(size=32),
                          style_size=32, progress=False, log_every=5, credit={"artist": "Test Stripes"})
    return replace(base, **kw)


def new_style_loss(s: dict, network: torch.nn.Module, index: int, num_styles: int) -> float:
    loss = PerceptualLoss(load_vgg(s["vgg"], SMALL_LOSS.layers), SMALL_LOSS)
    grams = loss.style_grams([load_style_image(s["style"], 32, 32)])
    ds = ContentCrops(list_images(s["tmp"] / "content"), 1, CropSettings(size=32), seed=5)
    x = torch.stack([ds[i][0] for i in range(4)])
    mix = F.one_hot(torch.full((4,), index), num_styles).float()
    with torch.no_grad():
        return float(loss(network(x, mix), x, grams, torch.zeros(4, dtype=torch.long)).style.mean())


def test_add_style_keeps_old_styles_bit_identical_and_learns_the_new_one(setup: dict) -> None:
    base = load_model(setup["model"])
    before = new_style_loss(setup, one_style_network(base), 0, 1)
    result = add_style(config(setup))
    plus = load_model(result.model_path)
    assert plus.style_names == ["ink", "ochre", "stripes"]
    assert plus.styles[2].credit == {"artist": "Test Stripes"}
    assert plus.training["steps"] == 123 and plus.training["added_styles"][0]["name"] == "stripes"
    old, new = base.network.state_dict(), plus.network.state_dict()
    for k, v in old.items():
        if k.endswith((".gamma", ".beta")):
            assert new[k].shape == (3, v.shape[1])
            assert torch.equal(new[k][:2], v), k
            assert not torch.equal(new[k][2], v.mean(0)), f"{k}: the new row did not move"
        else:
            assert torch.equal(new[k], v), k
    img = pattern((40, 52), seed=9).astype(np.float32) / 255
    s_old, s_new = Stylizer(base, device="cpu"), Stylizer(plus, device="cpu")
    for name in ("ink", "ochre"):
        a = s_old.stylize(img, {name: 1.0})
        b = s_new.stylize(img, {name: 1.0})
        assert np.array_equal(a, b), name
    after = new_style_loss(setup, plus.network, 2, 3)
    assert after < 0.8 * before, (before, after)


def test_add_style_refuses_bad_input(setup: dict) -> None:
    with pytest.raises(PasticheError, match="already has a style named 'ink'"):
        add_style(config(setup, name="ink"))
    with pytest.raises(PasticheError, match="original stays intact"):
        add_style(config(setup, out=str(setup["model"])))
    with pytest.raises(PasticheError, match="style image not found"):
        add_style(config(setup, style=str(setup["tmp"] / "missing.png")))
    (small,) = write_images(setup["tmp"] / "small", 1, (20, 60), seed=3)
    with pytest.raises(ImageError, match="smaller than the 32-pixel training crop"):
        add_style(config(setup, style=str(small)))
    with pytest.raises(PasticheError, match="model file not found"):
        add_style(config(setup, model=str(setup["tmp"] / "none.safetensors")))

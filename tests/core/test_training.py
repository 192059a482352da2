"""N-style training on CPU with a tiny random VGG: loss falls, resume is exact, bad input is refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pastiche_core import PasticheError, load_model, new_model
from pastiche_core.errors import ImageError
from pastiche_core.model.network import Architecture
from pastiche_core.perceptual.losses import PerceptualLoss
from pastiche_core.perceptual.vgg import VGGWeightsError, load_vgg
from pastiche_core.training.data import ContentCrops, CropSettings, list_images
from pastiche_core.training.train import (
    TrainConfig,
    TrainingInterrupted,
    prepare_styles,
    read_checkpoint,
    train,
)
from tests.core.training_testlib import SMALL_LOSS, tiny_vgg, write_images

ARCH = {"channels": (8, 16, 32), "num_residual": 1}


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    vgg = tiny_vgg(tmp_path)
    write_images(tmp_path / "content", 3, (48, 64), seed=0)
    write_images(tmp_path / "styles", 2, (40, 44), seed=100, prefix="style")
    return {"tmp": tmp_path, "vgg": vgg}


def config(s: dict, **kw) -> TrainConfig:
    base = TrainConfig(styles=[str(s["tmp"] / "styles")], content=str(s["tmp"] / "content"),
                       out=str(s["tmp"] / "model.safetensors"), vgg=str(s["vgg"]), steps=6, batch_size=2,
                       crop=CropSettings(size=32), style_size=32, loss=SMALL_LOSS, progress=False,
                       log_every=1, seed=3, **ARCH)
    return replace(base, **kw)


def fixed_batch_loss(s: dict, network: torch.nn.Module, cfg: TrainConfig) -> float:
    vgg = load_vgg(s["vgg"], cfg.loss.layers)
    loss = PerceptualLoss(vgg, cfg.loss)
    from pastiche_core.training.data import resolve_styles

    grams = prepare_styles(resolve_styles(cfg.styles), loss, cfg.style_size, cfg.crop.size, torch.device("cpu"))
    ds = ContentCrops(list_images(cfg.content), 2, cfg.crop, seed=999)
    total = 0.0
    with torch.no_grad():
        for style in (0, 1):
            x = torch.stack([ds[i][0] for i in range(4)])
            idx = torch.full((4,), style)
            y = network(x, torch.nn.functional.one_hot(idx, 2).float())
            total += float(loss(y, x, grams, idx).total)
    return total


def test_training_lowers_the_loss_and_writes_a_model(setup: dict) -> None:
    cfg = config(setup, steps=20, lr=1e-2)
    before = fixed_batch_loss(setup, new_model(
        [__import__("pastiche_core").Style(n) for n in ("style0", "style1")],
        Architecture(num_styles=2, **ARCH), seed=cfg.seed).network, cfg)
    result = train(cfg)
    model = load_model(result.model_path)
    after = fixed_batch_loss(setup, model.network, cfg)
    assert after < 0.8 * before, (before, after)
    assert model.style_names == ["style0", "style1"]
    assert model.training["steps"] == 20 and model.training["complete"] is True
    assert model.training["loss"]["content_layer"] == "relu2_1"
    records = [json.loads(line) for line in result.log_path.read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 21))
    assert all(r["images_per_s"] > 0 for r in records)


def test_resume_after_a_crash_equals_an_uninterrupted_run(setup: dict, tmp_path: Path) -> None:
    # CPU fp32 kernels are deterministic for a fixed thread count, so the
    # comparison is bit-exact (torch.equal), not approximate.
    torch.use_deterministic_algorithms(True)
    try:
        straight = train(config(setup, out=str(tmp_path / "straight.safetensors"), steps=6))

        def crash(step: int, _terms) -> None:
            if step == 5:
                raise RuntimeError("simulated power cut")

        cut = config(setup, out=str(tmp_path / "cut.safetensors"), steps=6, checkpoint_every=2)
        with pytest.raises(RuntimeError, match="power cut"):
            train(cut, on_step=crash)
        tensors, meta = read_checkpoint(cut.checkpoint_path())
        assert meta["step"] == 4
        resumed = train(replace(cut, resume=True))
    finally:
        torch.use_deterministic_algorithms(False)
    a = straight.model.network.state_dict()
    b = resumed.model.network.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # Adam's moments match too, so further training would also agree.
    ta, _ = read_checkpoint(straight.checkpoint_path)
    tb, _ = read_checkpoint(resumed.checkpoint_path)
    for k in ta:
        if k.startswith(("optim.", "model.")):
            assert torch.equal(ta[k], tb[k]), k
    steps = [json.loads(line)["step"] for line in resumed.log_path.read_text().splitlines()]
    assert steps == list(range(1, 7)), "the log keeps one record per step after a resume"


def test_ctrl_c_saves_a_checkpoint_that_resumes(setup: dict) -> None:
    def interrupt(step: int, _terms) -> None:
        if step == 3:
            raise KeyboardInterrupt

    cfg = config(setup, steps=5)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(cfg, on_step=interrupt)
    _, meta = read_checkpoint(cfg.checkpoint_path())
    assert meta["step"] == 3
    assert load_model(cfg.out).training["complete"] is False
    result = train(replace(cfg, resume=True))
    assert load_model(result.model_path).training["steps"] == 5


def test_names_credits_and_weights_come_from_the_manifest(setup: dict) -> None:
    manifest = [{"file": "style0.png", "name": "waves", "artist": "A. Painter", "title": "Waves",
                 "year": "1890", "licence": "public domain", "weight": 2.0}]
    (setup["tmp"] / "styles" / "styles.json").write_text(json.dumps(manifest))
    result = train(config(setup, steps=2, style_coefficients={"style1": 0.5}))
    model = load_model(result.model_path)
    assert model.style_names == ["waves", "style1"]
    assert model.styles[0].credit == {"artist": "A. Painter", "title": "Waves", "year": "1890",
                                      "licence": "public domain"}
    assert model.training["style_coefficients"] == {"waves": 2.0, "style1": 0.5}


def test_resume_refuses_other_settings_and_missing_checkpoints(setup: dict) -> None:
    cfg = config(setup, steps=2)
    with pytest.raises(PasticheError, match="checkpoint not found"):
        train(replace(cfg, resume=True))
    train(cfg)
    with pytest.raises(PasticheError, match="batch_size"):
        train(replace(cfg, resume=True, steps=4, batch_size=3))


def test_init_starts_from_a_trained_models_weights(setup: dict) -> None:
    tmp = setup["tmp"]
    first = train(config(setup, steps=3, lr=1e-2, out=str(tmp / "first.safetensors")))
    # Other loss settings, starting from the first run's weights.
    cfg = config(setup, steps=1, lr=1e-12, out=str(tmp / "second.safetensors"),
                 checkpoint=str(tmp / "second.ckpt.safetensors"), init=str(first.model_path),
                 loss=replace(SMALL_LOSS, style_weight=1.0))
    second = train(cfg)
    a, b = load_model(first.model_path).network.state_dict(), second.model.network.state_dict()
    # One step at a negligible learning rate: the weights are the first run's, not random ones.
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert second.model.training["init"]["file"] == "first.safetensors"
    assert second.model.training["init"]["steps"] == 3
    # Resumed (with more steps), the run still records what it started from.
    resumed = train(replace(cfg, steps=2, resume=True))
    assert resumed.model.training["steps"] == 2
    assert resumed.model.training["init"]["file"] == "first.safetensors"
    fresh = train(replace(cfg, init=None, out=str(tmp / "fresh.safetensors"),
                          checkpoint=str(tmp / "fresh.ckpt.safetensors")))
    assert not all(torch.allclose(a[k], fresh.model.network.state_dict()[k], atol=1e-3) for k in a)


def test_init_refuses_a_model_with_other_styles_or_architecture(setup: dict) -> None:
    from pastiche_core import Style, save_model

    tmp = setup["tmp"]
    save_model(new_model([Style("x"), Style("y")], Architecture(num_styles=2, **ARCH)), tmp / "xy.safetensors")
    with pytest.raises(PasticheError, match="--init: .* has styles x, y"):
        train(config(setup, init=str(tmp / "xy.safetensors")))
    save_model(new_model([Style("style0"), Style("style1")], Architecture(num_styles=2)), tmp / "big.safetensors")
    with pytest.raises(PasticheError, match="--init: .* has architecture"):
        train(config(setup, init=str(tmp / "big.safetensors")))


@pytest.mark.parametrize("case, error, match", [
    ("no_content", PasticheError, "content folder not found"),
    ("empty_styles", PasticheError, "no images"),
    ("missing_style_file", PasticheError, "not found"),
    ("style_too_small", ImageError, "smaller than the 32-pixel training crop"),
    ("vgg_missing", VGGWeightsError, "not found"),
    ("vgg_too_shallow", VGGWeightsError, "need relu2_1"),
    ("vgg_no_convention", VGGWeightsError, "--vgg-convention"),
    ("vgg_is_a_model", VGGWeightsError, "not a VGG-19"),
    ("zero_steps", PasticheError, "steps"),
])
def test_bad_inputs_give_clear_errors(setup: dict, case: str, error: type, match: str) -> None:
    tmp = setup["tmp"]
    cfg = config(setup)
    if case == "no_content":
        cfg = replace(cfg, content=str(tmp / "nope"))
    elif case == "empty_styles":
        (tmp / "empty").mkdir()
        cfg = replace(cfg, styles=[str(tmp / "empty")])
    elif case == "missing_style_file":
        cfg = replace(cfg, styles=[str(tmp / "styles" / "missing.png")])
    elif case == "style_too_small":
        write_images(tmp / "small", 1, (20, 60), seed=5)
        cfg = replace(cfg, styles=[str(tmp / "small")])
    elif case == "vgg_missing":
        cfg = replace(cfg, vgg=str(tmp / "none.safetensors"))
    elif case == "vgg_too_shallow":
        cfg = replace(cfg, vgg=str(tiny_vgg(tmp, deepest="relu1_2")))
    elif case == "vgg_no_convention":
        cfg = replace(cfg, vgg=str(tiny_vgg(tmp, convention=None)))
    elif case == "vgg_is_a_model":
        from pastiche_core import Style, save_model

        save_model(new_model([Style("x")], Architecture(num_styles=1, **ARCH)), tmp / "m.safetensors")
        cfg = replace(cfg, vgg=str(tmp / "m.safetensors"))
    elif case == "zero_steps":
        cfg = replace(cfg, steps=0)
    with pytest.raises(error, match=match):
        train(cfg)

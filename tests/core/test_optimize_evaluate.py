"""Gatys optimization, evaluation and the training CLI subcommands (tiny random VGG, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pastiche_core import PasticheError, load_model, save_model
from pastiche_core.errors import WeightsError
from pastiche_core.perceptual.losses import LossConfig
from pastiche_core.perceptual.vgg import load_vgg
from pastiche_core.training.evaluate import EvaluateConfig, evaluate
from pastiche_core.training.optimize import OptimizeSettings, optimize
from tests.core.conftest import make_model
from tests.core.training_testlib import SMALL_LOSS, pattern, run_cli, tiny_vgg, write_images


def image(seed: int, size=(40, 48)) -> np.ndarray:
    return pattern(size, seed).astype(np.float32) / 255


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_optimize_lowers_the_loss(tmp_path: Path, method: str) -> None:
    vgg = load_vgg(tiny_vgg(tmp_path), SMALL_LOSS.layers)
    settings = OptimizeSettings(size=48, scales=2, iterations=15, method=method, loss=SMALL_LOSS)
    result = optimize(image(1), [(image(2), 1.0)], vgg, settings)
    assert result.image.shape == (40, 48, 3) and result.image.dtype == np.float32
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert result.losses["style"] < 0.5 * result.initial_losses["style"]
    assert result.losses["loss"] < result.initial_losses["loss"]
    assert result.history and {"scale", "iteration", "loss"} <= result.history[-1].keys()


def test_optimize_blends_styles_and_preserves_colour(tmp_path: Path) -> None:
    vgg = load_vgg(tiny_vgg(tmp_path), SMALL_LOSS.layers)
    s = OptimizeSettings(size=32, scales=1, iterations=5, loss=SMALL_LOSS, preserve_color=True)
    content = image(1, (32, 32))
    res = optimize(content, [(image(2), 3.0), (image(3), 1.0)], vgg, s)
    # Colour preservation keeps the content's chroma (rgb - luma) wherever nothing clips.
    luma = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    chroma_in = content - (content @ luma)[..., None]
    chroma_out = res.image - (res.image @ luma)[..., None]
    inside = (res.image > 0.01).all(-1) & (res.image < 0.99).all(-1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(chroma_out[inside], chroma_in[inside], atol=1e-5)
    with pytest.raises(WeightsError, match="all zero"):
        optimize(content, [(image(2), 0.0)], vgg, s)
    with pytest.raises(PasticheError, match="no style"):
        optimize(content, [], vgg, s)
    with pytest.raises(PasticheError, match="unknown optimizer"):
        optimize(content, [(image(2), 1.0)], vgg, OptimizeSettings(method="sgd", loss=SMALL_LOSS))


def test_optimize_cli_writes_the_image_and_protects_inputs(tmp_path: Path) -> None:
    vgg = tiny_vgg(tmp_path)
    content = tmp_path / "photo.png"
    Image.fromarray(pattern((36, 44), 4)).save(content)
    (style,) = write_images(tmp_path / "s", 1, (40, 40), seed=8)
    out = tmp_path / "out.png"
    loss = ["--content-layer", "relu2_1", "--style-layers", "relu1_1,relu2_1"]
    assert run_cli(["optimize", str(content), "--style", f"{style}=2", "--out", str(out), "--vgg", str(vgg),
                    "--size", "44", "--scales", "1", "--iterations", "3", "--quiet", "--device", "cpu", *loss]) == 0
    assert Image.open(out).size == (44, 36)
    before = content.read_bytes()
    with pytest.raises(PasticheError, match="one of the input images"):
        run_cli(["optimize", str(content), "--style", str(style), "--out", str(content), "--vgg", str(vgg), *loss])
    assert content.read_bytes() == before
    with pytest.raises(PasticheError, match="image not found"):
        run_cli(["optimize", str(tmp_path / "nope.png"), "--style", str(style), "--out", str(out),
                 "--vgg", str(vgg), *loss])


def test_evaluate_reports_network_and_gatys_losses_and_a_sheet(tmp_path: Path) -> None:
    model = make_model(("ink", "ochre"))
    model.training = {"loss": SMALL_LOSS.to_dict(), "style_size": 32}
    path = save_model(model, tmp_path / "m.safetensors")
    write_images(tmp_path / "content", 2, (40, 56), seed=0)
    styles = tmp_path / "styles"
    write_images(styles, 1, (40, 40), seed=10, prefix="ink")
    vgg = tiny_vgg(tmp_path)
    # Style images are matched by name (file stem or styles.json): ink0.png matches no style.
    with pytest.raises(PasticheError, match="none of the style images match.*found: ink0"):
        evaluate(EvaluateConfig(model=str(path), content=str(tmp_path / "content"),
                                styles=[str(styles / "ink0.png")], size=48, vgg=str(vgg), device="cpu"),
                 progress=False)
    (styles / "ink0.png").rename(styles / "ink.png")
    report, sheet = evaluate(EvaluateConfig(model=str(path), content=str(tmp_path / "content"),
                                            styles=[str(styles)], size=48, vgg=str(vgg),
                                            gatys_iterations=10, device="cpu"), progress=False)
    ink, ochre = report["styles"]
    assert [r["content"] for r in ink["images"]] == ["img0.png", "img1.png"]
    for row in ink["images"]:
        assert row["gatys"]["loss"] < row["network"]["loss"], "Gatys should beat an untrained network"
    assert ink["mean"]["network_over_gatys"] > 1
    assert "note" in ochre and "mean" not in ochre
    assert sheet.ndim == 3 and sheet.shape[2] == 3
    json.dumps(report)  # JSON-ready


def test_evaluate_cli_writes_json_and_png(tmp_path: Path) -> None:
    model = make_model(("ink",))
    model.training = {"loss": SMALL_LOSS.to_dict(), "style_size": 32}
    path = save_model(model, tmp_path / "m.safetensors")
    write_images(tmp_path / "content", 2, (40, 56), seed=0)
    write_images(tmp_path / "styles", 1, (40, 40), seed=10, prefix="ink")
    (tmp_path / "styles" / "ink0.png").rename(tmp_path / "styles" / "ink.png")
    js, png = tmp_path / "r" / "report.json", tmp_path / "r" / "sheet.png"
    assert run_cli(["evaluate", str(path), "--content", str(tmp_path / "content"), "--styles",
                    str(tmp_path / "styles"), "--vgg", str(tiny_vgg(tmp_path)), "--size", "32",
                    "--gatys-iterations", "3", "--json", str(js), "--sheet", str(png), "--quiet",
                    "--device", "cpu"]) == 0
    report = json.loads(js.read_text())
    assert report["styles"][0]["mean"]["gatys"]["loss"] > 0
    with Image.open(png) as im:
        assert im.size == (2 * 66 + 2, 14 + 2 * 66 + 2)  # 64-pixel cells; columns: content, ink; rows: 2 photos


def test_train_and_add_style_cli(tmp_path: Path) -> None:
    vgg = tiny_vgg(tmp_path)
    write_images(tmp_path / "content", 2, (48, 48), seed=0)
    write_images(tmp_path / "styles", 2, (40, 40), seed=50, prefix="s")
    common = ["--content", str(tmp_path / "content"), "--vgg", str(vgg), "--steps", "2", "--batch-size", "2",
              "--crop-size", "32", "--quiet", "--device", "cpu"]
    small = ["--content-layer", "relu2_1", "--style-layers", "relu1_1,relu2_1"]
    out = tmp_path / "m.safetensors"
    assert run_cli(["train", "--styles", str(tmp_path / "styles"), "--out", str(out), "--channels", "8,16,32",
                    "--residual", "1", "--style-weight", "s1=2", *common, *small]) == 0
    m = load_model(out)
    assert m.style_names == ["s0", "s1"] and m.training["style_coefficients"]["s1"] == 2.0
    (new,) = write_images(tmp_path / "new", 1, (40, 40), seed=60)
    out2 = tmp_path / "m2.safetensors"
    assert run_cli(["add-style", str(out), "--style", str(new), "--name", "fresh", "--artist", "Someone",
                    "--out", str(out2), *common]) == 0
    m2 = load_model(out2)
    assert m2.style_names == ["s0", "s1", "fresh"] and m2.styles[2].credit == {"artist": "Someone"}
    assert LossConfig.from_dict(m2.training["added_styles"][0]["loss"]).content_layer == "relu2_1"
    with pytest.raises(PasticheError, match="zero styles|no images"):
        (tmp_path / "none").mkdir()
        run_cli(["train", "--styles", str(tmp_path / "none"), "--out", str(out), *common])
    with pytest.raises(PasticheError, match="NAME=WEIGHT"):
        run_cli(["train", "--styles", str(tmp_path / "styles"), "--out", str(out), "--style-weight", "s1",
                 *common])


def test_train_cli_light_architecture_and_overrides(tmp_path: Path) -> None:
    vgg = tiny_vgg(tmp_path)
    write_images(tmp_path / "content", 2, (48, 48), seed=0)
    write_images(tmp_path / "styles", 2, (40, 40), seed=50, prefix="s")
    common = ["--styles", str(tmp_path / "styles"), "--content", str(tmp_path / "content"), "--vgg", str(vgg),
              "--steps", "1", "--batch-size", "2", "--crop-size", "32", "--quiet", "--device", "cpu",
              "--content-layer", "relu2_1", "--style-layers", "relu1_1,relu2_1"]
    out = tmp_path / "light.safetensors"
    assert run_cli(["train", "--arch", "light", "--out", str(out), *common]) == 0
    arch = load_model(out).architecture
    assert (arch.channels, arch.up, arch.num_residual) == ((16, 32, 32), (16, 8), 6)
    out2 = tmp_path / "custom.safetensors"
    assert run_cli(["train", "--arch", "light", "--up-channels", "12,4", "--residual", "2", "--first-kernel", "5",
                    "--out", str(out2), *common]) == 0
    arch2 = load_model(out2).architecture
    assert (arch2.channels, arch2.up, arch2.num_residual, arch2.first_kernel) == ((16, 32, 32), (12, 4), 2, 5)
    # Add-style works on the thin network too.
    (new,) = write_images(tmp_path / "new", 1, (40, 40), seed=60)
    out3 = tmp_path / "plus.safetensors"
    assert run_cli(["add-style", str(out2), "--style", str(new), "--name", "fresh", "--out", str(out3),
                    *common[2:]]) == 0
    assert load_model(out3).architecture.up == (12, 4)
    with pytest.raises(PasticheError, match="--up-channels expects 2 integers"):
        run_cli(["train", "--up-channels", "8", "--out", str(out), *common])

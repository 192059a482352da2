"""The bundled default model: present, trained by the project's own code, credited, and
what the README's first command uses."""

import numpy as np
import pytest

from pastiche_core import Stylizer, load_model
from pastiche_core.cli.commands import main
from pastiche_core.io.images import read_image, write_image
from pastiche_core.model.default_model import default_model_path
from pastiche_core.model.modelfile import resolve_model_path

from .conftest import smooth_image


@pytest.fixture(scope="module")
def default():
    path = default_model_path()
    assert path is not None, "core/models/default.safetensors is missing"
    return path


def test_default_model_is_trained_and_every_style_is_credited(default):
    model = load_model(default)
    assert resolve_model_path(None) == default
    training = model.training
    assert training["kind"] == "multi-style" and training["complete"], training
    assert training["steps"] >= 1000, training            # a training run, not an initialization
    assert np.isfinite(training["final"]["loss"]), training
    assert len(model.styles) >= 2
    for style in model.styles:
        credit = style.credit
        assert credit.get("artist") and credit.get("title"), style
        assert "public domain" in credit.get("licence", ""), style


def test_default_styles_are_distinct_and_change_the_picture(default):
    stylizer = Stylizer(default, device="cpu")
    image = smooth_image(64, 80, seed=7)
    outs = [stylizer.stylize(image, {name: 1.0}) for name in stylizer.style_names]
    for out in outs:
        assert out.shape == image.shape and np.isfinite(out).all()
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert np.abs(out - image).mean() > 0.03       # it stylizes, it is not an identity
    pairs = [np.abs(a - b).mean() for i, a in enumerate(outs) for b in outs[i + 1:]]
    assert min(pairs) > 0.01                             # no two styles look the same


def test_readme_first_command_uses_the_default(tmp_path, default, capsys):
    src = tmp_path / "demo.png"
    write_image(src, smooth_image(48, 64, seed=3))
    assert main(["stylize", str(src), "--out", str(tmp_path / "out"), "--overwrite"]) == 0
    out = read_image(tmp_path / "out" / "demo.png").pixels
    first = Stylizer(default, device="cpu").style_names[0]
    assert f"using {first!r}" in capsys.readouterr().err
    assert out.shape == (48, 64, 3) and np.abs(out - read_image(src).pixels).mean() > 0.03

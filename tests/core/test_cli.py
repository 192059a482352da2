"""The `pastiche` command line, end to end on generated images and a tiny model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pastiche_core import Stylizer
from pastiche_core.cli.commands import main
from pastiche_core.io.images import read_image, write_image

from .conftest import smooth_image


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    write_image(d / "a.png", smooth_image(40, 52, seed=1))
    write_image(d / "b.jpg", smooth_image(36, 30, seed=2))
    write_image(d / "c.png", smooth_image(32, 32, channels=4, seed=3), bit_depth=16)
    write_image(d / "d.exr", smooth_image(24, 28, seed=4) * 3.0)  # scene-linear HDR
    return d


def test_info_lists_styles_and_credits(model_file, capsys):
    assert main(["info", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "ink" in out and "Artist ochre" in out and "Study in cobalt" in out
    assert main(["info", str(model_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["styles"]] == ["ink", "ochre", "cobalt"]
    assert data["styles"][0]["credit"]["artist"] == "Artist ink"


def test_stylize_a_folder_matches_the_library(tmp_path, photos, model_file):
    out = tmp_path / "out"
    rc = main(["stylize", str(photos), "--out", str(out), "--model", str(model_file),
               "--style", "ink=1", "--style", "cobalt=3", "--strength", "0.8"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg", "c.png", "d.exr"]
    s = Stylizer(model_file, device="cpu")
    src = read_image(photos / "a.png")
    expected = s.stylize(src.pixels, {"ink": 0.25, "cobalt": 0.75}, strength=0.8)
    got = read_image(out / "a.png").pixels
    assert np.abs(got - expected).max() <= 1 / 255 + 1e-6  # 8-bit quantization
    c = read_image(out / "c.png")
    assert c.bit_depth == 16 and c.pixels.shape == (32, 32, 4)
    d = read_image(out / "d.exr")
    assert d.colour_space == "linear"
    exp_d = s.stylize(read_image(photos / "d.exr").pixels, {"ink": 1, "cobalt": 3}, colour_space="linear",
                      strength=0.8)
    np.testing.assert_allclose(d.pixels, exp_d, atol=1e-5)


def test_glob_pattern_and_format_conversion(tmp_path, photos, model_file):
    out = tmp_path / "out"
    assert main(["stylize", str(photos / "*.png"), "--out", str(out), "--model", str(model_file),
                 "--style", "ochre", "--format", "exr"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.exr", "c.exr"]


def test_never_overwrites_inputs_or_existing_outputs(tmp_path, photos, model_file, capsys):
    before = (photos / "a.png").read_bytes()
    rc = main(["stylize", str(photos / "a.png"), "--out", str(photos), "--model", str(model_file),
               "--style", "ink"])
    assert rc == 2 and "refusing to overwrite the input" in capsys.readouterr().err
    assert (photos / "a.png").read_bytes() == before
    out = tmp_path / "out"
    args = ["stylize", str(photos / "a.png"), "--out", str(out), "--model", str(model_file), "--style", "ink"]
    assert main(args) == 0
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--style", "umber=1"], "unknown style(s) 'umber'"),
    (["--style", "ink=-1"], "non-negative"),
    (["--style", "ink=abc"], "not a number"),
    (["--style", "ink=0"], "sum to zero"),
])
def test_clear_errors_for_bad_weights(tmp_path, photos, model_file, capsys, extra, message):
    rc = main(["stylize", str(photos / "a.png"), "--out", str(tmp_path / "o"), "--model", str(model_file)] + extra)
    assert rc == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--tile", "32"], "tile size must be 0 (never tile) or at least 64 pixels, got 32"),
    (["--strength", "1.5"], "strength"),
    (["--brush-size", "9"], "brush size"),
])
def test_options_wrong_for_every_image_fail_once_before_any_work(tmp_path, photos, model_file, capsys,
                                                                extra, message):
    out = tmp_path / "o"
    rc = main(["stylize", str(photos), "--out", str(out), "--model", str(model_file)] + extra)
    err = capsys.readouterr().err
    assert rc == 2 and message in err
    assert err.count(message) == 1 and "image(s) failed" not in err  # not once per image
    assert not out.exists() or not any(out.iterdir())


def test_without_style_the_first_style_is_used_and_named(tmp_path, photos, model_file, capsys):
    out = tmp_path / "out"
    assert main(["stylize", str(photos / "a.png"), "--out", str(out), "--model", str(model_file)]) == 0
    assert "no --style given, using 'ink'; the model has: ink, ochre, cobalt" in capsys.readouterr().err
    expected = Stylizer(model_file, device="cpu").stylize(read_image(photos / "a.png").pixels, {"ink": 1})
    assert np.abs(read_image(out / "a.png").pixels - expected).max() <= 1 / 255 + 1e-6


def test_clear_errors_for_bad_files(tmp_path, model_file, capsys):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    assert main(["stylize", str(junk), "--out", str(tmp_path / "o"), "--model", str(model_file),
                 "--style", "ink"]) == 2
    assert "cannot read junk.png" in capsys.readouterr().err
    assert main(["stylize", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o"),
                 "--model", str(model_file)]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["info", str(junk)]) == 2
    assert "not a safetensors file" in capsys.readouterr().err


def test_console_script_runs_as_a_module(model_file):
    r = subprocess.run([sys.executable, "-m", "pastiche_core", "info", str(model_file), "--json"],
                       capture_output=True, text=True, check=True)
    assert json.loads(r.stdout)["styles"][2]["name"] == "cobalt"


def test_a_closed_pipe_ends_quietly(model_file):
    # `pastiche info | head -1`: the reader is gone before pastiche writes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "pastiche_core", "info", str(model_file)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr

"""Style regions: soft masks with a mix each (core/inference/regions.py), in the
Stylizer, temporal mode, the worker and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pastiche_core
from pastiche_core import Stylizer
from pastiche_core.cli.commands import main
from pastiche_core.errors import WeightsError
from pastiche_core.inference.regions import StyleRegions, regions_from_index
from pastiche_core.io.images import read_image, write_image
from pastiche_core.temporal.coherence import TemporalStylizer

from .conftest import smooth_image

H, W = 48, 64
INNER = 12  # pixels kept away from the boundary when comparing with a single-mix result


@pytest.fixture
def stylizer(model):
    return Stylizer(model, device="cpu")


def halves(h=H, w=W) -> np.ndarray:
    """Left half covered (H x W x 1)."""
    return (np.arange(w)[None, :] < w // 2).astype(np.float32)[..., None].repeat(h, axis=0)


def test_composite_regions_are_exactly_their_single_mix_results(stylizer):
    img = smooth_image(H, W)
    left, right = {"ink": 1.0}, {"ochre": 0.5, "cobalt": 0.5}
    out = stylizer.stylize(img, StyleRegions(halves(), [left], base=right))
    whole_left, whole_right = stylizer.stylize(img, left), stylizer.stylize(img, right)
    # Every pixel is exactly one of the two single-mix results (hard mask: no blending).
    np.testing.assert_allclose(out[:, :W // 2], whole_left[:, :W // 2], atol=1e-6)
    np.testing.assert_allclose(out[:, W // 2:], whole_right[:, W // 2:], atol=1e-6)
    assert np.abs(whole_left - whole_right).mean() > 0.02  # the two mixes really differ


def test_blend_method_leaks_between_regions_and_composite_does_not(stylizer):
    img = smooth_image(H, W)
    left, right = {"ink": 1.0}, {"cobalt": 1.0}
    blend = stylizer.stylize(img, StyleRegions(halves(), [left], base=right, method="blend"))
    whole_left = stylizer.stylize(img, left)
    leak = np.abs(blend[:, :W // 2 - INNER] - whole_left[:, :W // 2 - INNER]).mean()
    assert leak > 1e-3  # pooled statistics: the right half's style changes the left half
    # and the blend method is the per-pixel weight map path
    wmap = StyleRegions(halves(), [left], base=right).weight_map((H, W), stylizer.style_names)
    np.testing.assert_allclose(blend, stylizer.stylize(img, wmap), atol=1e-6)


def test_soft_edges_blend_the_two_results_by_coverage(stylizer):
    img = smooth_image(H, W)
    ramp = np.clip((np.arange(W) - 24) / 16.0, 0, 1).astype(np.float32)[None, :, None].repeat(H, 0)
    a, b = {"ink": 1.0}, {"cobalt": 1.0}
    out = stylizer.stylize(img, StyleRegions(ramp, [a], base=b))
    ya, yb = stylizer.stylize(img, a), stylizer.stylize(img, b)
    # Colour is blended in display space, where the network works; for sRGB input that is the output space.
    np.testing.assert_allclose(out, ramp * ya + (1 - ramp) * yb, atol=1e-5)


def test_region_strength_blends_with_the_original_per_region(stylizer):
    img = smooth_image(H, W)
    a, b = {"ink": 1.0}, {"cobalt": 1.0}
    out = stylizer.stylize(img, StyleRegions(halves(), [a], base=b, strengths=[0.25]), strength=0.5)
    ya, yb = stylizer.stylize(img, a), stylizer.stylize(img, b)
    np.testing.assert_allclose(out[:, :W // 2], (0.25 * ya + 0.75 * img)[:, :W // 2], atol=1e-5)
    np.testing.assert_allclose(out[:, W // 2:], (0.5 * yb + 0.5 * img)[:, W // 2:], atol=1e-5)


def test_regions_with_linear_alpha_brush_and_tiles(stylizer):
    img = smooth_image(H * 2, W * 2, channels=4)
    img[..., :3] *= img[..., 3:4]
    mask = halves(H * 2, W * 2)
    a, b = {"ink": 1.0}, {"ochre": 1.0}
    opts = dict(colour_space="linear", premultiplied=True, brush_size=2.0, detail=0.3)
    out = stylizer.stylize(img, StyleRegions(mask, [a], base=b), **opts)
    ya = stylizer.stylize(img, a, **opts)
    inner = slice(0, W - 2 * INNER)
    np.testing.assert_allclose(out[:, inner], ya[:, inner], atol=1e-4)
    np.testing.assert_array_equal(out[..., 3], img[..., 3])
    tiled = stylizer.stylize(img, StyleRegions(mask, [a], base=b), tile=64)
    np.testing.assert_allclose(tiled[:, inner], stylizer.stylize(img, a, tile=64)[:, inner],
                               atol=1e-5)


def test_uncovered_regions_and_duplicate_mixes_cost_no_extra_pass(stylizer, monkeypatch):
    img = smooth_image(H, W)
    calls = []
    real = stylizer._forward_whole
    monkeypatch.setattr(stylizer, "_forward_whole", lambda b, m: calls.append(len(b)) or real(b, m))
    cov = np.zeros((H, W, 3), np.float32)
    cov[:, :20, 0] = 1.0
    cov[:, 20:40, 1] = 1.0  # same mix as region 0: merged
    # region 2 covers nothing: no pass
    stylizer.stylize(img, StyleRegions(cov, [{"ink": 1}, {"ink": 2}, {"cobalt": 1}], base={"ochre": 1}))
    assert sum(calls) == 2  # base + ink


def test_a_mask_over_an_unstyled_base_with_the_same_mix_costs_one_pass(stylizer, monkeypatch):
    """The compositor node's Mask: its mix inside the mask, the input outside (base
    strength 0, same mix). One network pass, and a per-pixel strength."""
    img = smooth_image(H, W)
    calls = []
    real = stylizer._forward_whole
    monkeypatch.setattr(stylizer, "_forward_whole", lambda b, m: calls.append(len(b)) or real(b, m))
    mask = np.zeros((H, W, 1), np.float32)
    mask[:, : W // 2] = 1.0
    mask[:, W // 2: W // 2 + 8] = 0.5
    out = stylizer.stylize(img, StyleRegions(mask, [{"ink": 1}], base={"ink": 1}, strengths=[1.0]), strength=0.0)
    assert sum(calls) == 1
    full = stylizer.stylize(img, {"ink": 1})
    np.testing.assert_allclose(out, mask * full + (1 - mask) * img, atol=1e-5)


@pytest.mark.parametrize("regions, message", [
    (StyleRegions(np.ones((H, W + 1, 1), np.float32), [{"ink": 1}], base={"ochre": 1}),
     "the style map is 65 x 48 but the image is 64 x 48"),
    (StyleRegions(halves(), [{"nosuch": 1}], base={"ochre": 1}, names=("hero.png",)),
     "style map hero.png: unknown style(s) 'nosuch'"),
    (StyleRegions(halves(), [{"ink": 0}], base={"ochre": 1}), "sum to zero"),
    (StyleRegions(np.concatenate([halves(), halves()], 2), [{"ink": 1}, {"cobalt": 1}], base={"ochre": 1}),
     "style regions overlap: 1536 pixel(s)"),
    (StyleRegions(halves() * 2, [{"ink": 1}], base={"ochre": 1}), "between 0 and 1"),
    (StyleRegions(halves(), [{"ink": 1}]), "no base mix"),
    (StyleRegions(halves(), [{"ink": 1}, {"ochre": 1}], base={"ochre": 1}), "H x W x 2"),
    (StyleRegions(halves(), [{"ink": 1}], base={"ochre": 1}, strengths=[2.0]), "strengths must be"),
    (StyleRegions(halves(), [{"ink": 1}], base={"ochre": 1}, method="magic"), "unknown region method"),
])
def test_bad_style_maps_are_refused_with_a_clear_error(stylizer, regions, message):
    with pytest.raises(WeightsError, match=None) as err:
        stylizer.stylize(smooth_image(H, W), regions)
    assert message in str(err.value)


def test_index_maps_give_one_region_per_mapped_index():
    index = np.zeros((4, 6), np.int64)
    index[:, 3:] = 7
    index[0, 0] = 2
    r = regions_from_index(index, {7: {"ink": 1}, 2: {"cobalt": 1}, 9: {"ochre": 1}}, base={"ochre": 1})
    assert [dict(m) for m in r.mixes] == [{"cobalt": 1}, {"ink": 1}]
    assert r.coverage.shape == (4, 6, 2) and r.coverage[0, 0, 0] == 1 and r.coverage[:, 3:, 1].all()
    with pytest.raises(WeightsError, match="none of the mapped indices"):
        regions_from_index(index, {5: {"ink": 1}}, base=None)


def test_temporal_regions_follow_each_layers_own_temporal_result(stylizer):
    """Each layer keeps its own temporal state: inside a region the frames are
    exactly those of a temporal run with that region's mix alone."""
    frames = [smooth_image(H, W, seed=s) for s in range(3)]
    vector = np.zeros((H, W, 4), np.float32)  # still camera
    a, b = {"ink": 1.0}, {"cobalt": 1.0}
    regions = TemporalStylizer(stylizer, history=2)
    alone_a, alone_b = TemporalStylizer(stylizer, history=2), TemporalStylizer(stylizer, history=2)
    for f in frames:
        out = regions.step(f, vector, StyleRegions(halves(), [a], base=b))
        ya, yb = alone_a.step(f, vector, a), alone_b.step(f, vector, b)
        np.testing.assert_allclose(out[:, :W // 2], ya[:, :W // 2], atol=1e-5)
        np.testing.assert_allclose(out[:, W // 2:], yb[:, W // 2:], atol=1e-5)
    assert regions.last_valid_fraction == 1.0  # blended with history, not restarted
    # Priming with regions builds the same state as stepping.
    primed = TemporalStylizer(stylizer, history=2)
    for f in frames[:2]:
        primed.prime(f, vector, StyleRegions(halves(), [a], base=b))
    np.testing.assert_allclose(primed.step(frames[2], vector, StyleRegions(halves(), [a], base=b)), out,
                               atol=1e-5)


def test_worker_stylize_request_with_regions(model_file, tmp_path):
    worker = Path(pastiche_core.__file__).resolve().parent / "ipc" / "worker.py"
    img = smooth_image(H, W)
    np.save(tmp_path / "in.npy", img)
    np.save(tmp_path / "cov.npy", halves())
    import struct
    header = struct.Struct(">I")
    p = subprocess.Popen([sys.executable, str(worker)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(msg):
        data = json.dumps(msg).encode()
        p.stdin.write(header.pack(len(data)) + data)
        p.stdin.flush()

    def recv():
        while True:
            (n,) = header.unpack(p.stdout.read(4))
            msg = json.loads(p.stdout.read(n))
            if msg.get("type") in ("hello", "result"):
                return msg

    try:
        hello = recv()
        assert "regions" in hello["features"]
        send({"id": 1, "type": "load", "model": str(model_file), "device": "cpu"})
        assert recv()["ok"]
        send({"id": 2, "type": "stylize", "input": {"path": str(tmp_path / "in.npy")},
              "output": {"path": str(tmp_path / "out.npy")}, "weights": {"cobalt": 1},
              "regions": {"coverage": {"path": str(tmp_path / "cov.npy")}, "mixes": [{"ink": 1}],
                          "strengths": [1.0]}})
        r = recv()
        assert r["ok"], r
        out = np.load(tmp_path / "out.npy")
        expected = Stylizer(model_file, device="cpu").stylize(
            img, StyleRegions(halves(), [{"ink": 1}], base={"cobalt": 1}))
        np.testing.assert_allclose(out, expected, atol=1e-6)
        send({"id": 3, "type": "stylize", "input": {"path": str(tmp_path / "in.npy")},
              "output": {"path": str(tmp_path / "out2.npy")}, "weights": {"cobalt": 1},
              "regions": {"coverage": {"path": str(tmp_path / "cov.npy")}, "mixes": "ink"}})
        r = recv()
        assert not r["ok"] and "regions.mixes" in r["error"]["message"]
    finally:
        p.stdin.close()
        p.wait(timeout=30)


def test_cli_style_map_masks_and_index_images(model_file, tmp_path):
    img = smooth_image(H, W)
    write_image(tmp_path / "in.png", img)
    mask = np.repeat(halves(), 3, axis=2)
    write_image(tmp_path / "mask.png", mask)
    out = tmp_path / "out"
    assert main(["stylize", str(tmp_path / "in.png"), "--out", str(out), "--model", str(model_file),
                 "--style", "cobalt", "--style-map", f"{tmp_path / 'mask.png'}:ink=1"]) == 0
    got = read_image(out / "in.png").pixels
    s = Stylizer(model_file, device="cpu")
    src = read_image(tmp_path / "in.png").pixels
    expected = s.stylize(src, StyleRegions(halves(), [{"ink": 1}], base={"cobalt": 1}))
    assert np.abs(got - expected).max() <= 1.5 / 255

    index = np.zeros((H, W, 3), np.float32)
    index[:, W // 2:] = 3 / 255.0
    write_image(tmp_path / "ids.png", index)
    (tmp_path / "ids.json").write_text(json.dumps({"3": {"ink": 1}}))
    assert main(["stylize", str(tmp_path / "in.png"), "--out", str(tmp_path / "o2"), "--model",
                 str(model_file), "--style", "cobalt", "--style-map",
                 f"{tmp_path / 'ids.png'}:{tmp_path / 'ids.json'}"]) == 0
    got = read_image(tmp_path / "o2" / "in.png").pixels
    expected = s.stylize(src, StyleRegions(1 - halves(), [{"ink": 1}], base={"cobalt": 1}))
    assert np.abs(got - expected).max() <= 1.5 / 255


def test_cli_style_map_errors_name_the_problem(model_file, tmp_path, capsys):
    write_image(tmp_path / "in.png", smooth_image(H, W))
    write_image(tmp_path / "small.png", np.ones((10, 10, 3), np.float32))
    base = ["stylize", str(tmp_path / "in.png"), "--out", str(tmp_path / "o"), "--model", str(model_file),
            "--style", "cobalt"]
    assert main([*base, "--style-map", f"{tmp_path / 'small.png'}:ink"]) == 2
    assert "the style map is 10 x 10 but the image is 64 x 48" in capsys.readouterr().err
    assert main([*base, "--style-map", f"{tmp_path / 'small.png'}:nosuch"]) != 0
    assert "unknown style(s) 'nosuch'" in capsys.readouterr().err
    assert main([*base, "--style-map", "nothing-here"]) != 0
    assert "expected MASK:MIX" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert main([*base, "--style-map", f"{tmp_path / 'small.png'}:{tmp_path / 'bad.json'}"]) != 0
    assert "not valid JSON" in capsys.readouterr().err

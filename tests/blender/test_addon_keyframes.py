"""Keyframeable style sliders: evaluated, normalized weights per frame, and
keyframes that follow their style by name when the model's list changes."""

from __future__ import annotations

import pytest

from blender_pastiche.props import scene as properties

pytestmark = pytest.mark.blender


def _key(item, frame, value):
    item.weight = value
    item.keyframe_insert("weight", frame=frame)


def _use_model(scene, path):
    scene.pastiche.model_source = "FILE"
    scene.pastiche.model_path = str(path)  # the update callback reads the style list
    assert scene.pastiche.model_error == ""


def test_sliders_follow_the_model(clean_scene, three_style_model):
    _use_model(clean_scene, three_style_model)
    styles = clean_scene.pastiche.styles
    assert [s.name for s in styles] == ["a", "b", "c"]
    assert [s.weight for s in styles] == [1.0, 0.0, 0.0]  # first load: a visible default
    assert properties.effective_weights(clean_scene) == {"a": 1.0, "b": 0.0, "c": 0.0}


def test_weights_at_frame_6_are_interpolated_and_normalized(clean_scene, three_style_model):
    _use_model(clean_scene, three_style_model)
    a, b, c = clean_scene.pastiche.styles
    _key(a, 1, 0.2)
    _key(a, 11, 1.0)
    _key(b, 1, 0.6)
    _key(b, 11, 0.2)
    c.weight = 0.0
    # Two keys with auto-clamped handles: a smoothstep, exactly halfway at frame 6.
    clean_scene.frame_set(6)
    assert a.weight == pytest.approx(0.6, abs=1e-6) and b.weight == pytest.approx(0.4, abs=1e-6)
    w = properties.effective_weights(clean_scene)
    assert w == pytest.approx({"a": 0.6, "b": 0.4, "c": 0.0}, abs=1e-6)
    # Evaluated from the F-curves, also at frames the scene is not on.
    clean_scene.frame_set(1)
    assert properties.effective_weights(clean_scene, frame=6) == pytest.approx(w, abs=1e-6)
    assert properties.effective_weights(clean_scene) == pytest.approx(
        {"a": 0.25, "b": 0.75, "c": 0.0}, abs=1e-6)


def test_all_zero_means_no_style(clean_scene, tiny_model):
    _use_model(clean_scene, tiny_model)
    for item in clean_scene.pastiche.styles:
        item.weight = 0.0
    assert properties.effective_weights(clean_scene) is None


def test_keyframes_stay_with_their_style_when_the_list_changes(clean_scene, three_style_model):
    _use_model(clean_scene, three_style_model)
    a, b, c = clean_scene.pastiche.styles
    _key(a, 1, 0.0)
    _key(a, 11, 1.0)
    _key(c, 1, 0.8)
    _key(c, 11, 0.8)
    b.weight = 0.3  # static value, not animated
    before = properties.raw_weights(clean_scene, frame=6)

    # New model order; "b" dropped (not animated: removed); "a" dropped (animated: kept, unavailable).
    properties.sync_style_names(clean_scene, ["c", "d"])
    styles = clean_scene.pastiche.styles
    assert [(s.name, s.available) for s in styles] == [("c", True), ("d", True), ("a", False)]
    paths = sorted(fc.data_path for fc in properties.style_fcurves(clean_scene))
    assert paths == ["pastiche.styles[0].weight", "pastiche.styles[2].weight"]
    clean_scene.frame_set(6)
    assert styles["c"].weight == pytest.approx(0.8)
    assert styles["a"].weight == pytest.approx(before["a"])
    # Unavailable styles are not part of the mix.
    assert properties.effective_weights(clean_scene) == pytest.approx({"c": 1.0, "d": 0.0})

    # Back to the original model: everything where it was, values intact.
    properties.sync_style_names(clean_scene, ["a", "b", "c"])
    assert [s.name for s in clean_scene.pastiche.styles] == ["a", "b", "c"]
    after = properties.raw_weights(clean_scene, frame=6)
    assert after["a"] == pytest.approx(before["a"]) and after["c"] == pytest.approx(before["c"])


def test_remove_style_drops_its_keyframes_and_shifts_the_rest(clean_scene, three_style_model):
    _use_model(clean_scene, three_style_model)
    a, b, c = clean_scene.pastiche.styles
    _key(a, 1, 0.5)
    _key(c, 1, 0.7)
    properties.remove_style(clean_scene, 0)
    assert [s.name for s in clean_scene.pastiche.styles] == ["b", "c"]
    assert [fc.data_path for fc in properties.style_fcurves(clean_scene)] == ["pastiche.styles[1].weight"]
    assert properties.raw_weights(clean_scene, frame=1)["c"] == pytest.approx(0.7)


def test_bad_model_file_is_reported_in_the_panel_state(clean_scene, tmp_path):
    bad = tmp_path / "notes.safetensors"
    bad.write_text("this is not a model")
    clean_scene.pastiche.model_source = "FILE"
    clean_scene.pastiche.model_path = str(bad)
    assert "not a safetensors model file" in clean_scene.pastiche.model_error
    clean_scene.pastiche.model_path = str(tmp_path / "missing.safetensors")
    assert "not found" in clean_scene.pastiche.model_error


def test_stylize_options_follow_the_settings(clean_scene, tiny_model):
    _use_model(clean_scene, tiny_model)
    s = clean_scene.pastiche
    s.strength, s.preserve_color, s.tile_size, s.device = 0.5, True, 32, "CPU"
    opts = properties.stylize_options(clean_scene)
    assert opts == {"model": str(tiny_model), "device": "cpu", "precision": "auto", "strength": 0.5,
                    "preserve_color": True, "brush_size": 1.0, "detail": 0.0, "tile": 64}
    s.tile_size = 0
    assert properties.stylize_options(clean_scene)["tile"] is None

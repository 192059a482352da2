import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from pastiche_core import ModelFileError, Style, load_model, new_model, save_model
from pastiche_core.model.modelfile import FORMAT

from .conftest import make_model


def test_round_trip_keeps_weights_names_and_credits(tmp_path, model):
    model.training = {"steps": 10, "content_weight": 1.0}
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.style_names == model.style_names
    assert loaded.styles[1].credit == model.styles[1].credit
    assert loaded.training == {"steps": 10, "content_weight": 1.0}
    assert loaded.architecture == model.architecture
    for k, v in model.network.state_dict().items():
        torch.testing.assert_close(loaded.network.state_dict()[k], v, rtol=0, atol=0)


def test_half_precision_file_is_half_the_size(tmp_path, model):
    full = save_model(model, tmp_path / "f32.safetensors")
    half = save_model(model, tmp_path / "f16.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    torch.testing.assert_close(loaded.network.down[0].conv.weight, model.network.down[0].conv.weight,
                               atol=2e-3, rtol=1e-3)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, model):
    save_model(model, tmp_path / "m.safetensors")
    save_model(model, tmp_path / "m.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_truncated_file_is_rejected(tmp_path, model_file):
    data = model_file.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated|corrupt|safetensors"):
        load_model(bad)


def test_pickle_file_is_rejected_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle executed')",))

    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        load_model(bad)
    torch_pickle = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2)}, torch_pickle)
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        load_model(torch_pickle)


def _rewrite(src, dst, tensors=None, metadata=None):
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
        m = dict(f.metadata())
    if tensors:
        tensors(t)
    if metadata:
        metadata(m)
    save_file(t, str(dst), metadata=m)
    return dst


def test_wrong_shaped_tensor_is_rejected(tmp_path, model_file):
    def shrink(t):
        t["down.0.conv.weight"] = torch.zeros(8, 3, 5, 5)
    bad = _rewrite(model_file, tmp_path / "bad.safetensors", tensors=shrink)
    with pytest.raises(ModelFileError, match=r"down\.0\.conv\.weight has shape"):
        load_model(bad)


def test_extra_and_missing_tensors_are_rejected(tmp_path, model_file):
    def extra(t):
        t["payload"] = torch.zeros(3)
    with pytest.raises(ModelFileError, match="unexpected tensor.*payload"):
        load_model(_rewrite(model_file, tmp_path / "extra.safetensors", tensors=extra))

    def missing(t):
        del t["out.norm.beta"]
    with pytest.raises(ModelFileError, match=r"missing tensor.*out\.norm\.beta"):
        load_model(_rewrite(model_file, tmp_path / "missing.safetensors", tensors=missing))


def test_nan_weights_are_rejected(tmp_path, model_file):
    def poison(t):
        t["out.conv.bias"][0] = float("nan")
    # without its checksum (an old-style file), so the NaN check itself is what refuses it
    with pytest.raises(ModelFileError, match="NaN"):
        load_model(_rewrite(model_file, tmp_path / "nan.safetensors", tensors=poison,
                            metadata=lambda m: m.pop("tensor_sha256")))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("format"), "not a Pastiche model"),
    (lambda m: m.update(format_version="99"), "format 99"),
    (lambda m: m.update(styles="not json"), "not valid JSON"),
    (lambda m: m.update(styles=json.dumps([{"name": "a"}, {"name": "a"}, {"name": "b"}])), "appears twice"),
    (lambda m: m.update(styles=json.dumps([{"name": "a"}])), "1 style names for 3"),
    (lambda m: m.update(architecture=json.dumps({"num_styles": 3, "channels": [8, 16, 99999],
                                                 "num_residual": 1, "first_kernel": 9, "last_kernel": 9})),
     "channels is out of range"),
])
def test_bad_metadata_is_rejected(tmp_path, model_file, edit, message):
    with pytest.raises(ModelFileError, match=message):
        load_model(_rewrite(model_file, tmp_path / "meta.safetensors", metadata=edit))


def test_other_safetensors_files_and_missing_files_are_rejected(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ModelFileError, match=f"not a Pastiche model.*{FORMAT}"):
        load_model(other)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="too small"):
        load_model(empty)


def test_style_names_must_be_unique_when_creating():
    with pytest.raises(ModelFileError, match="appears twice"):
        new_model([Style("a"), Style("a")])


def test_loaded_model_stylizes_like_the_original(tmp_path):
    model = make_model()
    loaded = load_model(save_model(model, tmp_path / "m.safetensors"))
    x = torch.rand(1, 3, 24, 24)
    mix = torch.tensor([[0.2, 0.3, 0.5]])
    torch.testing.assert_close(loaded.network(x, mix), model.network.eval()(x, mix), rtol=0, atol=0)


def test_files_written_before_up_channels_existed_still_load(tmp_path, model_file):
    """Older model files have no up_channels: the upsampling stages mirror the downsampling ones."""
    def drop_up(meta):
        arch = json.loads(meta["architecture"])
        arch.pop("up_channels")
        meta["architecture"] = json.dumps(arch)

    old = load_model(_rewrite(model_file, tmp_path / "old.safetensors", metadata=drop_up))
    c1, c2, _ = old.architecture.channels
    assert old.architecture.up == (c2, c1)
    assert torch.equal(old.network.out.conv.weight, load_model(model_file).network.out.conv.weight)


def test_thin_architecture_round_trips_and_bad_up_channels_are_rejected(tmp_path):
    from pastiche_core import Architecture, Style, new_model, save_model

    arch = Architecture.preset("light", 2)
    path = save_model(new_model([Style("a"), Style("b")], arch, seed=0), tmp_path / "light.safetensors")
    loaded = load_model(path)
    assert loaded.architecture == arch and loaded.architecture.up == (16, 8)

    def huge_up(meta):
        a = json.loads(meta["architecture"])
        a["up_channels"] = [16, 99999]
        meta["architecture"] = json.dumps(a)

    with pytest.raises(ModelFileError, match="up_channels is out of range"):
        load_model(_rewrite(path, tmp_path / "bad.safetensors", metadata=huge_up))


def test_reordering_styles_keeps_every_styles_pictures(model):
    import numpy as np

    from pastiche_core import Stylizer
    from pastiche_core.model.modelfile import reorder_styles

    img = np.random.default_rng(0).random((32, 40, 3), dtype=np.float32)
    names = model.style_names
    before = {n: Stylizer(model, device="cpu").stylize(img, {n: 1.0}) for n in names}
    reordered = reorder_styles(model, names[::-1])
    assert reordered.style_names == names[::-1]
    after = Stylizer(reordered, device="cpu")
    for n in names:
        np.testing.assert_array_equal(after.stylize(img, {n: 1.0}), before[n])
    with pytest.raises(ModelFileError, match="new order"):
        reorder_styles(model, names[:-1])

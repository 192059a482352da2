"""Damaged and hostile model files: refused with a named error, never a wrong picture."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pastiche_core import ModelFileError, NetworkOutputError, Stylizer, load_model, save_model
from pastiche_core.model.default_model import DEFAULT_MODEL_PATH
from pastiche_core.model.modelfile import CHECKSUM_KEY, MAX_PARAMETERS

from ..model_factory import randomized_model
from .conftest import png, run_cli


def _data_start(path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def test_one_flipped_bit_in_the_weights_is_reported_as_damage(tiny_model, tmp_path, capsys):
    data = bytearray(tiny_model.read_bytes())
    pos = _data_start(tiny_model) + (len(data) - _data_start(tiny_model)) // 2
    data[pos] ^= 0x04  # one bit in the middle of the tensor data; the header stays intact
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="flipped.safetensors is damaged"):
        load_model(bad)
    code, err = run_cli(capsys, "stylize", png(tmp_path / "in.png"), "--out", tmp_path / "out",
                        "--model", bad)
    assert code == 2 and "is damaged" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "in.png").exists()


def test_overwritten_block_of_weight_bytes_is_reported_as_damage(tiny_model, tmp_path):
    data = bytearray(tiny_model.read_bytes())
    start = _data_start(tiny_model) + 64
    data[start:start + 256] = np.random.default_rng(0).bytes(256)
    bad = tmp_path / "garbled.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="damaged"):
        load_model(bad)


def test_huge_finite_weight_is_refused_even_with_a_valid_checksum(tmp_path, capsys):
    model = randomized_model(("a", "b"))
    with torch.no_grad():
        model.network.state_dict()["up.0.norm.beta"].view(-1)[0] = 1e38
    path = save_model(model, tmp_path / "huge.safetensors")  # checksum matches these bytes
    with pytest.raises(ModelFileError, match="holds a weight of 1e"):
        load_model(path)
    code, err = run_cli(capsys, "info", path)
    assert code == 2 and "huge.safetensors" in err


def test_network_output_is_checked_for_nan_in_every_path():
    rng = np.random.default_rng(0)
    # A model made in memory skips the file checks: the Stylizer itself must refuse the result.
    model = randomized_model(("a", "b"))
    with torch.no_grad():
        model.network.state_dict()["down.0.conv.weight"].view(-1)[0] = 1e38
    s = Stylizer(model, device="cpu")
    img = rng.random((40, 48, 3), dtype=np.float32)
    for tile in (0, 64):  # whole and tiled
        with pytest.raises(NetworkOutputError, match="NaN or infinite|overflowed to infinity"):
            s.stylize(np.pad(img, ((0, 40), (0, 40), (0, 0))) if tile else img, {"a": 1}, tile=tile)
    with pytest.raises(NetworkOutputError):
        s.stylize_batch([img, img], {"a": 1})
    with pytest.raises(NetworkOutputError):
        s.network_pass(img, s.mix_tensor({"a": 1}, img.shape[:2]))


def test_half_precision_overflow_fails_the_frame_and_names_the_file(tmp_path, capsys):
    model = randomized_model(("a", "b"))
    with torch.no_grad():  # fine in float32, infinite in float16 (max 65504)
        model.network.state_dict()["down.0.conv.weight"].view(-1)[0] = 1e5
    path = save_model(model, tmp_path / "overflow.safetensors")
    good = png(tmp_path / "in" / "a.png")
    code, err = run_cli(capsys, "stylize", good, "--out", tmp_path / "out", "--model", path,
                        "--device", "cpu", "--precision", "fp16")
    assert code == 2
    assert f"{good}: the network produced" in err
    assert not (tmp_path / "out" / "a.png").exists()


def test_old_file_without_checksum_still_loads_and_info_says_so(tiny_model, tmp_path, capsys):
    with safe_open(str(tiny_model), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    del meta[CHECKSUM_KEY]
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata=meta)
    assert load_model(old).checksum is None
    assert load_model(tiny_model).checksum == "verified"
    assert main_out(capsys, "info", old).count("checksum: none") == 1
    assert "checksum: SHA-256 of the weights verified" in main_out(capsys, "info", tiny_model)


def main_out(capsys, *argv) -> str:
    from pastiche_core.cli import main

    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def test_bundled_default_model_carries_a_verified_checksum():
    with safe_open(str(DEFAULT_MODEL_PATH), "pt") as f:
        assert len(f.metadata()[CHECKSUM_KEY]) == 64
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}  # shipped as float16
    assert DEFAULT_MODEL_PATH.stat().st_size < 10e6
    assert load_model(DEFAULT_MODEL_PATH).checksum == "verified"


def _huge_architecture_file(src, dst, **arch_fields):
    with safe_open(str(src), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    arch = json.loads(meta["architecture"])
    arch.update(arch_fields)
    meta["architecture"] = json.dumps(arch)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_architecture_above_the_parameter_cap_is_refused_before_building(tiny_model, tmp_path):
    bad = _huge_architecture_file(tiny_model, tmp_path / "huge.safetensors",
                                  channels=[1024, 1024, 1024], num_residual=64)
    with pytest.raises(ModelFileError, match=f"more than the supported {MAX_PARAMETERS:,}"):
        load_model(bad)


def test_small_file_declaring_a_large_network_allocates_nothing_before_refusing(tiny_model, tmp_path):
    # Under the cap (66 M parameters, 265 MB of float32) but far more than the file holds: the
    # header's shapes refuse it. Measured in a fresh process: peak memory stays small.
    bad = _huge_architecture_file(tiny_model, tmp_path / "big.safetensors",
                                  channels=[512, 1024, 1024], num_residual=2, up_channels=[1024, 512])
    code = (
        "import resource, sys\n"
        "from pastiche_core import ModelFileError, load_model\n"
        "import torch\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    load_model({str(bad)!r})\n"
        "except ModelFileError as e:\n"
        "    print('refused', e)\n"
        "print('grew_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "refused" in out and ("has shape" in out or "missing tensor" in out), out
    grew_mb = int(out.split("grew_kb")[1]) / 1024
    assert grew_mb < 100, f"the loader grew by {grew_mb:.0f} MB before refusing"

"""The one safetensors header reader (core/io/safetensors_header.py)."""

from __future__ import annotations

import json

import pytest

from pastiche_core.io import safetensors_header as sh


def _write(path, header: dict, data: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)


def test_reads_the_header_and_its_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    _write(path, {"__metadata__": {"format": "x"}, "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
           b"\0" * 4)
    assert sh.read_header(path)["t"]["shape"] == [1]
    assert sh.read_metadata(path) == {"format": "x"}


def test_no_metadata_reads_as_empty(tmp_path):
    path = tmp_path / "m.safetensors"
    _write(path, {})
    assert sh.read_metadata(path) == {}


@pytest.mark.parametrize(("content", "reason"), [
    (b"\x80\x04K\x01.", sh.TOO_SMALL),                        # a tiny pickle
    (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00}q\x00", sh.NOT_SAFETENSORS),  # a pickle
    (b"PK\x03\x04" + b"\0" * 40, sh.NOT_SAFETENSORS),          # a zip
    ((1000).to_bytes(8, "little") + b"{}", sh.NOT_SAFETENSORS),  # length past the end
    ((4).to_bytes(8, "little") + b'{"a"', sh.CORRUPT),          # truncated JSON
    ((2).to_bytes(8, "little") + b"[]", sh.NOT_SAFETENSORS),    # not an object
])
def test_refuses_what_is_not_safetensors(tmp_path, content, reason):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(sh.SafetensorsHeaderError) as info:
        sh.read_header(path)
    assert info.value.reason == reason
    assert "bad.safetensors" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(sh.SafetensorsHeaderError) as info:
        sh.read_header(tmp_path / "nope.safetensors")
    assert info.value.reason == sh.MISSING


def test_prefix_check():
    assert sh.has_safetensors_prefix((2).to_bytes(8, "little") + b"{", 10)
    assert not sh.has_safetensors_prefix((3).to_bytes(8, "little") + b"{", 10)
    assert not sh.has_safetensors_prefix(b"\x80\x04", 2)

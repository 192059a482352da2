"""blender_pastiche.io.exr_file: the raw EXR reader the add-on uses for data passes,
checked against files written by the OpenEXR library in every layout it reads."""

from __future__ import annotations

import numpy as np
import pytest

from blender_pastiche.io import exr_file

OpenEXR = pytest.importorskip("OpenEXR")

CODECS = {"none": "NO_COMPRESSION", "zips": "ZIPS_COMPRESSION", "zip": "ZIP_COMPRESSION"}


def write(path, channels: dict, codec: str) -> str:
    header = {"compression": getattr(OpenEXR, CODECS[codec]), "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))
    return str(path)


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_reads_exactly_what_was_written(tmp_path, codec, dtype):
    rng = np.random.default_rng(0)
    # 37 rows: a last ZIP block shorter than 16 lines; noise and a flat area.
    rgba = rng.normal(0, 3, (37, 29, 4)).astype(dtype)
    rgba[:10] = 1.5
    path = write(tmp_path / "rgba.exr", {"RGBA": rgba}, codec)
    np.testing.assert_array_equal(exr_file.read_four_channels(path), rgba.astype(np.float32))


@pytest.mark.parametrize("codec", ["none", "zip"])
def test_xyzw_channels_keep_w(tmp_path, codec):
    """Blender 4.5 writes a Vector pass as X, Y, Z, W; W must not become alpha 1."""
    rng = np.random.default_rng(1)
    parts = {c: rng.normal(0, 2, (20, 24)).astype(np.float32) for c in "XYZW"}
    path = write(tmp_path / "xyzw.exr", dict(parts), codec)  # OpenEXR replaces the dict's values
    got = exr_file.read_four_channels(path)
    np.testing.assert_array_equal(got, np.stack([parts[c] for c in "XYZW"], axis=-1))
    assert set(exr_file.read_channels(path)) == set("XYZW")


def test_other_files_are_refused_with_a_reason(tmp_path):
    bad = tmp_path / "not.exr"
    bad.write_bytes(b"PNG....")
    with pytest.raises(exr_file.ExrError, match="not an OpenEXR file"):
        exr_file.read_channels(str(bad))
    two = write(tmp_path / "two.exr", {"U": np.zeros((4, 4), np.float32),
                                       "V": np.zeros((4, 4), np.float32)}, "none")
    with pytest.raises(exr_file.ExrError, match=r"channels \['U', 'V'\]"):
        exr_file.read_four_channels(two)
    piz = tmp_path / "piz.exr"
    with OpenEXR.File({"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {"RGBA": np.zeros((4, 4, 4), np.float32)}) as f:
        f.write(str(piz))
    with pytest.raises(exr_file.ExrError, match="PIZ compression"):
        exr_file.read_channels(str(piz))

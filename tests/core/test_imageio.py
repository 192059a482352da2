import numpy as np
import pytest

from pastiche_core import ImageError
from pastiche_core.io.images import expand_inputs, read_image, write_image

from .conftest import smooth_image


@pytest.mark.parametrize("name, depth, tol, space", [
    ("x.png", 8, 0.5 / 255 + 1e-6, "srgb"),
    ("x.png", 16, 0.5 / 65535 + 1e-6, "srgb"),
    ("x.tif", 8, 0.5 / 255 + 1e-6, "srgb"),
    ("x.exr", 32, 0.0, "linear"),
])
def test_round_trips(tmp_path, name, depth, tol, space):
    for channels in (3, 4):
        img = smooth_image(17, 23, channels=channels)
        loaded = read_image(write_image(tmp_path / name, img, bit_depth=depth))
        assert loaded.colour_space == space and loaded.pixels.shape == img.shape
        assert np.abs(loaded.pixels - img).max() <= tol


def test_writes_are_atomic_and_leave_no_temporaries(tmp_path):
    write_image(tmp_path / "a.png", smooth_image(8, 8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_expand_inputs(tmp_path):
    for n in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p in expand_inputs([str(tmp_path)])] == ["a.jpg", "b.png"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.png")])] == ["b.png"]
    with pytest.raises(ImageError, match="matches no images"):
        expand_inputs([str(tmp_path / "*.tga")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="holds no images"):
        expand_inputs([str(tmp_path / "empty")])


def test_written_files_get_normal_permissions(tmp_path):
    """Temporary files are private (0600); the final file must not stay so."""
    import os
    import stat

    mask = os.umask(0o022)
    try:
        p = write_image(tmp_path / "a.png", smooth_image(8, 8))
    finally:
        os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644

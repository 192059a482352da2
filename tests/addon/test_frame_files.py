"""Frame files: format rules, keep-original naming, atomic replacement (no bpy needed)."""

import os

import pytest

from blender_pastiche.io import frame_files as ff


def test_encoding_per_format():
    assert ff.frame_encoding("OPEN_EXR", "32") == ff.FrameEncoding("linear", True, True)
    assert ff.frame_encoding("PNG", "8") == ff.FrameEncoding("srgb", False, False)
    assert ff.frame_encoding("PNG", "16").high_precision


@pytest.mark.parametrize("fmt,media", [("FFMPEG", "VIDEO"), ("FFMPEG", "IMAGE"), ("AVI_JPEG", "IMAGE")])
def test_movie_output_is_refused_clearly(fmt, media):
    with pytest.raises(ff.FrameFormatError, match="movie"):
        ff.frame_encoding(fmt, "8", media)


def test_multilayer_is_refused_clearly():
    with pytest.raises(ff.FrameFormatError, match="multilayer"):
        ff.frame_encoding("OPEN_EXR_MULTILAYER", "32", "MULTI_LAYER_IMAGE")


def test_unstylized_path_is_a_sibling_folder(tmp_path):
    p = str(tmp_path / "render_0005.png")
    assert ff.unstylized_path(p) == str(tmp_path / "unstylized" / "render_0005.png")


def test_atomic_write_replaces_only_on_success(tmp_path):
    final = tmp_path / "f.png"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with ff.atomic_write(str(final)) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("crash mid-write")
    assert final.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.png"]  # the temp file is gone
    with ff.atomic_write(str(final)) as tmp:
        assert tmp.endswith(".png") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "wb") as f:
            f.write(b"new")
    assert final.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f.png"]


def test_atomic_write_refuses_an_empty_result(tmp_path):
    final = tmp_path / "f.exr"
    final.write_bytes(b"old")
    with pytest.raises(OSError, match="no file"):
        with ff.atomic_write(str(final)):
            pass
    assert final.read_bytes() == b"old"


def test_keep_copy_and_move_aside(tmp_path):
    frame = tmp_path / "a_0001.exr"
    frame.write_bytes(b"unstylized")
    kept = ff.keep_copy_of_original(str(frame))
    assert open(kept, "rb").read() == b"unstylized" and frame.exists()
    frame.write_bytes(b"unstylized2")
    moved = ff.move_aside(str(frame))
    assert moved == kept and open(moved, "rb").read() == b"unstylized2" and not frame.exists()


def test_keep_copy_and_move_aside_of_a_separate_render(tmp_path):
    frame = tmp_path / "a_0002.png"
    render = tmp_path / ".a_0002-render.png"
    render.write_bytes(b"render")
    kept = ff.keep_copy_of_original(str(frame), str(render))
    assert kept == ff.unstylized_path(str(frame)) and open(kept, "rb").read() == b"render"
    render.write_bytes(b"render2")
    moved = ff.move_aside(str(frame), str(render))
    assert moved == kept and open(moved, "rb").read() == b"render2"
    assert not render.exists() and not frame.exists()


def test_sweep_removes_only_old_pastiche_temps(tmp_path):
    stale = tmp_path / f".a_0001{ff.TEMP_MARKER}-1.png"
    fresh = tmp_path / f".a_0002{ff.TEMP_MARKER}-1.png"
    other = tmp_path / ".hidden.png"
    for p in (stale, fresh, other):
        p.write_bytes(b"x")
    os.utime(stale, (0, 0))
    assert ff.sweep_stale_temps(str(tmp_path)) == [str(stale)]
    assert fresh.exists() and other.exists() and not stale.exists()


@pytest.mark.parametrize("output, fmt, ext, use_ext, expected", [
    # As bpy 5.0.1 wrote stills with render(write_still=True):
    ("/r/still", "PNG", ".png", True, "/r/still.png"),
    ("/r/still.png", "PNG", ".png", True, "/r/still.png"),
    ("/r/still.PNG", "PNG", ".png", True, "/r/still.PNG"),
    ("/r/still.jpg", "PNG", ".png", True, "/r/still.png"),
    ("/r/still.exr", "PNG", ".png", True, "/r/still.png"),
    ("/r/still.", "PNG", ".png", True, "/r/still.png"),
    ("/r/still.v2", "PNG", ".png", True, "/r/still.v2.png"),
    ("/r/still_####", "PNG", ".png", True, "/r/still_####.png"),
    ("/r/still.png", "OPEN_EXR", ".exr", True, "/r/still.exr"),
    ("/r/still.jpeg", "JPEG", ".jpg", True, "/r/still.jpeg"),
    ("/r/still.tiff", "TIFF", ".tif", True, "/r/still.tiff"),
    ("/r/still.jpg", "PNG", ".png", False, "/r/still.jpg"),
    # JPEG 2000 takes only its codec's extension (render.file_extension follows the codec).
    ("/r/still.jp2", "JPEG2000", ".j2c", True, "/r/still.j2c"),
    ("/r/still.j2c", "JPEG2000", ".jp2", True, "/r/still.jp2"),
])
def test_still_path_is_where_blender_writes_a_still(output, fmt, ext, use_ext, expected):
    assert ff.still_path(output, fmt, ext, use_ext) == expected


def test_written_file_is_the_candidate_that_changed(tmp_path):
    old, new, absent = tmp_path / "old.png", tmp_path / "new.png", tmp_path / "absent.png"
    old.write_bytes(b"old")
    new.write_bytes(b"before")
    before = {str(p): ff.file_signature(str(p)) for p in (absent, old, new)}
    assert before[str(absent)] is None
    assert ff.written_file(before) is None
    tmp = tmp_path / "tmp.png"
    tmp.write_bytes(b"written by the render")
    os.replace(tmp, new)  # an atomic write: a new inode
    assert ff.written_file(before) == str(new)

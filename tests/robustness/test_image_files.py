"""Images read or written wrong: each format arrives upright, in sRGB, at its bit depth."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pastiche_core import ImageError, Stylizer
from pastiche_core.io.images import MAX_READ_PIXELS, read_image, write_image
from pastiche_core.io.tiff import tiff_sample_info

from .conftest import png, run_cli

OpenEXR = pytest.importorskip("OpenEXR")


def _gradient(h=24, w=32, c=3) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = [x / w, y / h, (x + y) / (w + h), np.where(x > w / 2, 1.0, 0.5)][:c]
    return np.stack(chans, axis=2).astype(np.float32)


def test_float_tiff_is_read_as_its_values_not_black(tmp_path):
    a = np.full((8, 9), 0.6, np.float32)
    Image.fromarray(a, "F").save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif")
    assert img.bit_depth == 32 and np.allclose(img.pixels, 0.6)


def test_16_bit_rgb_tiff_round_trips_at_16_bits_through_the_cli(tiny_model, tmp_path, capsys):
    src = tmp_path / "in" / "deep.tif"
    src.parent.mkdir()
    fine = (_gradient(c=4) * 65535).astype(np.uint16)
    write_image(src, fine.astype(np.float32) / 65535, bit_depth=16)
    back = read_image(src)
    assert back.bit_depth == 16 and np.array_equal((back.pixels * 65535 + 0.5).astype(np.uint16), fine)
    code, _ = run_cli(capsys, "stylize", src, "--out", tmp_path / "out", "--model", tiny_model)
    assert code == 0
    assert tiff_sample_info(tmp_path / "out" / "deep.tif") == (16, 1, 4)
    out = read_image(tmp_path / "out" / "deep.tif").pixels
    levels = np.unique((out[..., :3] * 65535 + 0.5).astype(np.uint16))
    assert np.any(levels % 257 != 0), "16-bit output holds only 8-bit levels"


def test_compressed_16_bit_rgb_tiff_says_it_is_read_at_8_bits(tmp_path):
    # Pillow cannot write 16-bit RGB TIFF; build a Deflate-compressed one by hand.
    h, w = 4, 5
    raw = zlib.compress((np.arange(h * w * 3, dtype="<u2") * 1000).tobytes())
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, 0), (259, 3, 1, 8), (262, 3, 1, 2),
            (273, 4, 1, 0), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, len(raw))]
    bits_at = 8 + 2 + 12 * len(tags) + 4
    data_at = bits_at + 6
    body = struct.pack("<H", len(tags))
    for tag, typ, n, v in tags:
        v = bits_at if tag == 258 else data_at if tag == 273 else v
        body += struct.pack("<HHI", tag, typ, n) + (struct.pack("<H", v) + b"\0\0" if typ == 3 and n == 1
                                                     else struct.pack("<I", v))
    path = tmp_path / "deflate16.tif"
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + body + b"\0\0\0\0" + struct.pack("<3H", 16, 16, 16) + raw)
    img = read_image(path)
    assert img.pixels.shape == (h, w, 3)
    assert any("read at 8-bit precision" in n for n in img.notes)


def test_half_float_exr_is_written_as_half(tiny_model, tmp_path, capsys):
    src = tmp_path / "in" / "half.exr"
    src.parent.mkdir()
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": _gradient().astype(np.float16)}) as f:
        f.write(str(src))
    assert run_cli(capsys, "stylize", src, "--out", tmp_path / "out", "--model", tiny_model)[0] == 0
    with OpenEXR.File(str(tmp_path / "out" / "half.exr")) as f:
        assert f.channels()["RGB"].pixels.dtype == np.float16
    run_cli(capsys, "stylize", src, "--out", tmp_path / "png", "--format", "png", "--model", tiny_model)
    assert read_image(tmp_path / "png" / "half.png").bit_depth == 16  # half EXR -> 16-bit PNG


def test_exr_alpha_is_read_premultiplied_like_blender_writes_it(tiny_model, tmp_path, capsys):
    straight = _gradient(c=4)
    straight[..., 3] = np.where(np.arange(32) < 16, 0.25, 1.0)[None, :]
    premult = straight.copy()
    premult[..., :3] *= premult[..., 3:]
    src = tmp_path / "in" / "render.exr"
    src.parent.mkdir()
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGBA": premult}) as f:
        f.write(str(src))
    assert read_image(src).premultiplied
    assert run_cli(capsys, "stylize", src, "--out", tmp_path / "out", "--model", tiny_model,
                   "--style", "a")[0] == 0
    cli = read_image(tmp_path / "out" / "render.exr").pixels
    api = Stylizer(tiny_model, device="cpu").stylize(premult, {"a": 1}, colour_space="linear",
                                                     premultiplied=True)
    np.testing.assert_allclose(cli, api, atol=1e-6)  # the add-on's convention, the same pixels
    assert np.all(cli[..., :3] <= cli[..., 3:] + 1e-6)  # still premultiplied


def test_colour_hidden_under_zero_alpha_does_not_change_the_visible_result(tiny_model):
    s = Stylizer(tiny_model, device="cpu")
    a = _gradient(32, 32, 4)
    a[..., 3] = 1.0
    a[8:24, 8:24, 3] = 0.0
    b = a.copy()
    b[8:24, 8:24, :3] = np.random.default_rng(1).random((16, 16, 3))
    visible = a[..., 3] > 0
    oa, ob = s.stylize(a, {"a": 1}), s.stylize(b, {"a": 1})
    assert np.abs(oa[visible] - ob[visible]).max() == 0.0


def test_exif_rotated_photo_comes_out_upright(tiny_model, tmp_path, capsys):
    a = np.zeros((10, 20, 3), np.uint8)
    a[:, :5] = 255  # a white band on the left of the stored pixels
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    src = tmp_path / "in" / "phone.jpg"
    src.parent.mkdir()
    im.save(src, exif=exif.tobytes(), quality=95)
    img = read_image(src)
    assert img.pixels.shape[:2] == (20, 10)
    assert img.pixels[:5].mean() > 0.9 and img.pixels[10:].mean() < 0.1  # the band is now on top
    assert run_cli(capsys, "stylize", src, "--out", tmp_path / "out", "--model", tiny_model)[0] == 0
    with Image.open(tmp_path / "out" / "phone.jpg") as out:
        assert out.size == (10, 20) and 0x0112 not in out.getexif()


def _display_p3_profile() -> Path | None:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("srgb_p3d65_display.icc"))
    return found[0] if found else None


def test_icc_profile_is_converted_to_srgb(tmp_path):
    profile = _display_p3_profile()
    if profile is None:
        pytest.skip("no Display P3 ICC profile on this machine (it ships with bpy)")
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(tmp_path / "p3.png", icc_profile=profile.read_bytes())
    Image.fromarray(red).save(tmp_path / "plain.png")
    p3 = read_image(tmp_path / "p3.png").pixels[0, 0]
    plain = read_image(tmp_path / "plain.png").pixels[0, 0]
    assert np.allclose(plain, [1, 0, 0])
    # P3 red lies outside sRGB: converted it is sRGB red, clipped, with no stray green or blue
    # (unconverted, green would appear only if the profile were ignored in the other direction)
    assert not read_image(tmp_path / "p3.png").notes
    assert p3[0] > 0.99 and p3[1] < 0.05 and p3[2] < 0.05
    green = np.zeros((4, 4, 3), np.uint8)
    green[..., 1] = 128
    Image.fromarray(green).save(tmp_path / "p3g.png", icc_profile=profile.read_bytes())
    g = read_image(tmp_path / "p3g.png").pixels[0, 0]
    # P3 (0, 128, 0) is sRGB (-, 131, -) by the P3-to-sRGB matrix (green 1.0421 in linear light);
    # an ignored profile would leave 128.
    assert round(float(g[1]) * 255) in (130, 131, 132) and g[0] < 0.01, g


def _png_header_only(path: Path, w: int, h: int, bit_depth: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_huge_declared_png_is_refused_before_decoding(tmp_path, capsys, tiny_model, bit_depth):
    # 16000 x 16000: the 8-bit one trips Pillow's bomb check, the 16-bit one goes through pypng
    (tmp_path / "in").mkdir()
    path = _png_header_only(tmp_path / "in" / f"huge{bit_depth}.png", 16000, 16000, bit_depth)
    assert 16000 * 16000 > MAX_READ_PIXELS
    with pytest.raises(ImageError, match="16000 x 16000|larger than the supported"):
        read_image(path)
    code, err = run_cli(capsys, "stylize", path, "--out", tmp_path / "out", "--model", tiny_model)
    assert code == 2 and "megapixels" in err


def test_png_without_extension_is_read_by_content_and_written_as_png(tiny_model, tmp_path, capsys):
    src = png(tmp_path / "in" / "frame.png").rename(tmp_path / "in" / "frame")
    code, err = run_cli(capsys, "stylize", src, "--out", tmp_path / "out", "--model", tiny_model)
    assert code == 0, err
    assert (tmp_path / "out" / "frame.png").is_file()

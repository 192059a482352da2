"""Blender images <-> numpy float32 arrays, and what their pixels mean.

Arrays here are H x W x 4 float32 with the first row at the TOP (Blender
stores rows bottom to top). Each read says which colour space and alpha
convention the values are in, so the core can convert them for the network
(the add-on never converts colour itself):

- float images (renders, EXR, HDR, new float images): scene-linear,
  premultiplied alpha (Blender's float buffers are premultiplied);
- byte images (PNG, JPEG, ...): values as stored, /255, in the image's colour
  space (sRGB for ordinary pictures), straight alpha;
- alpha mode "Channel Packed" or "None": alpha is not coverage, so only RGB is
  stylized and alpha is put back untouched.

Pixels move with ``foreach_get``/``foreach_set`` into float32 buffers (about
15-40 ms for 2048 x 2048), never per pixel.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np

from .frame_files import FrameEncoding

# Colour spaces whose stored values are linear Rec.709 light.
LINEAR_SPACES = {"Linear Rec.709", "scene_linear", "Linear", "Linear BT.709"}


@dataclass
class ImagePixels:
    """Pixels of an image, top row first, and how to interpret them."""

    array: np.ndarray  # H x W x 4 float32
    colour_space: str  # "srgb" or "linear", as the core's Stylizer takes it
    premultiplied: bool
    alpha_is_coverage: bool  # False for channel-packed / ignored alpha

    def stylize_input(self) -> np.ndarray:
        """What to send to the core: RGBA when alpha is coverage, else RGB."""
        return self.array if self.alpha_is_coverage else self.array[..., :3]

    def with_result(self, result: np.ndarray) -> np.ndarray:
        """The stylized result as H x W x 4, alpha put back if it was kept aside."""
        if result.shape[2] == 4:
            return result
        return np.concatenate([result, self.array[..., 3:4]], axis=2)

    def stylize_kwargs(self) -> dict[str, Any]:
        return {"colour_space": self.colour_space, "premultiplied": self.premultiplied}


def image_colour_space(image: Any) -> str:
    """'linear' or 'srgb': the space of the values ``image.pixels`` returns."""
    name = image.colorspace_settings.name
    if image.is_float:
        # Blender converts float images to scene-linear on load; data stays data.
        return "srgb" if name in ("Non-Color", "Raw") else "linear"
    return "linear" if name in LINEAR_SPACES or name.lower().startswith("linear rec.709") else "srgb"


def image_is_premultiplied(image: Any) -> bool:
    return bool(image.is_float) and image.alpha_mode not in ("CHANNEL_PACKED", "NONE")


def _require_pixels(image: Any) -> tuple[int, int, int]:
    w, h = image.size[:]
    channels = image.channels
    if w == 0 or h == 0 or not image.has_data and len(image.pixels) == 0:
        raise ValueError(f"image {image.name!r} has no pixels (not loaded, missing file, or a "
                         "render result that was not saved)")
    return w, h, channels


def read_image(image: Any) -> ImagePixels:
    """An image datablock's pixels as an H x W x 4 float32 array, top row first."""
    w, h, channels = _require_pixels(image)
    flat = np.empty(w * h * channels, dtype=np.float32)
    image.pixels.foreach_get(flat)
    arr = flat.reshape(h, w, channels)[::-1]
    if channels == 4:
        rgba = np.ascontiguousarray(arr)
    else:
        rgba = np.ones((h, w, 4), dtype=np.float32)
        rgb = arr[..., :3] if channels >= 3 else np.repeat(arr[..., :1], 3, axis=2)
        rgba[..., :3] = rgb
    coverage = channels == 4 and image.alpha_mode not in ("CHANNEL_PACKED", "NONE")
    if channels == 4 and image.alpha_mode == "NONE":
        rgba[..., 3] = 1.0
    return ImagePixels(rgba, image_colour_space(image), image_is_premultiplied(image) and coverage,
                       coverage)


def write_image(image: Any, rgba: np.ndarray) -> None:
    """Write an H x W x 4 (top row first) array into an image of the same size."""
    w, h, channels = image.size[0], image.size[1], image.channels
    if rgba.shape[:2] != (h, w):
        raise ValueError(f"array is {rgba.shape[1]} x {rgba.shape[0]}, image {image.name!r} is {w} x {h}")
    data = rgba[::-1]
    if channels != 4:
        data = data[..., :channels] if channels >= 3 else data[..., :1]
    image.pixels.foreach_set(np.ascontiguousarray(data, dtype=np.float32).reshape(-1))
    image.update()


def new_image(name: str, rgba: np.ndarray, *, float_buffer: bool, colorspace: str,
              alpha_mode: str = "STRAIGHT") -> Any:
    """A new image datablock holding ``rgba``. The colour space is set before
    the pixels: changing it afterwards makes Blender regenerate the image."""
    h, w = rgba.shape[:2]
    image: Any = bpy.data.images.new(name, width=w, height=h, alpha=True, float_buffer=float_buffer)
    image.colorspace_settings.name = colorspace
    image.alpha_mode = alpha_mode
    write_image(image, rgba)
    return image


def new_image_like(source: Any, name: str, rgba: np.ndarray) -> Any:
    """A new image with the source's kind (float/byte), colour space and alpha
    mode, so its pixels mean what the source's did."""
    colorspace = source.colorspace_settings.name
    if source.is_float and colorspace not in ("Non-Color", "Raw"):
        colorspace = "Linear Rec.709"  # float buffers are scene-linear whatever the file was
    return new_image(name, rgba, float_buffer=bool(source.is_float), colorspace=colorspace,
                     alpha_mode=source.alpha_mode)


def pack_image(image: Any) -> None:
    """Keep a generated image's pixels in the .blend (else they are lost on reload)."""
    try:
        image.pack()
    except RuntimeError:
        pass  # packing is a convenience; the pixels are in memory either way


def read_render_result(scene: Any) -> np.ndarray:
    """The last render (composited) as scene-linear, premultiplied H x W x 4.

    The Render Result image has no readable pixels, so it is saved to a
    temporary 32-bit EXR with the scene's own settings untouched, then read.
    After a scripted render (bpy.ops.render.render()) it reports has_data
    False and size 0 x 0 until something saves it, so it is saved whatever
    it reports; only a failed save means there is no render.
    """
    no_render = "there is no render result: render a still first (F12)"
    result = bpy.data.images.get("Render Result")
    if result is None:
        raise ValueError(no_render)
    settings = scene.render.image_settings
    saved = {k: getattr(settings, k) for k in ("file_format", "color_depth", "color_mode",
                                               "exr_codec") if hasattr(settings, k)}
    media = getattr(settings, "media_type", None)
    fd, path = tempfile.mkstemp(prefix="pastiche-render-", suffix=".exr")
    os.close(fd)
    image = None
    try:
        if media is not None:
            settings.media_type = "IMAGE"
        settings.file_format = "OPEN_EXR"
        settings.color_depth = "32"
        settings.color_mode = "RGBA"
        settings.exr_codec = "NONE"
        try:
            result.save_render(path, scene=scene)
        except RuntimeError:
            raise ValueError(no_render) from None
        if os.path.getsize(path) == 0:
            raise ValueError(no_render)
        image = bpy.data.images.load(path, check_existing=False)
        image.colorspace_settings.name = "Linear Rec.709"
        pixels = read_image(image)
        return pixels.array
    finally:
        if image is not None:
            bpy.data.images.remove(image)
        if media is not None and settings.media_type != media:
            settings.media_type = media
        for k, v in saved.items():
            try:
                setattr(settings, k, v)
            except (TypeError, AttributeError):
                pass
        try:
            os.unlink(path)
        except OSError:
            pass


# -- rendered frame files (render/hooks.py, operators/render_animation.py) ------------------------------


def load_frame(path: str, encoding: FrameEncoding) -> tuple[Any, np.ndarray]:
    """Load a frame file; returns the image (remove it when done) and its pixels
    top row first, float32 H x W x 4, exactly as the file holds them (EXR:
    scene-linear premultiplied; others: display values, straight alpha)."""
    image: Any = bpy.data.images.load(path, check_existing=False)
    if encoding.high_precision and encoding.colour_space == "srgb":
        # 16-bit files load as float and Blender would linearize them; Non-Color
        # keeps the stored (display-encoded) values. Set before reading pixels.
        image.colorspace_settings.name = "Non-Color"
    w, h = image.size
    if w == 0 or h == 0:
        bpy.data.images.remove(image)
        raise ValueError(f"Blender could not read the frame {path}")
    flat = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(flat)
    return image, flat.reshape(h, w, 4)[::-1].copy()


def save_frame(image: Any, pixels: np.ndarray, path: str, encoding: FrameEncoding) -> None:
    """Write pixels (top row first, as load_frame gave them) into image and
    save it to path in the image's own file format and depth."""
    data = np.ascontiguousarray(pixels[::-1], dtype=np.float32)
    if encoding.high_precision and encoding.colour_space == "srgb":
        # Observed (bpy 5.0): a float image saved to an integer format divides
        # RGB by alpha on the way out, so hand it premultiplied values.
        data = data.copy()
        data[..., :3] *= data[..., 3:4]
    image.pixels.foreach_set(data.ravel())
    image.filepath_raw = path
    image.save()

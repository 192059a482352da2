"""Colour handling between renderers and the network.

Blender and compositors work in scene-linear light with premultiplied alpha;
the network was trained on display-referred sRGB photographs with no alpha.
These functions convert explicitly, in both directions, in float32.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ColourSpace = Literal["srgb", "linear"]
COLOUR_SPACES = ("srgb", "linear")

# Rec.709 / sRGB luma weights, used for colour-preserving stylization.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Scene-linear to display sRGB (the sRGB OETF). Clips to [0, 1] first:
    the network sees display values, so highlights above 1.0 saturate, like
    Blender's 'Standard' view transform."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)


def to_display(rgb: np.ndarray, space: ColourSpace) -> np.ndarray:
    """Whatever the caller has -> display sRGB in [0, 1] for the network."""
    if space == "linear":
        return linear_to_srgb(rgb)
    if space == "srgb":
        rgb = rgb.astype(np.float32, copy=False)
        if float(rgb.min()) >= 0.0 and float(rgb.max()) <= 1.0:
            return rgb  # already display values: no copy (an 8K frame is 380 MB)
        return np.clip(rgb, 0.0, 1.0)
    raise ValueError(f"unknown colour space {space!r}; use one of {COLOUR_SPACES}")


def from_display(rgb: np.ndarray, space: ColourSpace) -> np.ndarray:
    """Display sRGB from the network -> the caller's colour space."""
    if space == "linear":
        return srgb_to_linear(rgb)
    if space == "srgb":
        return rgb.astype(np.float32, copy=False)
    raise ValueError(f"unknown colour space {space!r}; use one of {COLOUR_SPACES}")


def unpremultiply(rgba: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA -> straight RGB; fully transparent pixels become 0."""
    a = rgba[..., 3:4]
    safe = np.where(a > 0, a, 1.0)
    return np.where(a > 0, rgba[..., :3] / safe, 0.0).astype(np.float32)


def premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return (rgb * alpha[..., None]).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ _LUMA


def preserve_colour(stylized: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Keep the original's colour, take only the stylized luminance.

    Works in display space on the luma/chroma split of Gatys et al. (2016,
    "Preserving color in neural artistic style transfer"): the chroma
    offsets (rgb - luma) of the original ride on the stylized luma.
    """
    y_new = luminance(stylized)[..., None]
    chroma = original - luminance(original)[..., None]
    return np.clip(y_new + chroma, 0.0, 1.0).astype(np.float32)

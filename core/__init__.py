"""Pastiche core: multi-style neural style transfer, independent of Blender.

Import name ``pastiche_core`` (the folder is ``core/``). Only relative
imports inside, so build_addon.py can bundle it under another name.
"""

from .errors import (
    ArgumentError,
    BrushError,
    ImageError,
    ModelFileError,
    NetworkOutputError,
    OutputError,
    PasticheError,
    WeightsError,
)
from .inference.stylizer import Stylizer
from .model.modelfile import PasticheModel, Style, load_model, new_model, save_model
from .model.network import Architecture, StyleNetwork
from .version import __version__

__all__ = [
    "Architecture",
    "ArgumentError",
    "BrushError",
    "ImageError",
    "ModelFileError",
    "NetworkOutputError",
    "OutputError",
    "PasticheError",
    "PasticheModel",
    "Style",
    "StyleNetwork",
    "Stylizer",
    "WeightsError",
    "load_model",
    "new_model",
    "save_model",
    "__version__",
]

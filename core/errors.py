"""Errors the engine raises. Each names the problem so a user can fix it."""


class PasticheError(Exception):
    """Base class for every error Pastiche raises on bad input."""


class ModelFileError(PasticheError, ValueError):
    """A model file is missing, truncated, malformed, mismatched or unsafe."""


class WeightsError(PasticheError, ValueError):
    """Style weights are invalid (unknown style, negative, NaN, all zero...)."""


class ImageError(PasticheError, ValueError):
    """An image is unreadable, empty, of the wrong shape or holds NaN/inf."""


class ArgumentError(PasticheError, ValueError):
    """An API argument has the wrong type or is out of range (strength, tile, batch size...)."""


class NetworkOutputError(PasticheError, RuntimeError):
    """The network produced NaN or infinite values: the model is damaged or unusable."""


class OutputError(PasticheError, OSError):
    """An output file or folder cannot be written (permissions, a folder in the way, a full disk)."""


class BrushError(PasticheError, ValueError):
    """A brush size or detail is out of range, or leaves the network too small a picture."""

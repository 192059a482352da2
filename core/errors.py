"""Errors the engine raises. Each names the problem so a user can fix it."""


class PasticheError(Exception):
    """Base class for every error Pastiche raises on bad input."""


class ModelFileError(PasticheError, ValueError):
    """A model file is missing, truncated, malformed, mismatched or unsafe."""


class WeightsError(PasticheError, ValueError):
    """Style weights are invalid (unknown style, negative, NaN, all zero...)."""


class ImageError(PasticheError, ValueError):
    """An image is unreadable, empty, of the wrong shape or holds NaN/inf."""


class BrushError(PasticheError, ValueError):
    """A brush size or detail is out of range, or leaves the network too small a picture."""

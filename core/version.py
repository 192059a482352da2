"""The one version number of the core (pyproject.toml and the add-on manifest must match it)."""

__version__ = "0.1.0"

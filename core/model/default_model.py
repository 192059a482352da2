"""Where the bundled default model lives, if one ships with this install."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelFileError

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "default.safetensors"


def default_model_path() -> Path | None:
    return DEFAULT_MODEL_PATH if DEFAULT_MODEL_PATH.is_file() else None


def resolve_model_path(model: str | None) -> Path:
    """The model the user named, else the bundled default; a clear error if neither exists."""
    if model:
        return Path(model)
    found = default_model_path()
    if found is None:
        raise ModelFileError(
            "no model given and no default model is bundled with this install: "
            "pass --model PATH (train one with `pastiche train`)"
        )
    return found

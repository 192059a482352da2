"""Where the bundled default model lives, if one ships with this install.

Standard library only, no relative imports: the add-on loads this file by path
(``blender_pastiche.support.core_files``) to find the model its core bundles.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "default.safetensors"


def default_model_path() -> Path | None:
    return DEFAULT_MODEL_PATH if DEFAULT_MODEL_PATH.is_file() else None

#!/usr/bin/env bash
# Type-check the Blender add-on against fake-bpy-module stubs (no real bpy).
# Uses its own virtual environment (real bpy and the stubs must not share one):
#   MYPY_VENV (default: ~/.cache/pastiche-venv-mypy) is created on first use.
# Usage: tests/run_mypy.sh [extra mypy args]; exit status is mypy's.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${MYPY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pastiche-venv-mypy}"
if [ ! -x "$VENV/bin/mypy" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q mypy fake-bpy-module-5-0 "numpy>=1.26,<2"
fi
cd "$ROOT"
exec "$VENV/bin/mypy" --config-file tests/mypy_addon.ini blender_pastiche "$@"

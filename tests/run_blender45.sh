#!/usr/bin/env bash
# Run the Blender test suite (tests/blender and the extension build test) on Blender 4.5 LTS.
#
# Usage: tests/run_blender45.sh [PYTHON] [extra pytest args]
#   PYTHON (or $BLENDER45_PYTHON): a Python 3.11 whose environment has bpy 4.5, e.g. made with
#     python3.11 -m venv .venv45
#     .venv45/bin/pip install bpy==4.5.15 "numpy<2" torch==2.13.0
#     .venv45/bin/pip install -e ".[test]"
# Exit status: pytest's; 2 when the Python given has no bpy 4.5 (a run on another
# version would pass for the wrong reason).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${BLENDER45_PYTHON:-}"
if [ $# -gt 0 ] && [ -x "$1" ]; then
    PY="$1"
    shift
fi
if [ -z "$PY" ]; then
    echo "run_blender45.sh: give a Python with bpy 4.5 as the first argument or in BLENDER45_PYTHON" >&2
    exit 2
fi
version="$("$PY" -c 'import bpy, sys; sys.stdout.write("%d.%d.%d" % bpy.app.version)' 2>/dev/null | tail -n 1)" || true
case "$version" in
    4.5.*) ;;
    *) echo "run_blender45.sh: $PY has bpy ${version:-(none)}, expected 4.5.x" >&2; exit 2 ;;
esac
cd "$ROOT"
echo "== pytest: Blender tests on bpy $version"
exec "$PY" -m pytest -q -p no:cacheprovider tests/blender tests/test_build_addon.py "$@"

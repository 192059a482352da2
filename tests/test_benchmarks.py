"""The benchmark scripts run and report what they measure (no timing is asserted:
figures live in the scripts' output, docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pastiche_core import save_model

from .model_factory import randomized_model

ROOT = Path(__file__).resolve().parent.parent


def test_inference_benchmark_times_a_model_file_with_more_styles_than_its_mix(tmp_path):
    # The benchmark's mix names four styles; the default model has twenty.
    names = [f"s{i}" for i in range(6)]
    model = save_model(randomized_model(names, 0, table_seed=1, tiny=True), tmp_path / "six.safetensors")
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "inference.py"), "--model", str(model),
                          "--sizes", "64x48", "--repeats", "1", "--no-memory", "--threads", "1", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    (row,) = report["results"]
    assert row["size"] == "64x48" and row["pastiche_ms"] > 0 and row["reference_ms"] > 0
    assert row["max_abs_diff"] < 1 / 255  # the fast path paints what the plain network does


def test_temporal_benchmark_times_its_blending_half():
    """The part of benchmarks/temporal.py that needs no Blender renders (the blend
    timing): it calls temporal mode's internals, so it must follow their changes."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import temporal
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert temporal.blend_overhead_ms(48, 64, repeats=1) > 0

"""Register, unregister and register again in a fresh Blender process: no
classes, properties, handlers or worker processes are left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.blender
REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    import bpy
    import blender_pastiche
    from blender_pastiche.worker import client as worker_client

    def snapshot():
        handlers = {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
                    if not name.startswith("_") and isinstance(getattr(bpy.app.handlers, name), list)}
        classes = sorted(n for n in dir(bpy.types) if n.startswith("PASTICHE_"))
        ops = sorted(dir(bpy.ops.pastiche))
        return {"handlers": handlers, "classes": classes, "ops": ops,
                "scene_prop": hasattr(bpy.types.Scene, "pastiche")}

    out = {"before": snapshot(), "rounds": []}
    for round_ in range(2):
        blender_pastiche.register()
        registered = snapshot()
        scene = bpy.context.scene
        scene.pastiche.model_source = "FILE"
        scene.pastiche.model_path = sys.argv[2]
        styles = [s.name for s in scene.pastiche.styles]
        reply = worker_client.get_client().call("ping", timeout=120)
        pid = reply["pid"]
        pixel_dir = str(worker_client.get_client().pixel_dir())
        blender_pastiche.unregister()
        out["rounds"].append({"registered": registered, "styles": styles, "pid": pid,
                              "exited": worker_client.wait_for_exit(pid, 10.0),
                              "pixel_dir_left": os.path.exists(pixel_dir),
                              "after": snapshot()})
    print("RESULT" + json.dumps(out))
""")


def test_register_unregister_reregister_leaves_nothing(tmp_path, tiny_model):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"), HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO), str(tiny_model)], env=env,
                          capture_output=True, text=True, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and line, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = json.loads(line[0][len("RESULT"):])
    before = out["before"]
    assert before["classes"] == [] and not before["scene_prop"]
    for r in out["rounds"]:
        reg = r["registered"]
        assert "PASTICHE_PT_view3d" in reg["classes"] and "PASTICHE_OT_stylize_image" in reg["classes"]
        assert {"stylize_image", "stylize_render", "restart_worker"} <= set(reg["ops"])
        assert reg["scene_prop"] and r["styles"] == ["a", "b"]
        assert r["exited"], "the worker process outlived unregister()"
        assert not r["pixel_dir_left"]
        assert r["after"]["classes"] == [] and not r["after"]["scene_prop"]
        assert r["after"]["handlers"] == before["handlers"]
    assert out["rounds"][0]["pid"] != out["rounds"][1]["pid"]

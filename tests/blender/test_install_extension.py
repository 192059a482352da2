"""The built extension zip in real headless Blender (bpy): install with Blender's
extension installer, enable, stylize an image through the add-on's operator, and
the PyTorch installer's offline-testable behaviour. Each scenario runs in its own
Python process (a fresh bpy, user resources in a temporary folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("bpy")
torch = pytest.importorskip("torch")

import build_addon  # noqa: E402
from pastiche_core import load_model  # noqa: E402

from ..model_factory import write_randomized_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.blender
MODULE = "bl_ext.user_default.blender_pastiche"

# Runs first in every scenario: a fresh Blender user folder, then the zip installed
# with Blender's own extension installer and enabled.
PRELUDE = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    args = json.loads(sys.argv[1])
    # The development install maps `pastiche_core` to the repository; drop that finder so
    # the installed add-on must use the core bundled in the zip, as on a user's machine.
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not getattr(f, "__module__", type(f).__module__).startswith("__editable__")
                        and not type(f).__module__.startswith("__editable__")]
    import bpy
    result = {}
    def save():
        Path(args["out"]).write_text(json.dumps(result, indent=1))
    bpy.ops.extensions.package_install_files(filepath=args["zip"], repo="user_default",
                                             enable_on_install=True)
    MODULE = "bl_ext.user_default.blender_pastiche"
    result["enabled"] = MODULE in bpy.context.preferences.addons
    pkg = sys.modules[MODULE]
    result["package_file"] = pkg.__file__
    core_import = sys.modules[MODULE + ".support.core_files"]
    result["core_dir"] = str(core_import.core_dir())
    save()
''')


def run_scenario(tmp: Path, zip_path: Path, body: str, **args) -> dict:
    """Run PRELUDE + body in a new Python with user folders under tmp; return its result dict."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp / "blender_user"), HOME=str(home),
               XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_DATA_HOME=str(home / ".local" / "share"), PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    for var in ("BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS", "BLENDER_USER_DATAFILES",
                "BLENDER_USER_EXTENSIONS"):  # set by conftest for in-process tests: all under RESOURCES here
        env.pop(var, None)
    # This machine's pip config adds local wheel folders and version constraints; the
    # installer test must see only its own stand-in wheels.
    for var in [v for v in env if v.startswith("PIP_")]:
        env.pop(var)
    env["PIP_CONFIG_FILE"] = os.devnull
    out = tmp / "result.json"
    script = tmp / "scenario.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + "\nsave()\n")
    payload = json.dumps(dict(args, zip=str(zip_path), out=str(out), tmp=str(tmp)))
    done = subprocess.run([sys.executable, str(script), payload], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=600)
    log = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, log
    assert out.is_file(), log
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ext")
    return build_addon.build(tmp / "dist", tmp / "stage", require_validation=True, log=lambda _m: None)


def tiny_model(path: Path) -> Path:
    # distinct, non-identity styles, so the output visibly differs
    return write_randomized_model(path, ("ink", "ochre"), 0, table_seed=1)


STYLIZE = '''
    import numpy as np
    scene = bpy.context.scene
    settings = scene.pastiche
    # The bundled default model, as a new user first sees it.
    settings.model_source = "BUNDLED"
    result["bundled_styles"] = [s.name for s in settings.styles]
    result["bundled_error"] = settings.model_error
    settings.model_source = "FILE"
    settings.model_path = args["model"]
    result["styles"] = [s.name for s in settings.styles]
    result["model_error"] = settings.model_error
    for item in settings.styles:
        item.weight = 1.0
    w, h = 48, 32
    image = bpy.data.images.new("Input", w, h, alpha=True, float_buffer=True)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgba = np.stack([x / w, y / h, 0.5 + 0.4 * np.sin(x / 5.0), np.ones_like(x)], axis=2)
    image.pixels.foreach_set(rgba.astype(np.float32).ravel())
    before = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(before)
    result["operator"] = sorted(bpy.ops.pastiche.stylize_image(image_name="Input"))
    out = bpy.data.images.get("Input (Pastiche)")
    result["result_exists"] = out is not None
    if out is not None:
        after = np.empty(tuple(out.size)[0] * tuple(out.size)[1] * 4, np.float32)
        out.pixels.foreach_get(after)
        result["result_size"] = list(out.size)
        result["finite"] = bool(np.isfinite(after).all())
        result["mean_abs_diff"] = float(np.abs(after - before).mean()) if after.shape == before.shape else None
    again = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(again)
    result["input_untouched"] = bool(np.array_equal(again, before))
    worker_client = sys.modules[MODULE + ".worker.client"]
    result["worker"] = {k: v for k, v in worker_client.status().items() if isinstance(v, (str, int, float))}
    worker_client.shutdown()
'''


def test_zip_installs_enables_and_stylizes_an_image(tmp_path, extension_zip):
    res = run_scenario(tmp_path, extension_zip, STYLIZE, model=str(tiny_model(tmp_path / "tiny.safetensors")))
    installed = Path(res["package_file"]).parent
    assert res["enabled"], res
    assert installed.parts[-3:] == ("extensions", "user_default", "blender_pastiche"), installed
    assert installed.is_relative_to(tmp_path / "blender_user")
    # The add-on uses the core bundled in the zip, not a development install.
    assert Path(res["core_dir"]) == installed / "pastiche_core", res["core_dir"]
    assert res["styles"] == ["ink", "ochre"] and not res["model_error"], res
    # The zip ships the default model and the panel offers its styles out of the box.
    default = load_model(REPO / "core" / "models" / "default.safetensors")
    assert res["bundled_styles"] == default.style_names and not res["bundled_error"], res
    assert res["operator"] == ["FINISHED"], res
    assert res["result_exists"] and res["result_size"] == [48, 32], res
    assert res["finite"] and res["input_untouched"], res
    assert res["mean_abs_diff"] is not None and res["mean_abs_diff"] > 0.01, res


INSTALLER = '''
    import shutil, subprocess
    ti = sys.modules[MODULE + ".worker.torch_installer"]
    worker_client = sys.modules[MODULE + ".worker.client"]
    prefs = bpy.context.preferences
    site = ti.site_dir()
    result["site_dir"] = str(site)
    result["variants"] = [v[0] for v in ti.VARIANTS]
    result["commands"] = {v[0]: ti.install_commands(v[0], Path("/target/torch_site.partial"), "PY")
                          for v in ti.VARIANTS}
    result["draw_hooked"] = ti.draw_preferences in sys.modules[MODULE + ".props.preferences"].DRAW_HOOKS

    # The preferences box, drawn into a recorder that checks every call against Blender's
    # own UILayout API (the real preferences window cannot be drawn headless).
    class Recorder:
        def __init__(self, calls):
            self.calls, self.enabled = calls, True
        def __getattr__(self, name):
            def call(*a, **kw):
                fn = bpy.types.UILayout.bl_rna.functions.get(name)
                params = set(fn.parameters.keys()) if fn else set()
                self.calls.append([name, kw.get("text", ""), sorted(set(kw) - params), fn is not None])
                return Recorder(self.calls) if name in ("box", "row", "column") else _Op()
            return call
    class _Op:
        pass
    def draw_calls():
        calls = []
        ti.draw_preferences(Recorder(calls), bpy.context)
        return calls

    # 1. Online access off (Blender's default): refused, nothing created, nothing run.
    prefs.system.use_online_access = False
    result["online_off"] = bpy.app.online_access
    try:
        bpy.ops.pastiche.install_torch(variant="CPU")
        result["offline_refusal"] = None
    except RuntimeError as exc:
        result["offline_refusal"] = str(exc)
    result["offline_job"] = ti.current_job() is not None
    result["offline_site_exists"] = site.exists() or site.with_name(site.name + ".partial").exists()
    result["draw_offline"] = draw_calls()

    # 2. Online: the real pip command line, with only the index swapped for a local folder
    #    of stand-in wheels (no download), through the real operator.
    prefs.system.use_online_access = True
    real_commands = ti.install_commands
    def offline_commands(variant, target, python=None):
        steps = []
        for label, argv in real_commands(variant, target, python):
            if "--index-url" in argv:
                i = argv.index("--index-url")
                argv = argv[:i] + argv[i + 2:]
            steps.append((label, argv + ["--no-index", "--find-links", args["wheels"]]))
        result.setdefault("ran", []).append(steps)
        return steps
    ti.install_commands = offline_commands
    result["install_op"] = sorted(bpy.ops.pastiche.install_torch(variant="CPU"))
    job = ti.current_job()
    result["job_state"], result["job_message"] = job.state, job.message
    result["installed_version"] = ti.installed_torch_version()
    result["partial_left"] = site.with_name(site.name + ".partial").exists()
    result["extra_paths"] = ti.extra_python_paths()
    result["worker_paths"] = list(worker_client._worker_paths)
    probe = subprocess.run([sys.executable, "-c", "import torch, safetensors; print(torch.__file__)"],
                           env=dict(os.environ, PYTHONPATH=os.pathsep.join(ti.extra_python_paths())),
                           capture_output=True, text=True)
    result["probe"] = probe.stdout.strip()
    result["draw_installed"] = draw_calls()

    # 3. A failing pip run keeps the previous install and leaves nothing half-done.
    def failing_commands(variant, target, python=None):
        return [("Installing PyTorch", [sys.executable, "-c",
                 "import sys; print('ERROR: No matching distribution found for torch'); sys.exit(1)"])]
    ti.install_commands = failing_commands
    try:
        bpy.ops.pastiche.install_torch(variant="CU128")
        result["fail_error"] = None
    except RuntimeError as exc:
        result["fail_error"] = str(exc)
    result["fail_state"] = ti.current_job().state
    result["after_fail_version"] = ti.installed_torch_version()
    result["after_fail_partial"] = site.with_name(site.name + ".partial").exists()
    ti.install_commands = real_commands

    # 4. A running install shows its progress and can be cancelled; nothing is kept.
    import time
    job = ti.InstallJob([("Installing PyTorch", [sys.executable, "-c",
                          "import time; print('Downloading torch-9.9.9.whl (1.0 MB)', flush=True); time.sleep(60)"])],
                        site)
    ti._job = job
    job.start()
    deadline = time.monotonic() + 30
    while "Downloading" not in job.message and time.monotonic() < deadline:
        time.sleep(0.05)
    result["draw_running"] = draw_calls()
    bpy.ops.pastiche.cancel_torch_install()
    job.wait(30)
    result["cancel_state"], result["cancel_message"] = job.state, job.message
    result["after_cancel_version"] = ti.installed_torch_version()
    result["after_cancel_partial"] = site.with_name(site.name + ".partial").exists()

    # 5. Remove: the folder goes and the worker no longer gets it.
    result["remove_op"] = sorted(bpy.ops.pastiche.remove_torch())
    result["after_remove_exists"] = site.exists()
    result["after_remove_worker_paths"] = list(worker_client._worker_paths)
'''


def fake_wheel(folder: Path, dist: str, version: str, files: dict[str, str]) -> None:
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{dist}-{version}-py3-none-any.whl", "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")


def test_torch_installer_offline_behaviour(tmp_path, extension_zip):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # Stand-ins named torch and safetensors, so the real pip command installs them offline.
    fake_wheel(wheels, "torch", "9.9.9", {"torch/__init__.py": "STAND_IN = True\n",
                                          "torch/version.py": "__version__ = '9.9.9'\n"})
    fake_wheel(wheels, "safetensors", "0.0.1", {"safetensors/__init__.py": ""})
    res = run_scenario(tmp_path, extension_zip, INSTALLER, wheels=str(wheels))
    site = Path(res["site_dir"])
    assert res["enabled"] and res["draw_hooked"], res
    # The add-on's own user folder for extensions, inside the temporary Blender user folder.
    assert site == tmp_path / "blender_user" / "extensions" / ".user" / "user_default" / "blender_pastiche" / "torch_site"

    # The command lines it would run: Blender's Python, pip, --target the staging folder.
    base = ["PY", "-m", "pip", "install", "--target", "/target/torch_site.partial"]
    cpu_torch, cpu_st = res["commands"]["CPU"]
    assert cpu_torch[1][:6] == base and "torch" in cpu_torch[1] and "--only-binary=:all:" in cpu_torch[1]
    assert cpu_torch[1][-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert res["commands"]["CU128"][0][1][-1] == "https://download.pytorch.org/whl/cu128"
    assert "--index-url" not in res["commands"]["DEFAULT"][0][1]  # PyPI's own build
    assert cpu_st[1][:6] == base and cpu_st[1][-1] == "safetensors" and "--index-url" not in cpu_st[1]

    # Offline: refused with a message that says how to allow it; nothing started.
    assert res["online_off"] is False
    assert res["offline_refusal"] and "Online access is disabled" in res["offline_refusal"], res
    assert not res["offline_job"] and not res["offline_site_exists"]

    # Online, through the operator: the real pip, offline wheels; installed and wired.
    assert res["install_op"] == ["FINISHED"], res
    assert res["job_state"] == "done" and res["installed_version"] == "9.9.9", res
    assert not res["partial_left"]
    assert res["extra_paths"] == [str(site)] and str(site) in res["worker_paths"]
    assert res["probe"] == str(site / "torch" / "__init__.py")  # a worker with those paths finds it

    # A failed install reports pip's error and keeps the previous install.
    assert res["fail_error"] and "No matching distribution found for torch" in res["fail_error"], res
    assert res["fail_state"] == "failed" and res["after_fail_version"] == "9.9.9"
    assert not res["after_fail_partial"]

    # The preferences box: only real UILayout calls and arguments; the right texts per state.
    for state in ("draw_offline", "draw_installed"):
        for name, _text, unknown_args, exists in res[state]:
            assert exists and not unknown_args, (state, name, unknown_args)
    offline_texts = " | ".join(c[1] for c in res["draw_offline"])
    assert "Not installed here" in offline_texts and "Online access is disabled" in offline_texts
    assert "Install PyTorch" in offline_texts
    installed_texts = " | ".join(c[1] for c in res["draw_installed"])
    assert "Installed: PyTorch 9.9.9" in installed_texts and "Reinstall PyTorch" in installed_texts
    assert "Online access is disabled" not in installed_texts
    running = res["draw_running"]
    assert all(exists and not unknown for _n, _t, unknown, exists in running), running
    assert any(c[0] == "progress" and c[1].startswith("Step 1/1") for c in running), running
    assert any("Installing PyTorch: Downloading torch-9.9.9.whl (1.0 MB)" in c[1] for c in running)
    assert res["cancel_state"] == "cancelled" and res["after_cancel_version"] == "9.9.9"
    assert not res["after_cancel_partial"]

    assert res["remove_op"] == ["FINISHED"] and not res["after_remove_exists"]
    assert str(site) not in res["after_remove_worker_paths"]

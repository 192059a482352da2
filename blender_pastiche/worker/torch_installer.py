"""Install PyTorch for the worker into the add-on's own user folder, only when asked.

PyTorch is large and platform-specific, so the extension does not ship it. The
preferences offer an Install PyTorch button: after the user clicks it (and only
while Blender's online access is allowed) Blender's own Python runs

    python -m pip install --target <extension user dir>/torch_site.partial torch [--index-url ...]
    python -m pip install --target <...>/torch_site.partial safetensors

in a background thread; a timer redraws the preferences with its progress. The
folder is renamed to torch_site only when every step succeeded, so a cancelled or
failed download never leaves a half-installed torch behind. Blender's own process
never imports it: the worker process gets the folder on its PYTHONPATH through
``extra_python_paths()``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from ..props import preferences
from ..support.package import ADDON_PACKAGE
from . import client as worker_client

SITE_DIR_NAME = "torch_site"
PYTORCH_INDEX = "https://download.pytorch.org/whl/"
# (identifier, label, description, index suffix or None for PyPI's default build).
VARIANTS = (
    ("DEFAULT", "Platform default",
     "PyPI's default build: CUDA on Linux, CPU on Windows, Metal (MPS) on macOS", None),
    ("CPU", "CPU only", "Smallest download (about 200 MB); works everywhere, slowest", "cpu"),
    ("CU126", "NVIDIA CUDA 12.6", "For NVIDIA drivers 560 or newer (about 3 GB)", "cu126"),
    ("CU128", "NVIDIA CUDA 12.8", "For NVIDIA drivers 570 or newer, RTX 50 series (about 3 GB)", "cu128"),
    ("CU130", "NVIDIA CUDA 13.0", "For NVIDIA drivers 580 or newer (about 3 GB)", "cu130"),
)
# The worker needs these beyond Blender's own Python, which already ships numpy.
PACKAGES = (("PyTorch", "torch"), ("safetensors", "safetensors"))
PIP_OPTIONS = ("--no-input", "--disable-pip-version-check", "--no-warn-script-location",
               "--only-binary=:all:", "--progress-bar", "off")


# -- where things go -------------------------------------------------------------------------
def _package() -> str:
    return ADDON_PACKAGE


def user_dir() -> Path:
    """The add-on's writable folder: the extension user directory, kept across upgrades.

    Loaded from source (not as an extension), it falls back to Blender's user
    datafiles folder so development installs behave the same way."""
    try:
        return Path(bpy.utils.extension_path_user(_package(), create=True))
    except ValueError:  # not installed as an extension
        return Path(bpy.utils.user_resource("DATAFILES", path="pastiche", create=True))


def site_dir() -> Path:
    return user_dir() / SITE_DIR_NAME


def installed_torch_version(folder: Path | None = None) -> str | None:
    """The version of the torch installed in ``folder`` (read from its files, not imported)."""
    folder = site_dir() if folder is None else folder
    version_file = folder / "torch" / "version.py"
    if not version_file.is_file():
        return None
    found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", version_file.read_text("utf-8", "replace"),
                      re.MULTILINE)
    return found.group(1) if found else "unknown version"


def extension_wheels_dir() -> Path:
    """Where Blender installs the wheels a self-contained extension build bundles."""
    version = "python{:d}.{:d}".format(*sys.version_info[:2])
    return Path(bpy.utils.user_resource("EXTENSIONS")) / ".local" / "lib" / version / "site-packages"


def extra_python_paths() -> list[str]:
    """Folders to put on the worker's PYTHONPATH when it runs on Blender's own Python.

    The PyTorch this installer put in the add-on's user folder, and the wheels of a
    self-contained build; each only when it holds torch. Not for a user-chosen Python
    environment (that one brings its own torch, possibly for another Python version)."""
    paths = []
    for folder in (site_dir(), extension_wheels_dir()):
        if (folder / "torch" / "__init__.py").is_file():
            paths.append(str(folder))
    return paths


# -- what it runs ----------------------------------------------------------------------------
def index_url(variant: str) -> str | None:
    for ident, _label, _desc, suffix in VARIANTS:
        if ident == variant:
            return PYTORCH_INDEX + suffix if suffix else None
    raise ValueError(f"unknown PyTorch variant {variant!r}; use one of {', '.join(v[0] for v in VARIANTS)}")


def install_commands(variant: str, target: Path, python: str | None = None) -> list[tuple[str, list[str]]]:
    """(step description, argv) for each pip run; torch comes from the chosen PyTorch index,
    safetensors from PyPI (the PyTorch indexes do not carry it)."""
    python = python or sys.executable
    steps = []
    for label, requirement in PACKAGES:
        argv = [python, "-m", "pip", "install", "--target", str(target), *PIP_OPTIONS, requirement]
        url = index_url(variant) if requirement == "torch" else None
        if url:
            argv += ["--index-url", url]
        steps.append((f"Installing {label}", argv))
    return steps


def pip_available() -> bool:
    """Blender's Python (this process's) normally bundles pip; check without running it."""
    import importlib.util

    return importlib.util.find_spec("pip") is not None


def start_install(variant: str, python: str | None = None) -> InstallJob:
    """Start installing ``variant`` into site_dir() in a background thread."""
    job = InstallJob([], site_dir())
    job.steps = install_commands(variant, job.partial, python)
    if python is None and not pip_available():
        job.steps.insert(0, ("Installing pip", [sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"]))
    job.start()
    return job


def online_access_refusal() -> str | None:
    """Why the installer may not go online now, or None when it may."""
    if not bpy.app.online_access:
        return ("Online access is disabled: allow it in Preferences > System > Network "
                "(or start Blender without --offline-mode), or install PyTorch yourself and "
                "set Worker Python in these preferences")
    return None


# -- the background job ----------------------------------------------------------------------
@dataclass
class InstallJob:
    """Runs the pip steps in a thread into ``<target>.partial``, then renames it to ``target``."""

    steps: list[tuple[str, list[str]]]
    target: Path
    state: str = "idle"  # idle, running, done, failed, cancelled
    message: str = ""
    step_index: int = 0
    lines: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    _process: subprocess.Popen | None = None
    _cancel: bool = False
    _thread: threading.Thread | None = None

    @property
    def partial(self) -> Path:
        return self.target.with_name(self.target.name + ".partial")

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def fraction(self) -> float:
        return 1.0 if self.state == "done" else self.step_index / max(1, len(self.steps))

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started if self.started else 0.0

    def start(self) -> None:
        if self.running:
            raise RuntimeError("an installation is already running")
        self.state, self.started, self.message = "running", time.monotonic(), "Starting"
        self._thread = threading.Thread(target=self._run, name="pastiche-torch-install", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> str:
        if self._thread:
            self._thread.join(timeout)
        return self.state

    def cancel(self) -> None:
        self._cancel = True
        if self._process and self._process.poll() is None:
            self._process.terminate()

    def _run(self) -> None:
        try:
            shutil.rmtree(self.partial, ignore_errors=True)
            self.partial.mkdir(parents=True)
            for index, (label, argv) in enumerate(self.steps):
                self.step_index, self.message = index, label
                if self._cancel:
                    return self._finish("cancelled", "Cancelled; nothing was installed")
                code = self._run_step(argv)
                if self._cancel:
                    return self._finish("cancelled", "Cancelled; nothing was installed")
                if code != 0:
                    return self._finish("failed", f"{label} failed (pip exit code {code}): {self._last_error()}")
            self.step_index = len(self.steps)
            self._replace_target()
            version = installed_torch_version(self.target) or "no torch found"
            self._finish("done", f"Installed PyTorch {version} in {self.target}")
        except Exception as exc:  # reported in the UI, never raised into Blender's main thread
            self._finish("failed", f"Installation failed: {exc}")

    def _run_step(self, argv: list[str]) -> int:
        self.lines.append("$ " + " ".join(argv))
        env = dict(os.environ, PIP_NO_INPUT="1")
        self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, text=True, errors="replace", env=env)
        stdout = self._process.stdout
        assert stdout is not None  # stdout=PIPE above
        for line in stdout:
            line = line.rstrip()
            if line:
                self.lines.append(line)
                del self.lines[:-200]  # keep the tail only
                self.message = f"{self.steps[self.step_index][0]}: {_summarize(line)}"
        return self._process.wait()

    def _replace_target(self) -> None:
        old = self.target.with_name(self.target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.target.exists():
            os.replace(self.target, old)
        os.replace(self.partial, self.target)
        shutil.rmtree(old, ignore_errors=True)

    def _last_error(self) -> str:
        for line in reversed(self.lines):
            if "error" in line.lower():
                return line.strip()
        return self.lines[-1].strip() if self.lines else "no output"

    def _finish(self, state: str, message: str) -> None:
        if state != "done":
            shutil.rmtree(self.partial, ignore_errors=True)
        self.state, self.message, self.finished = state, message, time.monotonic()


def _summarize(line: str) -> str:
    """pip's lines, shortened for one row of the preferences."""
    line = line.strip()
    found = re.match(r"(Downloading|Collecting|Installing collected packages:|Successfully installed)\s*(.*)", line)
    if found:
        what = found.group(2)
        what = re.sub(r"https?://\S*/", "", what)  # file names, not URLs
        return f"{found.group(1)} {what}"[:120]
    return line[:120]


_job: InstallJob | None = None


def current_job() -> InstallJob | None:
    return _job


def _redraw_preferences() -> None:
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


def wire_worker_paths() -> None:
    """Tell the worker client where torch is; a running worker restarts to pick it up."""
    worker_client.remove_worker_path(site_dir())
    for path in extra_python_paths():
        worker_client.add_worker_path(path)


def _after_job() -> None:
    """On the main thread once a job ended: use what it installed."""
    if _job and _job.state == "done":
        wire_worker_paths()
        worker_client.restart()


def _poll_job() -> float | None:
    """Timer: redraw while the job runs; once it ended, wire the result and stop."""
    _redraw_preferences()
    if _job and _job.running:
        return 0.5
    _after_job()
    return None


# -- operators -------------------------------------------------------------------------------
class PASTICHE_OT_install_torch(bpy.types.Operator):
    """Download and install PyTorch for the Pastiche worker into the add-on's user folder"""

    bl_idname = "pastiche.install_torch"
    bl_label = "Install PyTorch"
    bl_options = {"REGISTER", "INTERNAL"}

    variant: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Build", items=[v[:3] for v in VARIANTS], default="DEFAULT",
        description="Which PyTorch build to install")

    def execute(self, context):
        global _job
        refusal = online_access_refusal()
        if refusal:
            self.report({"ERROR"}, refusal)
            return {"CANCELLED"}
        if _job and _job.running:
            self.report({"WARNING"}, "PyTorch is already being installed")
            return {"CANCELLED"}
        if installed_torch_version():
            worker_client.restart()  # Windows cannot replace DLLs a running worker has loaded
        _job = start_install(self.variant)
        if bpy.app.background:  # scripted install (blender -b): no UI to poll, so wait here
            _job.wait()
            _after_job()
            if _job.state == "done":
                self.report({"INFO"}, _job.message)
                return {"FINISHED"}
            self.report({"ERROR"}, _job.message)
            return {"CANCELLED"}
        bpy.app.timers.register(_poll_job, first_interval=0.5)
        self.report({"INFO"}, "Installing PyTorch in the background; progress is shown in the preferences")
        return {"FINISHED"}


class PASTICHE_OT_cancel_torch_install(bpy.types.Operator):
    """Stop the running PyTorch installation (nothing is kept)"""

    bl_idname = "pastiche.cancel_torch_install"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    def execute(self, context):
        if _job and _job.running:
            _job.cancel()
        return {"FINISHED"}


class PASTICHE_OT_remove_torch(bpy.types.Operator):
    """Delete the PyTorch this add-on installed (frees its disk space)"""

    bl_idname = "pastiche.remove_torch"
    bl_label = "Remove Installed PyTorch"
    bl_options = {"INTERNAL"}

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        if _job and _job.running:
            self.report({"ERROR"}, "An installation is running; cancel it first")
            return {"CANCELLED"}
        folder = site_dir()
        if not folder.exists():
            self.report({"INFO"}, "No installed PyTorch to remove")
            return {"CANCELLED"}
        shutil.rmtree(folder)
        wire_worker_paths()
        worker_client.restart()
        self.report({"INFO"}, f"Removed {folder}; restart the worker to use another Python")
        return {"FINISHED"}


# -- preferences UI --------------------------------------------------------------------------
def draw_preferences(layout, context) -> None:
    """The PyTorch box in the add-on preferences (called from preferences.py's draw hook)."""
    box = layout.box()
    box.label(text="PyTorch for the worker", icon="PACKAGE")
    version = installed_torch_version()
    if version:
        box.label(text=f"Installed: PyTorch {version}", icon="CHECKMARK")
        box.label(text=f"in {site_dir()}")
        if preferences.get().worker_python.strip():
            # Built for Blender's Python version: never put on a chosen Python's path.
            box.label(text="Not used while Worker Python is set: clear it to use this PyTorch",
                      icon="INFO")
    else:
        box.label(text="Not installed here. Install it below, or set Worker Python to an "
                       "environment that has torch.")
    job = _job
    if job and job.running:
        row = box.row()
        row.progress(factor=job.fraction, type="BAR",
                     text=f"Step {job.step_index + 1}/{len(job.steps)}, {job.elapsed():.0f} s")
        box.label(text=job.message[:150])
        box.operator(PASTICHE_OT_cancel_torch_install.bl_idname, icon="CANCEL")
        return
    if job and job.state in ("done", "failed", "cancelled"):
        icon = {"done": "CHECKMARK", "failed": "ERROR", "cancelled": "INFO"}[job.state]
        col = box.column(align=True)
        for i, chunk in enumerate(_wrap(job.message, 110)):
            col.label(text=chunk, icon=icon if i == 0 else "BLANK1")
    wm = context.window_manager
    row = box.row(align=True)
    row.prop(wm, "pastiche_torch_variant", text="")
    refusal = online_access_refusal()
    sub = row.row(align=True)
    sub.enabled = refusal is None
    op = sub.operator(PASTICHE_OT_install_torch.bl_idname,
                      text="Reinstall PyTorch" if version else "Install PyTorch", icon="IMPORT")
    op.variant = wm.pastiche_torch_variant
    if refusal:
        col = box.column(align=True)
        col.label(text="Online access is disabled, so Pastiche will not download anything.", icon="INFO")
        col.label(text="Allow it in Preferences > System > Network to use this button.", icon="BLANK1")
    if version:
        box.operator(PASTICHE_OT_remove_torch.bl_idname, icon="TRASH")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line] if line else lines
def variant_property() -> Any:
    """The WindowManager property holding the build the Install PyTorch button downloads."""
    return bpy.props.EnumProperty(
        name="PyTorch build", items=[v[:3] for v in VARIANTS], default="DEFAULT",
        description="Which PyTorch build the Install PyTorch button downloads")


def stop() -> None:
    """Cancel a running install and forget the installed torch's paths (at unregister)."""
    if _job and _job.running:
        _job.cancel()
    for path in extra_python_paths():
        worker_client.remove_worker_path(path)
    if bpy.app.timers.is_registered(_poll_job):
        bpy.app.timers.unregister(_poll_job)

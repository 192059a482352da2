"""The worker's configuration, read from the add-on preferences.

client.py never imports bpy; the registry installs from_preferences() as its
config provider.
"""

from __future__ import annotations

import bpy

from ..props import preferences
from . import client as worker_client


def from_preferences() -> worker_client.WorkerConfig:
    prefs = preferences.get()
    # Empty stays empty: the worker client then runs Blender's own Python and
    # gives it the PyTorch the installer put in the add-on's folder.
    python = bpy.path.abspath(prefs.worker_python) if prefs.worker_python.strip() else ""
    return worker_client.WorkerConfig(python=python, keep_alive=bool(prefs.keep_worker),
                                      response_timeout=float(prefs.response_timeout))

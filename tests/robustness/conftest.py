"""Helpers for the fault and bad-input suite: real faults, injected for real.

Every CLI case runs `pastiche` in process through main() (an uncaught exception
would fail the test with its traceback) or, where the fault needs another user or
a small file system, as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pastiche_core.cli import main

from ..model_factory import write_randomized_model

NOBODY = 65534


@pytest.fixture
def tiny_model(tmp_path):
    return write_randomized_model(tmp_path / "models" / "tiny.safetensors", ("a", "b"))


def png(path: Path, size=(24, 32), seed=0, alpha=False) -> Path:
    r = np.random.default_rng(seed)
    a = (r.random((size[0], size[1], 4 if alpha else 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Run `pastiche ARGV` in process; returns (exit status, stderr)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def run_cli_subprocess(*argv, user: int | None = None, preexec=None, cwd=None) -> subprocess.CompletedProcess:
    """`python -m pastiche_core ARGV` in a child process, optionally as another user."""
    cmd = [sys.executable, "-m", "pastiche_core", *map(str, argv)]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env,
                          preexec_fn=preexec, cwd=cwd)


def can_switch_user() -> bool:
    return os.geteuid() == 0 and Path("/usr/bin/setpriv").exists()


def world_readable(*paths: Path) -> None:
    """Let an unprivileged child reach pytest's tmp folders (created 0700)."""
    for p in paths:
        for parent in [p, *p.parents]:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            parent.chmod(mode | 0o755 if parent.is_dir() else mode | 0o644)

"""The command line under faults: one-line errors, batches that go on, nothing computed in vain."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pastiche_core import save_model
from pastiche_core.io.atomic import TEMP_PREFIX

from ..model_factory import randomized_model
from .conftest import NOBODY, can_switch_user, png, run_cli, run_cli_subprocess, world_readable

needs_root = pytest.mark.skipif(not can_switch_user(), reason="needs root and setpriv to run as nobody")


def _one_line(err: str) -> bool:
    lines = [ln for ln in err.splitlines() if ln.startswith("pastiche: error")]
    return len(lines) >= 1 and "Traceback" not in err


@needs_root
def test_unreadable_input_is_one_line_error_naming_it(tiny_model, tmp_path):
    # root reads any file, so the run is made as the unprivileged user nobody
    src = png(tmp_path / "in" / "secret.png")
    ok = png(tmp_path / "in" / "fine.png", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    world_readable(tiny_model, ok, out)
    src.chmod(0o000)
    out.chmod(0o777)
    r = run_cli_subprocess("stylize", tmp_path / "in", "--out", out, "--model", tiny_model, user=NOBODY)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{src}: cannot read {src}: permission denied" in r.stderr
    assert (out / "fine.png").is_file()  # the readable one was still made


@needs_root
def test_unwritable_output_folder_fails_before_computing(tiny_model, tmp_path):
    src = png(tmp_path / "in" / "a.png")
    out = tmp_path / "locked"
    out.mkdir()
    world_readable(tiny_model, src, out)
    out.chmod(0o555)
    r = run_cli_subprocess("stylize", src, "--out", out, "--model", tiny_model, user=NOBODY)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot write to the output folder {out}: Permission denied" in r.stderr
    assert "image(s) on" not in r.stderr  # no model loaded, nothing computed


def test_out_naming_an_existing_file_is_refused(tiny_model, tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    code, err = run_cli(capsys, "stylize", png(tmp_path / "a.png"), "--out", tmp_path / "taken",
                        "--model", tiny_model)
    assert code == 2 and "is a file, not a folder" in err


def test_output_name_that_is_a_folder_is_refused(tiny_model, tmp_path, capsys):
    (tmp_path / "out" / "a.png").mkdir(parents=True)
    code, err = run_cli(capsys, "stylize", png(tmp_path / "in" / "a.png"), "--out", tmp_path / "out",
                        "--model", tiny_model, "--overwrite")
    assert code == 2 and "a folder of that name is in the way" in err


def _mount_tmpfs(path) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk_is_one_line_error_and_leaves_no_partial_file(tmp_path):
    model = save_model(randomized_model(("a", "b")), tmp_path / "m.safetensors")
    # 300 x 300 random pixels: about 270 KB per PNG, so the 1 MB disk fills on the fourth.
    inputs = [png(tmp_path / "in" / f"{i}.png", size=(300, 300), seed=i) for i in range(6)]
    disk = tmp_path / "disk"
    if _mount_tmpfs(disk):
        try:
            r = run_cli_subprocess("stylize", tmp_path / "in", "--out", disk, "--model", model)
            left = sorted(p.name for p in disk.iterdir())
        finally:
            subprocess.run(["umount", str(disk)], check=True)
        assert "No space left on device" in r.stderr and "the disk is full: stopping" in r.stderr
    else:  # no tmpfs: an equivalent limit on file size for the child process
        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        r = run_cli_subprocess("stylize", tmp_path / "in", "--out", disk, "--model", model, preexec=limit)
        left = sorted(p.name for p in disk.iterdir())
        assert "File too large" in r.stderr
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert not any(n.startswith(TEMP_PREFIX) for n in left), left  # no half-written file
    assert len(left) < len(inputs) and f"of {len(inputs)} image(s) failed" in r.stderr


def test_one_bad_file_does_not_stop_a_folder_run(tiny_model, tmp_path, capsys):
    for i in range(3):
        png(tmp_path / "in" / f"{i}.png", seed=i)
    (tmp_path / "in" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, err = run_cli(capsys, "stylize", tmp_path / "in", "--out", tmp_path / "out", "--model", tiny_model)
    assert code == 2
    assert f"pastiche: error: {tmp_path / 'in' / '1.png'}: cannot read 1.png" in err
    assert "1 of 3 image(s) failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "2.png"]


def test_skip_existing_resumes_a_run_without_touching_finished_outputs(tiny_model, tmp_path, capsys):
    for i in range(3):
        png(tmp_path / "in" / f"{i}.png", seed=i)
    (tmp_path / "out").mkdir()
    done = png(tmp_path / "out" / "0.png", seed=9)
    before = done.read_bytes()
    code, err = run_cli(capsys, "stylize", tmp_path / "in", "--out", tmp_path / "out", "--model", tiny_model)
    assert code == 2 and "--skip-existing" in err  # refused as before, with the hint
    code, err = run_cli(capsys, "stylize", tmp_path / "in", "--out", tmp_path / "out", "--model", tiny_model,
                        "--skip-existing")
    assert code == 0 and "skipping 1 image(s)" in err
    assert done.read_bytes() == before
    assert (tmp_path / "out" / "1.png").is_file() and (tmp_path / "out" / "2.png").is_file()
    code, err = run_cli(capsys, "stylize", tmp_path / "in", "--out", tmp_path / "out", "--model", tiny_model,
                        "--skip-existing", "--overwrite")
    assert code == 2 and "contradict" in err


def test_killed_writer_leaves_a_temporary_that_is_never_taken_for_an_input(tiny_model, tmp_path, capsys):
    # A real kill -9 in the middle of an atomic write: the child stops inside atomic_path.
    folder = tmp_path / "frames"
    png(folder / "a.png")
    script = ("import os, signal\n"
              "from pastiche_core.io.atomic import atomic_path\n"
              f"with atomic_path({str(folder / 'b.png')!r}, suffix='.png') as tmp:\n"
              "    tmp.write_bytes(b'\\x89PNG half')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert r.returncode == -signal.SIGKILL
    leftovers = [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert len(leftovers) == 1 and leftovers[0].suffix == ".png"
    out = tmp_path / "out"
    code, err = run_cli(capsys, "stylize", folder, "--out", out, "--model", tiny_model)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # the temporary was skipped
    # When the folder is later an output folder, a stale temporary (over an hour old) is removed.
    old = time.time() - 7200
    os.utime(leftovers[0], (old, old))
    code, _ = run_cli(capsys, "stylize", png(tmp_path / "x.png"), "--out", folder, "--model", tiny_model)
    assert code == 0 and not leftovers[0].exists()


def test_info_prints_escape_codes_in_style_names_harmlessly(tmp_path, capsys):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from pastiche_core import ModelFileError, Style, new_model

    with pytest.raises(ModelFileError, match="control characters"):
        new_model([Style("\x1b[2Jevil")])
    good = save_model(randomized_model(("a", "b")), tmp_path / "m.safetensors")
    with safe_open(str(good), "pt") as f:  # an older or hostile file: the name is in it already
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    meta["styles"] = json.dumps([{"name": "\x1b]0;pwned\x07title"}, {"name": "b"}])
    del meta["tensor_sha256"]
    bad = tmp_path / "escapes.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    from pastiche_core.cli import main

    assert main(["info", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07title" in out


def test_style_names_with_equals_signs_can_be_selected(tmp_path, capsys):
    model = save_model(randomized_model(("mix=old", "b", "ratio=2")), tmp_path / "eq.safetensors")
    src = png(tmp_path / "a.png")
    for style in ("mix=old", "mix=old=0.5", "ratio=2", "ratio=2=1"):
        code, err = run_cli(capsys, "stylize", src, "--out", tmp_path / "o", "--model", model,
                            "--style", style, "--style", "b=0.5", "--overwrite")
        assert code == 0, (style, err)
        picked = "ratio=2" if style.startswith("ratio") else "mix=old"
        assert f"{picked}=" in err.split("mix ", 1)[1], err
    code, err = run_cli(capsys, "stylize", src, "--out", tmp_path / "o", "--model", model,
                        "--style", "mix=abc", "--overwrite")
    assert code == 2 and "no style has that name" in err


def test_nan_error_in_a_folder_run_names_the_file(tmp_path, capsys):
    import torch

    model = randomized_model(("a", "b"))
    with torch.no_grad():
        model.network.state_dict()["down.0.conv.weight"].view(-1)[0] = 1e5  # overflows in fp16
    path = save_model(model, tmp_path / "m.safetensors")
    for i in range(2):
        png(tmp_path / "in" / f"{i}.png", seed=i)
    code, err = run_cli(capsys, "stylize", tmp_path / "in", "--out", tmp_path / "out", "--model", path,
                        "--device", "cpu", "--precision", "fp16")
    assert code == 2 and "2 of 2 image(s) failed" in err
    for i in range(2):
        assert f"{tmp_path / 'in' / f'{i}.png'}: the network produced" in err
    assert np.all([not (tmp_path / "out" / f"{i}.png").exists() for i in range(2)])

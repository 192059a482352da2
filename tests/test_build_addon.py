"""build_addon.py: the extension zip's contents, its manifest, and Blender's validator."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

import build_addon

REPO = Path(__file__).resolve().parents[1]

VALIDATOR = build_addon.find_blender_ext()
needs_validator = pytest.mark.skipif(VALIDATOR is None, reason="bpy (Blender's extension tool) not installed")


def tiny_model_file(path: Path, trained: bool = True) -> Path:
    """A tiny random model; `trained` only fills in the training summary the build checks."""
    torch = pytest.importorskip("torch")
    from pastiche_core import Architecture, Style, new_model, save_model

    model = new_model([Style("ink", {"artist": "Ann Ink", "title": "Study", "year": "1900",
                                     "licence": "public domain"})],
                      Architecture(num_styles=1, channels=(8, 16, 32), num_residual=1), seed=0)
    if trained:
        model.training = {"steps": 10, "note": "test model"}
    save_model(model, path, dtype=torch.float16)
    return path


def fake_wheel(folder: Path, name: str) -> Path:
    """A minimal, valid pure-Python wheel (so no download is needed to test bundling)."""
    dist, version = name, "0.1"
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}/__init__.py", "VALUE = 42\n")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Run the real command line once: `python build_addon.py` into a temporary folder."""
    tmp = tmp_path_factory.mktemp("build")
    done = subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--output-dir", str(tmp / "dist"),
                           "--build-dir", str(tmp / "stage"), "--require-validation"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    zips = list((tmp / "dist").glob("*.zip"))
    assert len(zips) == 1, zips
    return zips[0], done.stdout


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_zip_is_named_after_the_project_version(built):
    path, output = built
    version = build_addon.project_version()
    assert path.name == f"blender_pastiche-{version}.zip"
    assert f"built {path}" in output and " MB zipped" in output  # says what it built and its size


def test_zip_holds_addon_bundled_core_and_licences(built):
    names = set(zip_names(built[0]))
    for required in ("blender_manifest.toml", "__init__.py", "LICENSE", "CREDITS.md", "support/core_files.py",
                     "worker/torch_installer.py", "pastiche_core/__init__.py", "pastiche_core/ipc/worker.py",
                     "pastiche_core/inference/stylizer.py", "pastiche_core/models/__init__.py"):
        assert required in names, f"{required} missing from the zip"
    # Every add-on module in the source tree is shipped.
    for src in (REPO / "blender_pastiche").glob("*.py"):
        assert src.name in names
    for src in (REPO / "core").glob("*.py"):
        assert f"pastiche_core/{src.name}" in names
    with zipfile.ZipFile(built[0]) as zf:
        assert "GNU GENERAL PUBLIC LICENSE" in zf.read("LICENSE").decode()
        assert "Version 3" in zf.read("LICENSE").decode()
        assert "CC BY 4.0" in zf.read("CREDITS.md").decode()


def test_zip_holds_no_caches_tests_or_shared_assets(built):
    for name in zip_names(built[0]):
        parts = name.split("/")
        assert "__pycache__" not in parts and not name.endswith((".pyc", ".pyo")), name
        assert "tests" not in parts and not parts[-1].startswith("test_"), name
        assert not any(p.startswith(".") for p in parts), name
        assert not name.lower().endswith((".jpg", ".jpeg", ".png", ".exr", ".npy", ".pt", ".pth", ".ckpt")), name
        assert "shared" not in parts and "assets" not in parts, name
        if name.endswith(".safetensors"):  # no VGG weights, checkpoints or test models
            assert name == "pastiche_core/models/default.safetensors", name
    with zipfile.ZipFile(built[0]) as zf:
        for info in zf.infolist():  # only the default model may be large
            assert info.file_size < 2_000_000 or info.filename.endswith("default.safetensors"), info
    shared = REPO.parent / "shared" / "assets"
    if shared.is_dir():  # extra check where the shared assets exist; the checks above stand alone
        asset_names = {p.name for p in shared.rglob("*") if p.is_file()}
        leaked = {n.rsplit("/", 1)[-1] for n in zip_names(built[0])} & asset_names
        assert not leaked - {"__init__.py", "LICENSE", "README.md"}, leaked


def test_default_model_presence_is_reported(built):
    names = zip_names(built[0])
    if (REPO / "core" / "models" / "default.safetensors").is_file():
        assert "pastiche_core/models/default.safetensors" in names
        assert "included" in built[1]
    else:
        assert "pastiche_core/models/default.safetensors" not in names
        assert "WITHOUT a default model" in built[1]


def test_manifest_in_zip_matches_project(built):
    with zipfile.ZipFile(built[0]) as zf:
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    assert manifest["id"] == "blender_pastiche" and manifest["id"].isidentifier()
    assert manifest["type"] == "add-on"
    assert manifest["version"] == build_addon.project_version()
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    major, minor, _patch = (int(x) for x in manifest["blender_version_min"].split("."))
    assert (major, minor) >= (4, 2)
    assert set(manifest["permissions"]) == {"files", "network"}


@needs_validator
def test_blender_validator_accepts_zip_and_source_folder(built):
    for target in (built[0], REPO / "blender_pastiche"):
        out = build_addon.run_blender_ext(VALIDATOR, "validate", str(target))
        assert "success" in out.lower(), out


@needs_validator
def test_blender_validator_rejects_a_broken_manifest(tmp_path):
    """The validation step is real: a manifest Blender refuses makes it fail."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "__init__.py").write_text("")
    text = (REPO / "blender_pastiche" / "blender_manifest.toml").read_text()
    (bad / "blender_manifest.toml").write_text(text.replace('id = "blender_pastiche"', 'id = "blender-pastiche"'))
    with pytest.raises(build_addon.BuildError, match="id"):
        build_addon.run_blender_ext(VALIDATOR, "validate", str(bad))


def test_versions_must_agree():
    manifest = build_addon.read_manifest()
    assert build_addon.check_versions(manifest) == build_addon.project_version()
    with pytest.raises(build_addon.BuildError, match="version mismatch.*pyproject.toml"):
        build_addon.check_versions(dict(manifest, version="9.9.9"))
    with pytest.raises(build_addon.BuildError, match="manifest id"):
        build_addon.check_versions(dict(manifest, id="pastiche"))


def test_trained_default_model_is_bundled_with_its_credits(tmp_path):
    model = tiny_model_file(tmp_path / "trained.safetensors")
    logs: list[str] = []
    out = build_addon.build(tmp_path / "dist", tmp_path / "stage", default_model=model, log=logs.append)
    with zipfile.ZipFile(out) as zf:
        assert zf.read("pastiche_core/models/default.safetensors") == model.read_bytes()
        credits = zf.read("CREDITS.md").decode()
    assert "`ink`: Ann Ink, Study, 1900 (licence: public domain)" in credits
    assert any("included" in line for line in logs)


def test_untrained_default_model_is_refused(tmp_path):
    model = tiny_model_file(tmp_path / "untrained.safetensors", trained=False)
    with pytest.raises(build_addon.BuildError, match="untrained"):
        build_addon.build(tmp_path / "dist", tmp_path / "stage", default_model=model, log=lambda _m: None)
    assert not list(tmp_path.rglob("*.zip"))


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    junk = tmp_path / "default.safetensors"
    junk.write_bytes(b"\x80\x04K\x01.")  # a pickle, not safetensors
    with pytest.raises(build_addon.BuildError, match="not a safetensors file"):
        build_addon.build(tmp_path / "dist", tmp_path / "stage", default_model=junk, log=lambda _m: None)


@needs_validator
def test_platform_build_bundles_wheels_and_declares_them(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake_wheel(wheels, "pastichetestdep")
    fake_wheel(wheels, "numpy")  # Blender ships numpy: never bundled
    out = build_addon.build(tmp_path / "dist", tmp_path / "stage", platform="linux-x64",
                            wheels=build_addon.collect_wheels(wheels), log=lambda _m: None)
    assert out.name.endswith("-linux_x64.zip")
    names = zip_names(out)
    assert "wheels/pastichetestdep-0.1-py3-none-any.whl" in names
    assert not any(n.startswith("wheels/numpy") for n in names)
    with zipfile.ZipFile(out) as zf:
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    assert manifest["platforms"] == ["linux-x64"]
    assert manifest["wheels"] == ["./wheels/pastichetestdep-0.1-py3-none-any.whl"]
    assert "success" in build_addon.run_blender_ext(VALIDATOR, "validate", str(out)).lower()


def test_wheels_without_platform_are_refused(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--wheels", str(tmp_path),
                           "--output-dir", str(tmp_path / "dist"), "--build-dir", str(tmp_path / "stage")],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 1 and "need --platform" in done.stderr


def test_without_blenders_tool_it_builds_and_says_validation_was_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(build_addon, "find_blender_ext", lambda explicit=None: None)
    logs: list[str] = []
    out = build_addon.build(tmp_path / "dist", tmp_path / "stage", log=logs.append)
    assert any("validation SKIPPED" in line for line in logs)
    names = zip_names(out)
    assert "blender_manifest.toml" in names and "pastiche_core/__init__.py" in names
    with pytest.raises(build_addon.BuildError, match="not found"):
        build_addon.build(tmp_path / "dist", tmp_path / "stage", require_validation=True, log=logs.append)

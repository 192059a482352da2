#!/usr/bin/env python3
"""Build the Pastiche Blender extension: ``dist/blender_pastiche-<version>.zip``.

    python build_addon.py                      # the add-on, the bundled core, licences
    python build_addon.py --platform linux-x64 --wheels DIR
                                               # self-contained: bundles the wheels in DIR
    python build_addon.py --platform linux-x64 --download-wheels
                                               # the same, fetching the wheels with pip first

The zip holds blender_pastiche/ (the add-on), the core copied to
blender_pastiche/pastiche_core/ (imported relatively, so it cannot clash with
another install), core/models/default.safetensors when it exists, LICENSE and
CREDITS.md. It is built and then validated with Blender's own extension tool
(bl_pkg/cli/blender_ext.py from the bpy module or a Blender install); without
that tool the zip is written by this script and validation is reported skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent
ADDON_SRC = REPO / "blender_pastiche"
CORE_SRC = REPO / "core"
EXTENSION_ID = "blender_pastiche"
BUNDLED_CORE = "pastiche_core"
DEFAULT_MODEL = "default.safetensors"
MANIFEST = "blender_manifest.toml"
TOP_LEVEL_FILES = ("LICENSE", "CREDITS.md")
# Blender's extension platform names (manifest `platforms`), mapped to pip's tags.
PLATFORM_TAGS = {
    "windows-x64": ["win_amd64"],
    "windows-arm64": ["win_arm64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_14_0_arm64"],
    "macos-x64": ["macosx_10_13_x86_64", "macosx_10_15_x86_64"],
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64"],
}
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Wheels the worker needs beyond Blender's own Python (which already ships numpy).
BUNDLED_REQUIREMENTS = ("torch", "safetensors")
# Never copied into the extension, wherever they appear.
EXCLUDED_DIRS = {"__pycache__", "tests", ".pytest_cache", ".ruff_cache", ".mypy_cache", BUNDLED_CORE}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".zip", ".tmp", ".blend1", ".orig", ".rej")


class BuildError(Exception):
    """The package cannot be built as asked; the message says why."""


# -- versions and manifest -------------------------------------------------------------------
def project_version() -> str:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["version"]


def core_version() -> str:
    # Read, not imported: importing the core would need torch in the build environment.
    text = (CORE_SRC / "version.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if not found:
        raise BuildError("core/version.py has no __version__")
    return found.group(1)


def read_manifest(path: Path = ADDON_SRC / MANIFEST) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def check_versions(manifest: dict) -> str:
    """One version everywhere, or a clear error naming the files that disagree."""
    versions = {
        "pyproject.toml": project_version(),
        f"blender_pastiche/{MANIFEST}": manifest.get("version"),
        "core/version.py": core_version(),
    }
    if len(set(versions.values())) != 1:
        listed = ", ".join(f"{k} says {v}" for k, v in versions.items())
        raise BuildError(f"version mismatch: {listed}")
    if manifest.get("id") != EXTENSION_ID:
        raise BuildError(f"manifest id is {manifest.get('id')!r}, expected {EXTENSION_ID!r}")
    return versions["pyproject.toml"]


# -- staging ---------------------------------------------------------------------------------
def _ignore(directory: str, names: list[str]) -> set[str]:
    """copytree filter: caches, tests, dot-files, build leftovers. Refuses links, which could
    pull in files from outside the repository (../shared/assets, a home folder)."""
    ignored = set()
    for name in names:
        full = Path(directory) / name
        if full.is_symlink():
            raise BuildError(f"refusing to package a symbolic link: {full}")
        if name in EXCLUDED_DIRS or name.startswith(".") or name.endswith(EXCLUDED_SUFFIXES):
            ignored.add(name)
    return ignored


def _ignore_core(directory: str, names: list[str]) -> set[str]:
    """As _ignore, and only the default model from core/models (never checkpoints or test models)."""
    ignored = _ignore(directory, names)
    if Path(directory).resolve() == (CORE_SRC / "models").resolve():
        ignored |= {n for n in names if n.endswith((".safetensors", ".json", ".pt", ".pth", ".ckpt"))
                    and n not in (DEFAULT_MODEL, DEFAULT_MODEL.replace(".safetensors", ".json"))}
    return ignored


def _load_core_file(relative: str):
    """A standard-library-only core module, loaded by path (the build needs no torch)."""
    name = "_pastiche_build_" + relative.replace("/", "_").removesuffix(".py")
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, CORE_SRC.joinpath(*relative.split("/")))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def safetensors_metadata(path: Path) -> dict:
    """The string metadata of a safetensors file, read from its JSON header (no torch needed)."""
    headers = _load_core_file("io/safetensors_header.py")
    try:
        return headers.read_metadata(path)
    except headers.SafetensorsHeaderError as e:
        if e.reason == headers.MISSING:
            raise BuildError(f"{path} not found") from None
        if e.reason == headers.CORRUPT:
            raise BuildError(f"{path} is not a safetensors file (unreadable header)") from None
        raise BuildError(f"{path} is not a safetensors file") from None


def model_credits(path: Path) -> str:
    """A Markdown section crediting each style of a model file (from its own metadata)."""
    meta = check_default_model(path)
    lines = [f"\n## Styles in the bundled default model ({path.name})\n"]
    for style in json.loads(meta.get("styles", "[]")):
        credit = style.get("credit", {})
        parts = [credit.get(k) for k in ("artist", "title", "year") if credit.get(k)]
        extra = "; ".join(f"{k}: {credit[k]}" for k in ("licence", "source") if credit.get(k))
        lines.append(f"- `{style['name']}`: {', '.join(parts) or 'no credit recorded'}"
                     + (f" ({extra})" if extra else ""))
    return "\n".join(lines) + "\n"


def check_default_model(model: Path) -> dict:
    """A default model must be a trained Pastiche model: never ship an untrained stand-in."""
    meta = safetensors_metadata(model)
    if meta.get("format") != "pastiche-model":
        raise BuildError(f"{model} is not a Pastiche model (metadata format {meta.get('format')!r})")
    if not json.loads(meta.get("training", "{}") or "{}"):
        raise BuildError(f"{model} has no training summary: it looks untrained, refusing to ship it "
                         "as the default model")
    return meta


def stage(stage_root: Path, default_model: Path | None = None, log=print) -> Path:
    """Copy everything the extension holds into stage_root/blender_pastiche; return that folder.

    default_model: the model to bundle as pastiche_core/models/default.safetensors
    (default: core/models/default.safetensors when it exists)."""
    for name in TOP_LEVEL_FILES:
        if not (REPO / name).is_file():
            raise BuildError(f"{name} is missing from the repository root")
    if not (ADDON_SRC / "__init__.py").is_file():
        raise BuildError("blender_pastiche/__init__.py is missing: nothing to package")
    dest = stage_root / EXTENSION_ID
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ADDON_SRC, dest, ignore=_ignore)
    shutil.copytree(CORE_SRC, dest / BUNDLED_CORE, ignore=_ignore_core)
    for name in TOP_LEVEL_FILES:
        shutil.copy2(REPO / name, dest / name)
    model = default_model or CORE_SRC / "models" / DEFAULT_MODEL
    if model.is_file():
        check_default_model(model)
        shutil.copy2(model, dest / BUNDLED_CORE / "models" / DEFAULT_MODEL)
        with open(dest / "CREDITS.md", "a", encoding="utf-8") as fh:
            fh.write(model_credits(model))
        log(f"default model: {model} ({model.stat().st_size / 1e6:.1f} MB) included")
    else:
        log(f"default model: core/models/{DEFAULT_MODEL} does not exist; building WITHOUT a default "
            "model (users must choose a model file in the add-on)")
    return dest


def add_wheels(dest: Path, wheels: list[Path], platform: str) -> None:
    """Bundle wheels and declare them (and the platform) in the staged manifest."""
    wheel_dir = dest / "wheels"
    wheel_dir.mkdir(exist_ok=True)
    for wheel in wheels:
        shutil.copy2(wheel, wheel_dir / wheel.name)
    listed = ", ".join(f'"./wheels/{w.name}"' for w in sorted(wheels))
    text = (dest / MANIFEST).read_text(encoding="utf-8")
    # Top-level keys must come before the first [table] in TOML.
    first_table = re.search(r"^\[", text, re.MULTILINE)
    cut = first_table.start() if first_table else len(text)
    addition = f'platforms = ["{platform}"]\nwheels = [{listed}]\n\n'
    (dest / MANIFEST).write_text(text[:cut] + addition + text[cut:], encoding="utf-8")


def download_wheels(platform: str, into: Path, index_url: str | None) -> list[Path]:
    """pip download the worker's requirements for one Blender platform (needs network)."""
    into.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(into),
           "--python-version", "3.11", *BUNDLED_REQUIREMENTS]
    for tag in PLATFORM_TAGS[platform]:
        cmd += ["--platform", tag]
    if index_url and index_url != "pypi":
        cmd += ["--index-url", index_url, "--extra-index-url", "https://pypi.org/simple"]
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return collect_wheels(into)


def collect_wheels(folder: Path) -> list[Path]:
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise BuildError(f"no .whl files in {folder}")
    # Blender's Python ships its own numpy; a second one on its sys.path would break bpy.
    return [w for w in wheels if not w.name.lower().startswith("numpy-")]


# -- Blender's extension tool ----------------------------------------------------------------
def find_blender_ext(explicit: str | None = None) -> Path | None:
    """bl_pkg/cli/blender_ext.py from the bpy module (found without importing it) or $BLENDER_EXT."""
    candidates = [explicit, os.environ.get("PASTICHE_BLENDER_EXT")]
    spec = importlib.util.find_spec("bpy")
    if spec and spec.origin:
        bpy_dir = Path(spec.origin).parent
        candidates += [str(p) for p in sorted(bpy_dir.glob("[0-9]*.[0-9]*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


def blender_tags_file(blender_ext: Path) -> Path | None:
    """Blender's list of valid extension tags, as `blender --command extension` uses it."""
    tags = blender_ext.parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    return tags if tags.is_file() else None


def run_blender_ext(blender_ext: Path, *args: str) -> str:
    cmd = [sys.executable, str(blender_ext), *args]
    tags = blender_tags_file(blender_ext)
    if tags:
        cmd.append(f"--valid-tags={tags}")
    done = subprocess.run(cmd, capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise BuildError(f"Blender's extension tool failed ({' '.join(args[:1])}):\n{output}")
    return output


def zip_folder(folder: Path, out: Path) -> None:
    """Fallback when Blender's tool is absent: the same layout (files at the zip's root)."""
    with _load_core_file("io/atomic.py").atomic_path(out, suffix=".zip.tmp") as tmp, \
            zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())


# -- main ------------------------------------------------------------------------------------
def build(output_dir: Path = REPO / "dist", build_dir: Path = REPO / "build" / "extension",
          platform: str | None = None, wheels: list[Path] | None = None,
          blender_ext: str | None = None, require_validation: bool = False,
          default_model: Path | None = None, log=print) -> Path:
    """Build (and validate) the extension zip; return its path."""
    manifest = read_manifest()
    version = check_versions(manifest)
    if platform and platform not in PLATFORM_TAGS:
        raise BuildError(f"unknown platform {platform!r}; use one of {', '.join(PLATFORM_TAGS)}")
    if wheels and not platform:
        raise BuildError("bundled wheels are platform-specific: pass --platform too")
    if default_model is not None and not default_model.is_file():
        raise BuildError(f"default model {default_model} does not exist")
    dest = stage(build_dir, default_model, log=log)
    if wheels:
        add_wheels(dest, wheels, platform)
    output_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"-{platform.replace('-', '_')}" if platform else ""
    out = output_dir / f"{EXTENSION_ID}-{version}{suffix}.zip"
    out.unlink(missing_ok=True)

    tool = find_blender_ext(blender_ext)
    if tool is None:
        if require_validation:
            raise BuildError("Blender's extension tool (blender_ext.py) was not found: install the "
                             "bpy module (pip install bpy) or pass --blender-ext PATH")
        zip_folder(dest, out)
        log("validation SKIPPED: Blender's extension tool was not found (install the bpy module "
            "or pass --blender-ext <Blender>/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py)")
    else:
        run_blender_ext(tool, "build", "--source-dir", str(dest), "--output-filepath", str(out))
        run_blender_ext(tool, "validate", str(out))
        log(f"validated with {tool}")

    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
    unpacked = sum(i.file_size for i in infos)
    log(f"built {out} ({out.stat().st_size / 1e6:.2f} MB zipped, {unpacked / 1e6:.2f} MB unpacked, "
        f"{len(infos)} files)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist", help="where the zip goes (default: dist/)")
    parser.add_argument("--platform", choices=sorted(PLATFORM_TAGS),
                        help="build a self-contained zip for one platform, with PyTorch wheels bundled")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wheels", type=Path, help="folder of .whl files to bundle (with --platform)")
    source.add_argument("--download-wheels", action="store_true",
                        help="pip download torch and safetensors for --platform first (needs network)")
    parser.add_argument("--index-url", default=CPU_INDEX,
                        help="PyTorch wheel index for --download-wheels (default: the CPU-only builds, "
                        f"{CPU_INDEX}; 'pypi' for PyPI's own, which is CUDA on Linux and several GB)")
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "extension",
                        help="staging folder (default: build/extension/)")
    parser.add_argument("--default-model", type=Path,
                        help="trained model to bundle as the default (default: core/models/default.safetensors if present)")
    parser.add_argument("--blender-ext", help="path to Blender's bl_pkg/cli/blender_ext.py")
    parser.add_argument("--require-validation", action="store_true",
                        help="fail instead of skipping validation when Blender's tool is missing")
    args = parser.parse_args(argv)
    try:
        wheels = None
        if (args.wheels or args.download_wheels) and not args.platform:
            raise BuildError("--wheels and --download-wheels need --platform")
        if args.wheels:
            wheels = collect_wheels(args.wheels)
        elif args.download_wheels:
            wheels = download_wheels(args.platform, REPO / "build" / "wheels" / args.platform, args.index_url)
        build(args.output_dir, args.build_dir, platform=args.platform, wheels=wheels,
              blender_ext=args.blender_ext, require_validation=args.require_validation,
              default_model=args.default_model)
    except (BuildError, subprocess.CalledProcessError) as e:
        print(f"build_addon.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The layout's rules, checked on the source (AST, no imports run):

- nothing under core/ imports Blender (bpy, bpy_extras, mathutils);
- the add-on never imports the core package (Blender's process has no torch);
- the core files the add-on loads by path (the wire protocol, the safetensors header
  reader, atomic writes, the default model's place) import only the standard library;
- no import cycle inside either package, imports inside functions included;
- every import runs down the layer order of its package.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

BLENDER_MODULES = {"bpy", "bpy_extras", "mathutils", "bl_math", "gpu", "blf", "addon_utils"}

# Lowest first: a module may import its own layer and the layers before it.
# "" is the package's top level (its __init__ and modules outside the layers).
CORE_LAYERS = ["errors", "version", "io", "model", "inference", "temporal", "perceptual",
               "training", "ipc", "cli", ""]
ADDON_LAYERS = ["support", "io", "props", "worker", "render", "nodes", "operators", "ui", ""]

PACKAGES = {
    "pastiche_core": (REPO / "core", CORE_LAYERS),
    "blender_pastiche": (REPO / "blender_pastiche", ADDON_LAYERS),
}


def module_files(name: str, root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of a package (the bundled core copy
    a build may leave in blender_pastiche/pastiche_core is not part of the add-on's source)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("pastiche_core", "__pycache__"):
            continue
        parts = [name, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth. A
    ``from X import name`` counts as importing X.name when that is a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in known else base))
    return found


def graph(name: str) -> tuple[dict[str, list[tuple[int, str]]], dict[str, Path]]:
    root, _ = PACKAGES[name]
    files = module_files(name, root)
    known = set(files)
    return {m: imports_of(m, p, known) for m, p in files.items()}, files


def layer_of(module: str, package: str, layers: list[str]) -> int:
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else ""
    return layers.index(first) if first in layers else layers.index("")


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS)."""
    state: dict[str, int] = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(edges[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                if state.get(child) == 1:
                    return path[path.index(child):] + [child]
                if not state.get(child) and child in edges:
                    state[child] = 1
                    path.append(child)
                    stack.append((child, iter(sorted(edges[child]))))
                    break
            else:
                state[node] = 2
                path.pop()
                stack.pop()
    return None


def internal_edges(name: str) -> dict[str, set[str]]:
    imports, _ = graph(name)
    return {m: {t for _, t in targets if t in imports and t != m} for m, targets in imports.items()}


# -- the checks on this repository ----------------------------------------------------------


def test_core_never_imports_blender():
    imports, files = graph("pastiche_core")
    bad = [f"{files[m].relative_to(REPO)}:{line} imports {t}" for m, targets in imports.items()
           for line, t in targets if t.split(".")[0] in BLENDER_MODULES]
    assert not bad, "the core must run without Blender:\n" + "\n".join(bad)


def test_addon_never_imports_the_core_package():
    imports, files = graph("blender_pastiche")
    bad = [f"{files[m].relative_to(REPO)}:{line} imports {t}" for m, targets in imports.items()
           for line, t in targets if t.split(".")[0] == "pastiche_core" or ".pastiche_core" in t]
    assert not bad, ("Blender's process must not import the core (it may lack torch); load "
                     "core files with support.core_files instead:\n" + "\n".join(bad))


@pytest.mark.parametrize("relative", ["ipc/wire.py", "io/safetensors_header.py", "io/atomic.py",
                                      "model/default_model.py"])
def test_files_loaded_by_path_import_only_the_standard_library(relative):
    path = REPO / "core" / relative
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            bad.append(f"line {node.lineno}: relative import")
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        bad += [f"line {node.lineno}: {n}" for n in names
                if n.split(".")[0] not in sys.stdlib_module_names and n != "__future__"]
    assert not bad, f"{relative} is loaded by file path in Blender: standard library only\n" + "\n".join(bad)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_no_import_cycles(name):
    cycle = find_cycle(internal_edges(name))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_imports_follow_the_layer_order(name):
    _, layers = PACKAGES[name]
    imports, files = graph(name)
    bad = []
    for module, targets in imports.items():
        mine = layer_of(module, name, layers)
        for line, target in targets:
            if target.split(".")[0] != name or target == name:
                if target == name:
                    bad.append(f"{files[module].relative_to(REPO)}:{line} imports the package root")
                continue
            theirs = layer_of(target, name, layers)
            if theirs > mine:
                bad.append(f"{files[module].relative_to(REPO)}:{line} ({layers[mine] or 'top'}) "
                           f"imports {target} ({layers[theirs] or 'top'})")
    assert not bad, f"imports must run {' -> '.join(layers[:-1])}:\n" + "\n".join(bad)


def test_every_layer_folder_exists_and_says_what_it_holds():
    for name, (root, layers) in PACKAGES.items():
        for layer in layers:
            if not layer or (root / f"{layer}.py").is_file():
                continue
            init = root / layer / "__init__.py"
            assert init.is_file(), f"{name}: layer {layer!r} has no package"
            assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), \
                f"{init.relative_to(REPO)} needs a docstring saying what the folder holds"


# -- the checker itself ------------------------------------------------------------------------


def test_checker_sees_cycles_through_imports_inside_functions(tmp_path):
    pkg = tmp_path / "demo"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from ..high import b\n")
    (pkg / "high").mkdir()
    (pkg / "high" / "__init__.py").write_text("")
    (pkg / "high" / "b.py").write_text("from ..low import a\n")
    PACKAGES["demo"] = (pkg, ["low", "high", ""])
    try:
        assert find_cycle(internal_edges("demo")) == ["demo.high.b", "demo.low.a", "demo.high.b"]
        imports, _ = graph("demo")
        assert (2, "demo.high.b") in imports["demo.low.a"]
        assert layer_of("demo.low.a", "demo", ["low", "high", ""]) < layer_of(
            "demo.high.b", "demo", ["low", "high", ""])
    finally:
        del PACKAGES["demo"]

"""docs/architecture.md is the design; these tests hold the package to its layer table.

Every ``import`` in the package (module level, inside functions, under ``TYPE_CHECKING``) is read with
``ast`` and checked against the table, so an import that goes up a layer or sideways fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "deepforest_lite"
DOC = REPO / "docs" / "architecture.md"
ROOT = "deepforest_lite"
TORCH_LIBRARIES = {"torch", "torchvision", "lightning", "pytorch_lightning", "torchmetrics"}

_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`([\w.]+)`\s*\|(.*)\|\s*$")


def documented_layers() -> dict[str, int]:
    """Module name (relative to the package, the package itself as ``deepforest_lite``) -> layer."""
    layers: dict[str, int] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            name = match.group(2)
            assert name not in layers, f"{name} has two rows in docs/architecture.md"
            assert match.group(3).strip(), f"the row of {name} says nothing about what it owns"
            layers[name] = int(match.group(1))
    return layers


def documented_torch_modules() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"Torch modules \(.*?\):(.*?)\.\n", text, re.S)
    assert match, "docs/architecture.md lost its list of torch modules"
    return set(re.findall(r"`([\w.]+)`", match.group(1)))


def package_modules() -> dict[str, Path]:
    """Module name -> file, for every .py file of the package."""
    modules: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts) or ROOT] = path
    return modules


MODULES = package_modules()


def _unit(name: str) -> str:
    """The row that governs a module: itself if documented, else its subpackage's row."""
    return name.split(".")[0]


def _imports(name: str, path: Path, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported package module) for every import of the package's own modules in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    here = [] if name == ROOT else name.split(".")
    package = here if is_package else here[:-1]

    def nodes():
        if not top_level_only:
            yield from ast.walk(tree)
            return
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if isinstance(node, ast.ClassDef):
                    stack.extend(node.body)
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                stack.extend(node.orelse)
                continue
            yield node
            stack.extend(ast.iter_child_nodes(node))

    found: list[tuple[int, str]] = []
    for node in nodes():
        targets: list[list[str]] = []
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
                base = [ROOT, *base]
            else:
                base = []
            module = base + (node.module.split(".") if node.module else [])
            targets = [module + [alias.name] for alias in node.names]
        for target in targets:
            if not target or target[0] != ROOT:
                continue
            parts = target[1:]
            while parts and ".".join(parts) not in MODULES:  # `from .x import name` names a module or an object
                parts = parts[:-1]
            found.append((node.lineno, ".".join(parts) or ROOT))
    return found


def test_table_lists_exactly_the_package_modules():
    layers = documented_layers()
    missing = sorted(set(MODULES) - set(layers))
    stale = sorted(set(layers) - set(MODULES))
    assert not missing, f"modules without a row in docs/architecture.md: {missing}"
    assert not stale, f"rows in docs/architecture.md for modules that do not exist: {stale}"


def test_subpackage_modules_share_their_subpackage_layer():
    layers = documented_layers()
    for name, layer in layers.items():
        if "." in name:
            assert layer == layers[_unit(name)], f"{name} is in layer {layer}, its subpackage in {layers[_unit(name)]}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_go_down(name):
    layers = documented_layers()
    if name not in layers:
        pytest.skip("reported by test_table_lists_exactly_the_package_modules")
    wrong = []
    for line, target in sorted(set(_imports(name, MODULES[name]))):
        if target == name:
            continue
        if target == ROOT:
            wrong.append(f"line {line}: imports the top-level package")
        elif _unit(target) == _unit(name) and name != ROOT:
            continue  # modules of one subpackage may import each other
        elif target not in layers:
            wrong.append(f"line {line}: imports {target}, which has no row in docs/architecture.md")
        elif layers[target] >= layers[name]:
            wrong.append(f"line {line}: imports {target} (layer {layers[target]}) from layer {layers[name]}")
    assert not wrong, f"{name}: " + "; ".join(wrong)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_torch_free_modules_do_not_import_torch_at_import_time(name):
    torch_modules = documented_torch_modules()
    assert torch_modules <= set(MODULES), f"unknown torch modules in the doc: {sorted(torch_modules - set(MODULES))}"
    if _unit(name) in torch_modules or name in torch_modules:
        return
    tree_imports = []
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import):
            tree_imports += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            tree_imports.append(node.module.split(".")[0])
    assert not TORCH_LIBRARIES & set(tree_imports), f"{name} imports {sorted(TORCH_LIBRARIES & set(tree_imports))}"
    heavy = [t for _, t in _imports(name, MODULES[name], top_level_only=True) if _unit(t) in torch_modules]
    assert not heavy, f"{name} imports torch modules at import time: {heavy}"


def test_the_checker_sees_relative_and_absolute_imports():
    """The parser must resolve the import forms the package uses, or the layer test checks nothing."""
    imports = {target for _, target in _imports("cli.train", MODULES["cli.train"])}
    assert {"compat", "config", "errors", "files", "cli._checks", "cli._common", "detector", "train"} <= imports
    assert "cli" in {target for _, target in _imports("cli.__main__", MODULES["cli.__main__"])}
    assert "train" in {t for _, t in _imports("detector", MODULES["detector"])}  # TYPE_CHECKING and lazy imports
    assert "errors" in {t for _, t in _imports(ROOT, MODULES[ROOT])}

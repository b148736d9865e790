"""The code itself: ruff clean and formatted, mypy --strict clean on the package."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is a test dependency")
def test_ruff_is_clean() -> None:
    result = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is a test dependency")
def test_ruff_format_is_applied() -> None:
    result = subprocess.run(["ruff", "format", "--check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, "run `ruff format .`:\n" + result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_of_rich_without_a_display() -> None:
    code = "import sys, ppipe.cli, ppipe; ppipe.run('true'); print('rich' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


PACKAGE = ROOT / "pipes" / "ppipe"
#: Modules written by a generator, whatever their length.
GENERATED = {"option_table.py", "option_fields.py"}
#: Past these, a module or a class holds two concerns: split it.
MODULE_LINES = 500
CLASS_LINES = 330


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every ppipe module that ``path`` imports, at its top or in a function; not those only for mypy."""
    found: set[str] = set()

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            for child in node.orelse if _is_type_checking(node.test) else [*node.body, *node.orelse]:
                self.visit(child)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module is not None:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)

    Imports().visit(ast.parse(path.read_text()))
    return {name for name in found if name in modules}


def test_no_module_imports_itself_through_others() -> None:
    """A circle of imports means two modules share one concern, or one holds two: no module may reach itself."""
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    for start, imported in graph.items():
        seen: set[str] = set()
        stack = list(imported)
        while stack:
            name = stack.pop()
            assert name != start, f"{start} imports itself through {sorted(seen)}"
            if name not in seen:
                seen.add(name)
                stack.extend(graph[name])


def test_modules_and_classes_hold_one_concern() -> None:
    """Sizes as a smell test: a module past 500 lines or a class past about 300 holds two concerns."""
    too_long = []
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        if path.name not in GENERATED and source.count("\n") > MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > CLASS_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE)}: class {node.name}, {length} lines")
    assert not too_long, too_long

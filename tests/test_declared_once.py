"""Lists written once: the options in the typer command, the public names in one mapping.

What is derived from them (the fast path's tables and Config's fields, the
``TYPE_CHECKING`` imports mypy reads) is checked against them here, so that
a change in one place that is not carried to the others fails a test.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import typer.main

import ppipe
from ppipe.cli import generate, options
from ppipe.cli.config import Config

from helpers import ENV

CLI = Path(options.__file__).parent
REGENERATE = "the typer command changed: regenerate with `python -m ppipe.cli.generate`"


def test_the_generated_option_modules_match_the_typer_command() -> None:
    for name, text in generate.generated().items():
        assert (CLI / name).read_text() == text, f"{name} is out of date; {REGENERATE}"


def test_every_run_option_of_the_typer_command_is_a_config_field_of_the_same_name() -> None:
    command = typer.main.get_command(options.app)
    run_parameters = [param.name for param in command.params if param.expose_value]
    assert run_parameters == [field.name for field in dataclasses.fields(Config)], REGENERATE


def test_typer_given_no_option_builds_the_default_config() -> None:
    """Typer's defaults and Config's are the same, through the reading of option values."""
    seen: list[Config] = []
    original = options.dispatch
    options.dispatch = seen.append  # type: ignore[assignment]
    try:
        typer.main.get_command(options.app).main(["true"], prog_name="ppipe", standalone_mode=False)
    finally:
        options.dispatch = original
    assert seen == [Config("true")]


def test_the_console_script_loads_only_the_option_table_before_it_reads_the_command_line() -> None:
    """The table is a module of literals: the console script imports it at every start, --version too; and
    ppipe.interrupts, which imports nothing, where a Ctrl-C during start-up is noted."""
    code = "import sys; before = set(sys.modules); import ppipe.cli.entry; print(sorted(set(sys.modules) - before))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    loaded = ast.literal_eval(result.stdout)
    expected = ["__future__", "ppipe", "ppipe.cli", "ppipe.cli.entry", "ppipe.cli.option_table", "ppipe.interrupts"]
    assert loaded == expected


def _type_checking_imports() -> dict[str, str]:
    """The names ``ppipe/__init__.py`` imports for mypy, each with its module (relative to ppipe)."""
    tree = ast.parse(Path(ppipe.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    imports = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ppipe."):
            for alias in node.names:
                assert alias.asname == alias.name, f"import {alias.name} as {alias.name}: mypy re-exports it then"
                imports[alias.name] = node.module.removeprefix("ppipe.")
    return imports


def test_the_names_mypy_sees_are_the_exports() -> None:
    assert _type_checking_imports() == ppipe._EXPORTS, "ppipe/__init__.py: make its TYPE_CHECKING imports _EXPORTS"


def test_every_export_is_importable_and_listed() -> None:
    assert sorted(ppipe.__all__) == sorted([*ppipe._EXPORTS, "__version__"])
    for name in ppipe._EXPORTS:
        assert getattr(ppipe, name) is not None

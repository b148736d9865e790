"""Writes the modules generated from the typer command: the console script's tables and Config's fields.

``python -m ppipe.cli.generate`` after changing an option in
:mod:`ppipe.cli.options`; a test fails while the generated modules differ
from what this writes. Generated, not read from typer at run time: building
the typer command costs a quarter of a second at every start.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer.main
from typer.core import TyperOption

from ppipe.cli.config import read_value, value_type
from ppipe.cli.options import SHARD_PANEL, STARTERS, app

_HEADER = """\
# Generated from the typer command in ppipe.cli.options by `python -m ppipe.cli.generate`:
# do not edit. A test fails when it no longer matches the command. Generated, not read from typer,
# because building the typer command costs a quarter of a second at every start.
"""


def generated() -> dict[str, str]:
    """The generated modules' text by file name, from the typer command as declared now."""
    command = typer.main.get_command(app)
    # The run's options: not the pipeline, nor those typer acts on and ends by (--version).
    options = [param for param in command.params if isinstance(param, TyperOption) and param.expose_value]
    actions = [name for param in command.params if not param.expose_value for name in param.opts]
    help_names = command.context_settings["help_option_names"]
    return {"option_table.py": _table_source(options, actions, help_names), "option_fields.py": _fields_source(options)}


def _table_source(options: list[TyperOption], actions: list[str], help_names: list[str]) -> str:
    flags = {
        name: (option.name, name in option.opts)
        for option in options
        if option.is_flag
        for name in (*option.opts, *option.secondary_opts)
    }
    valued = {name: option.name for option in options if not option.is_flag for name in option.opts}
    return "\n".join(
        [
            _HEADER + '"""The console script reads options by these tables (see ppipe.cli.entry)."""\n',
            "#: A flag's spelling -> (the Config field, the value it sets).",
            _literal("FLAGS", flags),
            "#: A valued option's spelling -> the Config field; its text is read by ppipe.cli.config.read_value.",
            _literal("VALUED", valued),
            "#: The Config fields of the options that may be given again and again (their texts kept in order).",
            f"REPEATED = frozenset({_set([o.name for o in options if o.multiple and o.name])})",
            "#: Options that typer handles and that end the program: they print and exit.",
            f"ACTIONS = frozenset({_set(actions)})",
            "#: The options that ask for the help.",
            f"HELP = frozenset({_set(help_names)})",
            "",
        ]
    )


def _fields_source(options: list[TyperOption]) -> str:
    lines = [
        _HEADER + '"""The command line\'s options as fields: the base of :class:`ppipe.cli.config.Config`."""\n',
        "from __future__ import annotations\n",
        "from dataclasses import dataclass\n\n",
        "@dataclass(frozen=True)",
        "class Options:",
        '    """One field per option (its help: ppipe.cli.options), typed as read, defaulting as not given."""\n',
        "    pipeline: str",
    ]
    for option in options:
        lines.append(_field(option))
    needing_fork = tuple(o.name for o in options if o.rich_help_panel == SHARD_PANEL and o.name not in STARTERS)
    lines += ["\n", "#: The fields of the options that only mean something with --fork or --each (the Shards panel)."]
    lines += ["SHARD_ONLY = (", *(f"    {_python(name)}," for name in needing_fork), ")"]
    return "\n".join([*lines, ""])


def _field(option: TyperOption) -> str:
    assert option.name is not None
    kind = "bool" if option.is_flag else value_type(option.name).__name__
    kind = "tuple[str, ...]" if kind == "tuple" else kind
    default = read_value(option.name, option.default) if isinstance(option.default, str) else option.default
    optional = " | None" if default is None else ""
    return f"    {option.name}: {kind}{optional} = {_python(default)}"


def _literal(name: str, table: dict[str, Any]) -> str:
    entries = "".join(f"    {_python(key)}: {_python(value)},\n" for key, value in table.items())
    return f"{name} = {{\n{entries}}}"


def _set(names: list[str]) -> str:
    return "{" + ", ".join(_python(name) for name in names) + "}"


def _python(value: Any) -> str:
    """A literal as ruff formats it: strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_python(item) for item in value) + ")"
    return repr(value)


def write(directory: Path) -> list[Path]:
    """Writes the generated modules into ``directory``; returns their paths."""
    paths = []
    for name, text in generated().items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    if sys.argv[1:]:
        sys.exit("usage: python -m ppipe.cli.generate")
    for path in write(Path(__file__).parent):
        print(path)

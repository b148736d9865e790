"""The private names of typer that ppipe relies on, all in one place.

typer vendors click as ``typer._click`` and keeps its completion set-up in
``typer._completion_classes``; neither is public. They are imported here
only (lazily: typer is imported only when typer reads the command line),
and ``tests/test_borrowed_names.py`` fails loudly, naming what went, if an
upgrade removes one. ``pyproject.toml`` bounds typer to the versions tested.

- ``typer._click.exceptions.ClickException``: so that typer's own usage
  errors become one ``ppipe:`` line with exit 2 (and no arguments at all
  shows the help, which click raises as one).
- ``typer._completion_classes.completion_init``: registers typer's shells
  before a completion request is answered (typer does it in its own entry
  point, which ppipe does not use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typer._click.exceptions import ClickException

#: What each borrowed name is for, by its module and name: checked by the test suite.
BORROWED = {
    "typer._click.exceptions.ClickException": "to turn typer's usage errors into one ppipe: line",
    "typer._completion_classes.completion_init": "to register typer's shells before answering a completion",
}


def usage_error() -> type[ClickException]:
    """Click's usage error base, as typer vendors it."""
    from typer._click.exceptions import ClickException

    return ClickException


def init_completion() -> None:
    """Registers typer's completion shells, as typer's own entry point would."""
    from typer._completion_classes import completion_init

    completion_init()

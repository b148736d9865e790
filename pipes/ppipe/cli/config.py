"""What the command line asked for: a frozen :class:`Config`, and reading option values into it.

Both readings of the command line (typer's in :mod:`ppipe.cli.options`, the
console script's in :mod:`ppipe.cli.entry`) build a :class:`Config` with :func:`config_from`,
which reads every option value through :func:`read_value`, so they accept and
refuse the same values. Config's fields are generated from the typer command
(:mod:`ppipe.cli.option_fields`). The console script imports this module for every
run: it imports nothing beyond the standard library and :mod:`ppipe.errors`.
"""

from __future__ import annotations

import enum
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ppipe.cli.option_fields import Options
from ppipe.cli.option_table import REPEATED
from ppipe.errors import UsageError


class DisplayMode(str, enum.Enum):
    """``--display``: when to draw the live view on stderr."""

    AUTO = "auto"  # when stderr is a terminal and not --quiet
    ALWAYS = "always"
    NEVER = "never"


class ProgressMode(str, enum.Enum):
    """``--progress``: status lines for logs when there is no live view."""

    NONE = "none"
    PLAIN = "plain"
    JSON = "json"


class Config(Options):
    """Everything the command line asked for: one field per option, generated from the typer command.

    A field is None when the option was not given and its meaning waits
    for more: ``lines`` (count them when the report or the view shows
    them), ``pager`` (the last stage is a pager on a terminal, decided by
    :func:`ppipe.cli.command.with_pager` once the pipeline is parsed),
    ``fork`` (one plain run), ``block`` (the default block size) and
    ``task_id``/``tasks`` (from the cluster's variables, if any).
    """

    @property
    def shows_view(self) -> bool:
        if self.pager:
            return False  # the pager owns the terminal
        if self.display == "auto":
            on_terminal = sys.stderr is not None and sys.stderr.isatty()
            return not self.quiet and on_terminal and shared_terminal(os.environ) is None
        return self.display == "always"

    @property
    def count_lines(self) -> bool:
        shown = self.report is not None or self.shows_view or self.progress != "none"
        return shown if self.lines is None else self.lines


def shared_terminal(env: Mapping[str, str]) -> str | None:
    """Why the terminal is not ppipe's alone to draw on, or None when it is.

    ``make -j`` runs recipes side by side on one terminal (a jobserver in
    ``MAKEFLAGS``): one process's view would be torn by the others' output
    and views. A CI log (``CI`` set, not ``false`` or ``0``) keeps every
    frame. ``TERM=dumb`` cannot move the cursor. ``--display always``
    draws all the same.
    """
    if "--jobserver-auth" in env.get("MAKEFLAGS", "") or "--jobserver-fds" in env.get("MAKEFLAGS", ""):
        return "make -j"
    if env.get("CI", "").lower() not in ("", "0", "false", "no"):
        return "CI"
    if env.get("TERM") == "dumb":
        return "TERM=dumb"
    return None


#: Environment variables that set an option's default, by Config field; the option given on the command
#: line wins over them.
DEFAULTS_FROM_ENVIRONMENT = {"display": "PPIPE_DISPLAY", "progress": "PPIPE_PROGRESS"}


# ---------------------------------------------------------------- option values, read once for both parsers

#: ``--timeout``/``--kill-after``: a plain decimal number (``30``, ``0.5``, ``.5``, ``2e3``) or ``inf``.
#: Left as text, like ``_SIZE``: ``re`` compiles it at its first use and keeps it; most runs give neither option.
_SECONDS = r"(?i:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)"
#: The largest count any option takes: more is a slip of the finger, and far more is past the
#: digits Python turns into an int at all.
MOST = 999_999_999
#: Count options by Config field: (the least value, what the number counts, for the message).
_COUNTS = {
    "fork": (0, "a number of shards, 0 (one per CPU) or more"),
    "max_restarts": (0, "a number of restarts, 0 or more"),
    "task_id": (0, "a task number, 0 or more (ids count from 0)"),
    "tasks": (1, "a number of tasks, 1 or more"),
    "jobs": (0, "a number of shards at once, 0 (one per CPU) or more"),
    "header": (0, "a number of records, 0 or more"),
}
_CHOICES: dict[str, type[enum.Enum]] = {"display": DisplayMode, "progress": ProgressMode}
#: Options whose text is kept as given (``--block`` is read when a sharded run is planned).
_TEXTS = frozenset({"report", "block", "each", "joblog", "halt", "recend", "on", "tag_format"})


def option_name(field: str) -> str:
    """``max_restarts`` → ``--max-restarts``."""
    return "--" + field.replace("_", "-")


def read_value(field: str, text: str | Sequence[str]) -> Any:
    """The value of the Config field ``field`` given on the command line as ``text``.

    Both command-line parsers read every option value here, so they accept
    the same values and refuse the others with the same sentence: a
    :class:`UsageError` (exit status 2) naming the option, what it takes and
    what it got.
    """
    if field in REPEATED:  # typer gives an empty list for none given
        return ((text,) if isinstance(text, str) else tuple(text)) or None
    assert isinstance(text, str)
    if field in _TEXTS:
        return text
    if field in _CHOICES:
        return read_choice(option_name(field), text, _CHOICES[field])
    if field in _COUNTS:
        least, meaning = _COUNTS[field]
        return read_count(option_name(field), text, least, meaning)
    return read_seconds(option_name(field), text)


def value_type(field: str) -> type:
    """The type :func:`read_value` makes of the option's text."""
    if field in REPEATED:
        return tuple
    if field in _COUNTS:
        return int
    return str if field in _TEXTS or field in _CHOICES else float


def config_from(pipeline: str, given: Mapping[str, str | bool | Sequence[str] | None]) -> Config:
    """The :class:`Config` for the options given by field, as both parsers have them: flags as bools, the rest
    as text, None for not given. A value it refuses raises :class:`UsageError` (see :func:`read_value`)."""
    values: dict[str, Any] = {
        field: value if isinstance(value, bool) else read_value(field, value)
        for field, value in given.items()
        if value is not None
    }
    for field, variable in DEFAULTS_FROM_ENVIRONMENT.items():
        if field not in values and (text := os.environ.get(variable)):
            values[field] = read_choice(variable, text, _CHOICES[field])
    return Config(pipeline, **values)


def _shown(text: str) -> str:
    """An option's text as a message quotes it: cut short when it is long (a 5000-digit number)."""
    return repr(text if len(text) <= 40 else text[:30] + "...")


def read_seconds(option: str, text: str) -> float:
    """A number of seconds as ``timeout(1)`` reads it: decimal, optionally with an exponent, or ``inf``.

    ``1e999`` is ``inf`` too (both: no limit). A sign, ``nan``, hex digits,
    underscores and spaces are refused.
    """
    if not re.fullmatch(_SECONDS, text):
        raise UsageError(f"{option} takes a number of seconds such as 30 or 0.5, not {_shown(text)}")
    return float(text)


def read_count(option: str, text: str, least: int, meaning: str) -> int:
    """A whole number from ``least`` to :data:`MOST`, in ASCII digits (no sign, no ``1e3``)."""
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{option} takes {meaning}, not {_shown(text)}")
    if len(text.lstrip("0")) > len(str(MOST)) or int(text) > MOST:
        raise UsageError(f"{option} is too large: it takes at most {MOST}")
    if int(text) < least:
        raise UsageError(f"{option} takes {meaning}, not {_shown(text)}")
    return int(text)


def read_choice(option: str, text: str, choices: type[enum.Enum]) -> str:
    """One of the enum's values, in any case (``NEVER`` is ``never``)."""
    names = [str(choice.value) for choice in choices]
    if text.lower() not in names:
        raise UsageError(f"{option} takes {', '.join(names[:-1])} or {names[-1]}, not {_shown(text)}")
    return text.lower()


#: ``--block``: a decimal number of bytes with an optional k, M or G (powers of 1024).
_SIZE = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[kKmMgG]?"
#: The largest ``--block``: ppipe holds about two blocks per shard in memory (GNU parallel stops at 2G).
MOST_BLOCK = 1 << 30


def block_size(text: str) -> int:
    """The ``--block`` size in bytes; a :class:`UsageError` for anything but a size from 1 byte to 1G."""
    from ppipe.shards.input import parse_size

    if not re.fullmatch(_SIZE, text):
        raise UsageError(f"--block takes a size such as 1M, 64k or 65536, not {_shown(text)}")
    try:
        size = parse_size(text)
    except OverflowError:  # more digits than a float holds
        size = MOST_BLOCK + 1
    except ValueError:  # less than one byte
        size = 0
    if size > MOST_BLOCK:
        raise UsageError(
            f"--block {_shown(text)} is too large: it takes at most 1G "
            "(ppipe holds about two blocks per shard in memory)"
        )
    if size < 1:
        raise UsageError(f"--block takes a size of at least one byte, such as 1M, 64k or 65536, not {_shown(text)}")
    return size

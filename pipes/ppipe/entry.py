"""The ``ppipe`` console script: a fast path for well-formed command lines, typer for the rest.

Typer declares the command line (:mod:`ppipe.cli`): its help, completion
and error messages. But building a typer command costs a quarter of a second
at every start (current typer validates options through pydantic), which is
more than the rest of a short run. So :func:`quick_parse` reads the common
case — known options with well-formed values and one pipeline — straight
into the same :class:`~ppipe.command.Config`, and anything else (``--help``,
completion, a typo, a bad value) goes to typer, which explains it. A test
checks that both readings agree on every command line the fast one accepts,
and that they know the same options.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .command import Config

#: The environment variable that asks ``ppipe`` for completions (set by the completion scripts).
COMPLETE_VAR = "_PPIPE_COMPLETE"

_FLAGS = {
    "--no-fail": ("no_fail", True),
    "--explain": ("explain", True),
    "-q": ("quiet", True),
    "--quiet": ("quiet", True),
    "--lines": ("lines", True),
    "--no-lines": ("lines", False),
    "--pager": ("pager", True),
    "--no-pager": ("pager", False),
    "--fail-fast": ("fail_fast", True),
    "--tag": ("tag", True),
    "--keep-order": ("keep_order", True),
}
_VALUED = {"--timeout": "timeout", "--kill-after": "kill_after", "--report": "report", "--display": "display",
           "--progress": "progress", "--fork": "fork", "--max-restarts": "max_restarts", "--block": "block",
           "--task-id": "task_id", "--tasks": "tasks"}
_CHOICES = {"display": {"auto", "always", "never"}, "progress": {"none", "plain"}}
_SECONDS = re.compile(r"(\d+(\.\d*)?|\.\d+)")
_COUNTS = {"fork": 0, "max_restarts": 0, "task_id": 0, "tasks": 1}  # each with its least value
_TEXT = {"report", "block"}
#: Every option name the fast path knows, for the test that compares it with typer's.
OPTIONS = frozenset({*_FLAGS, *_VALUED, "--version"})


def quick_parse(argv: Sequence[str]) -> Config | None:
    """The :class:`Config` for a plain, well-formed command line, or None to let typer read it."""
    values: dict[str, Any] = {}
    pipeline: str | None = None
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, has_value, inline = arg.partition("=")
        if arg == "--":
            if len(args) != 1 or pipeline is not None:
                return None
            pipeline = args.pop()
        elif arg in _FLAGS:
            key, flag = _FLAGS[arg]
            values[key] = flag
        elif name in _VALUED and (has_value or args):
            value = inline if has_value else args.pop(0)
            key = _VALUED[name]
            if key in _CHOICES:
                if value not in _CHOICES[key]:
                    return None
                values[key] = value
            elif key in _COUNTS:
                if not value.isdigit() or not value.isascii() or int(value) < _COUNTS[key]:
                    return None
                values[key] = int(value)
            elif key not in _TEXT:
                if not _SECONDS.fullmatch(value):
                    return None
                values[key] = float(value)
            else:
                values[key] = value
        elif arg.startswith("-") or pipeline is not None:
            return None
        else:
            pipeline = arg
    if pipeline is None:
        return None
    from .command import Config

    return Config(pipeline=pipeline, **values)


def _ensure_standard_descriptors() -> None:
    """Makes sure descriptors 0–2 exist (``ppipe ... >&-``).

    Otherwise the first pipe ppipe creates would take a standard
    descriptor's number and stages would write into each other's pipes. The
    stand-in is opened the wrong way round, so a stage using it still gets
    EBADF, as from the closed descriptor; ``os.open`` takes the lowest free
    number, which is the missing one.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_WRONLY if fd == 0 else os.O_RDONLY)


def entry() -> None:
    """The console script. A Ctrl-C before the run started, and any bug, end
    with one line instead of a traceback (``PPIPE_DEBUG=1`` shows it).

    Everything beyond the standard library is imported inside the ``try``,
    so a Ctrl-C while ppipe is still loading ends it as cleanly as one later.
    """
    _ensure_standard_descriptors()
    try:
        sys.exit(_main(sys.argv[1:]))
    except KeyboardInterrupt:
        _die_of(signal.SIGINT)
    except Exception as error:
        if os.environ.get("PPIPE_DEBUG"):
            raise
        from .command import print_error

        print_error([f"internal error: {error!r}", "  this is a bug in ppipe; PPIPE_DEBUG=1 shows the traceback"])
        sys.exit(1)


def _die_of(sig: signal.Signals) -> None:
    """Ends ppipe by ``sig`` itself, so that a calling shell sees it (cf. ppipe.command.reraise)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def _main(argv: list[str]) -> int:
    if argv == ["--version"]:
        from . import __version__

        print(f"ppipe {__version__}")
        return 0
    config = None if COMPLETE_VAR in os.environ else quick_parse(argv)
    if config is not None:
        from .command import run_command

        return run_command(config)
    return _with_typer()


def _with_typer() -> int:
    from .cli import app

    if COMPLETE_VAR in os.environ:
        from typer._completion_classes import completion_init

        completion_init()
    app(prog_name="ppipe")
    return 0  # typer exits on its own; this is not reached

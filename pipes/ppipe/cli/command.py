"""What the command line asked for, and doing it: a frozen :class:`Config` → the library.

The CLI parsers (typer's in :mod:`ppipe.cli.options`, the fast one in
:mod:`ppipe.cli.entry`) only build a :class:`Config`; :func:`run_command` does
the rest and returns the exit status. Nothing here imports typer or rich.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import shlex
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ppipe.cli import report
from ppipe.errors import ExitStatus, PpipeError, UsageError
from ppipe.graph import Graph, Stage

if TYPE_CHECKING:
    from ppipe.results import RunResult
    from ppipe.shards.execution import ShardPlan


class DisplayMode(str, enum.Enum):
    """``--display``: when to draw the live view on stderr."""

    AUTO = "auto"  # when stderr is a terminal and not --quiet
    ALWAYS = "always"
    NEVER = "never"


class ProgressMode(str, enum.Enum):
    """``--progress``: status lines for logs when there is no live view."""

    NONE = "none"
    PLAIN = "plain"


#: What counting lines for the view may copy per second on an edge the kernel
#: moves (bytes); past that it counts a sample spread through the run and
#: estimates the rest (shown ``≈``). Counting reads a copy of every byte and
#: looks at it: 0.4-1 s of ppipe's CPU per GiB (text costs most), so this
#: rate is at most ~1.5% of a core per edge. Lines of a slower edge, and of
#: every edge ppipe pumps through Python anyway, stay exact; ``--lines`` and
#: ``--report`` count them all.
VIEW_LINES_BELOW = 16 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    """Everything the command line asked for."""

    pipeline: str
    no_fail: bool = False
    timeout: float | None = None
    kill_after: float = 2.0
    explain: bool = False
    report: str | None = None
    quiet: bool = False
    #: None: count lines when they will be seen (the report or the view shows them).
    lines: bool | None = None
    #: ``auto`` (a view when stderr is a terminal), ``always`` or ``never``.
    display: str = "auto"
    #: ``plain``: a status line every few seconds when there is no view (CI logs).
    progress: str = "none"
    #: ``--pager``: the last stage gets the terminal (see RunOptions.pager); None: when it is a pager
    #: and stdout is a terminal (resolved by :func:`with_pager` once the pipeline is parsed).
    pager: bool | None = None
    #: ``--fork N``: run N shards (0: one per CPU); None: one plain run.
    fork: int | None = None
    max_restarts: int = 0
    fail_fast: bool = False
    tag: bool = False
    keep_order: bool = False
    #: ``--block``: input block size for split input, as given (``1M``); None: the default.
    block: str | None = None
    #: ``--task-id/--tasks``: this run's place in a cluster job array.
    task_id: int | None = None
    tasks: int | None = None

    @property
    def shows_view(self) -> bool:
        if self.pager:
            return False  # the pager owns the terminal
        if self.display == "auto":
            return not self.quiet and sys.stderr is not None and sys.stderr.isatty()
        return self.display == "always"

    @property
    def count_lines(self) -> bool:
        return (self.report is not None or self.shows_view) if self.lines is None else self.lines

    @property
    def count_lines_below(self) -> int | None:
        """Lines counted only for the view are counted while they cost nothing (see VIEW_LINES_BELOW)."""
        return VIEW_LINES_BELOW if self.lines is None and self.report is None else None


# ---------------------------------------------------------------- option values, read once for both parsers

#: ``--timeout``/``--kill-after``: a plain decimal number (``30``, ``0.5``, ``.5``, ``2e3``) or ``inf``.
_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity", re.IGNORECASE)
#: The largest count any option takes: more is a slip of the finger, and far more is past the
#: digits Python turns into an int at all.
MOST = 999_999_999
#: Count options by Config field: (the least value, what the number counts, for the message).
_COUNTS = {
    "fork": (0, "a number of shards, 0 (one per CPU) or more"),
    "max_restarts": (0, "a number of restarts, 0 or more"),
    "task_id": (0, "a task number, 0 or more (ids count from 0)"),
    "tasks": (1, "a number of tasks, 1 or more"),
}
_CHOICES: dict[str, type[enum.Enum]] = {"display": DisplayMode, "progress": ProgressMode}
#: Options whose text is kept as given (``--block`` is read when a sharded run is planned).
_TEXTS = frozenset({"report", "block"})


def option_name(field: str) -> str:
    """``max_restarts`` → ``--max-restarts``."""
    return "--" + field.replace("_", "-")


def read_value(field: str, text: str) -> Any:
    """The value of the Config field ``field`` given on the command line as ``text``.

    Both command-line parsers read every option value here, so they accept
    the same values and refuse the others with the same sentence: a
    :class:`UsageError` (exit status 2) naming the option, what it takes and
    what it got.
    """
    if field in _TEXTS:
        return text
    if field in _CHOICES:
        return read_choice(option_name(field), text, _CHOICES[field])
    if field in _COUNTS:
        least, meaning = _COUNTS[field]
        return read_count(option_name(field), text, least, meaning)
    return read_seconds(option_name(field), text)


def _shown(text: str) -> str:
    """An option's text as a message quotes it: cut short when it is long (a 5000-digit number)."""
    return repr(text if len(text) <= 40 else text[:30] + "...")


def read_seconds(option: str, text: str) -> float:
    """A number of seconds as ``timeout(1)`` reads it: decimal, optionally with an exponent, or ``inf``.

    ``1e999`` is ``inf`` too (both: no limit). A sign, ``nan``, hex digits,
    underscores and spaces are refused.
    """
    if not _SECONDS.fullmatch(text):
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
_SIZE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[kKmMgG]?")
#: The largest ``--block``: ppipe holds about two blocks per shard in memory (GNU parallel stops at 2G).
MOST_BLOCK = 1 << 30


def block_size(text: str) -> int:
    """The ``--block`` size in bytes; a :class:`UsageError` for anything but a size from 1 byte to 1G."""
    from ppipe.shards.input import parse_size

    if not _SIZE.fullmatch(text):
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


def run_command(config: Config) -> int:
    """Does what the command line asked; returns the exit status.

    Errors are printed as ``ppipe: ...`` lines, never tracebacks. When the
    run was interrupted by a signal, the same signal is raised again at the
    end (after the report is written) so that a calling shell sees ppipe
    killed by it and stops a loop, as it would for any other program.
    """
    from ppipe.cli.explain import explain_text
    from ppipe.language.parser import parse

    graph: Graph | None = None
    try:
        if config.report:
            report.check_destination(config.report)
        plan, placeholders = _shards(config)
        if config.explain:
            shards = (plan.offset, plan.total) if plan is not None else None
            text, status = explain_text(config.pipeline, shards=shards, placeholders=placeholders)
            return print_out(text) or status
        if plan is None:  # parsed here, once: the pager is decided from it, and a failed start reports it
            graph = parse(config.pipeline, placeholders=placeholders)
            config = with_pager(config, graph)
        return _finish(config, _run(graph or config.pipeline, plan, config))
    except PpipeError as error:
        print_error(str(error).splitlines())
        if config.report and not isinstance(error, report.ReportError):
            _write_report(report.build_for_error(config.pipeline, error, graph), config.report)
        return error.status


def _finish(config: Config, result: RunResult) -> int:
    """Failure lines, the report, the status; the interrupting signal raised again."""
    from ppipe.cli.summary import failure_lines

    if not config.quiet and not config.shows_view:
        print_error(failure_lines(result))
    status = result.exit_status
    if config.report and not _write_report(report.build(result), config.report):
        status = status or ExitStatus.FAILURE
    if result.interrupted_by:
        reraise(signal.Signals[result.interrupted_by])
    return status


#: The Config fields of options that only mean something with ``--fork``.
_SHARD_OPTIONS = ("max_restarts", "fail_fast", "tag", "keep_order", "block")


def _shards(config: Config) -> tuple[ShardPlan | None, dict[str, str] | None]:
    """The shard plan for ``--fork``; or, to run once, a cluster task's placeholder values (None: none).

    A cluster task's identity (``--task-id/--tasks``, Slurm's or Kubernetes'
    variables) is looked for only when the run is sharded or the pipeline
    uses a placeholder; without one, placeholders stay as they are. The
    values go to :func:`~ppipe.language.parser.parse`, which puts them into the
    parsed words: filled into the text, ``{task_id}>f`` would read as ``0>f``.
    """
    from ppipe.language.parser import has_placeholders, placeholder_values

    asks_identity = (
        config.fork is not None
        or config.task_id is not None
        or config.tasks is not None
        or has_placeholders(config.pipeline)
    )
    identity = None
    if asks_identity:  # the shard machinery is imported only then: it costs a plain run's start-up ~15 ms
        from ppipe.shards.execution import cluster_identity

        identity = cluster_identity(os.environ, config.task_id, config.tasks)
    if config.fork is None:
        for name in _SHARD_OPTIONS:
            if getattr(config, name) not in (None, False, 0):
                raise UsageError(f"{option_name(name)} needs --fork N")
        if identity is None:
            return None, None
        return None, placeholder_values(identity.task_id, identity.tasks)
    if config.pager:
        raise UsageError(
            "--pager hands the terminal to one stage; a sharded run merges its shards' output "
            "(pipe ppipe --fork ... into less instead)"
        )
    from ppipe.shards.execution import ShardPlan
    from ppipe.shards.input import DEFAULT_BLOCK

    block = block_size(config.block) if config.block is not None else DEFAULT_BLOCK
    plan = ShardPlan(
        config.fork,
        max_restarts=config.max_restarts,
        fail_fast=config.fail_fast,
        tag=config.tag,
        keep_order=config.keep_order,
        block=block,
    )
    if identity is not None:
        plan = dataclasses.replace(plan, offset=identity.task_id * plan.local, tasks=identity.tasks * plan.local)
    return plan, None


#: Programs that take the terminal over to page what they read; ``$PAGER``'s too.
PAGERS = frozenset({"less", "more", "most", "pg"})


def with_pager(config: Config, graph: Graph) -> Config:
    """``config`` with ``pager`` decided: asked for, refused, or because the last stage is a pager on a terminal.

    Raises :class:`UsageError` for ``--pager`` when no single stage writes the output.
    """
    last = graph.last_stage()
    if config.pager and last is None:
        raise UsageError(
            "--pager hands the terminal to the one stage writing the output; "
            "this pipeline has none (it ends in a group or a redirection)"
        )
    if config.pager is None:
        on_terminal = sys.stdout is not None and sys.stdout.isatty()
        return dataclasses.replace(config, pager=on_terminal and last is not None and is_pager(last, os.environ))
    return config


def is_pager(stage: Stage, env: Mapping[str, str]) -> bool:
    """Whether the stage runs less, more, most, pg, or the command ``$PAGER`` holds.

    ``$PAGER`` matches by its program's name and every argument it gives
    (``PAGER="python3 -m mypager"`` is not every ``python3``); ``PAGER=cat``,
    the usual way to turn paging off, names no pager.
    """
    program = os.path.basename(stage.argv[0])
    if program in PAGERS:
        return True
    try:
        pager = shlex.split(env.get("PAGER", ""))
    except ValueError:
        return False
    return (
        bool(pager) and program == os.path.basename(pager[0]) != "cat" and list(stage.argv[1 : len(pager)]) == pager[1:]
    )


def _options(config: Config) -> dict[str, Any]:
    return {
        "no_fail": config.no_fail,
        "timeout": config.timeout,
        "kill_after": config.kill_after,
        "handle_signals": True,
        "count_lines": config.count_lines,
        "count_lines_below": config.count_lines_below,
        "pager": bool(config.pager),
    }


def _run(pipeline: str | Graph, plan: ShardPlan | None, config: Config) -> RunResult:
    """Runs the pipeline to the end under what the config asks to see: the live view (then its summary),
    ``--progress plain`` lines, or nothing. rich is imported only for the first two."""
    import asyncio

    from ppipe.engine.execution import RunOptions
    from ppipe.launch import launch

    options = RunOptions(**_options(config))
    if not config.shows_view:
        observer = None
        if config.progress == "plain" and not config.quiet and not config.pager:
            from ppipe.cli.display import PlainProgress

            observer = PlainProgress(sys.stderr)
        return asyncio.run(launch(pipeline, options, plan, observer))
    from ppipe.cli.display import LiveView, ShardView

    # The run's one shape-dependent choice: a plain run's rows are its stages, a sharded run's its shards.
    view = (LiveView if plan is None else ShardView)(sys.stderr, show_output=_output_on_view_terminal())
    with view:
        result = asyncio.run(launch(pipeline, options, plan, view))
    if not config.quiet:
        view.console.print(view.render_summary(result))
    return result


def _output_on_view_terminal() -> bool:
    """Whether the pipeline's output would land on the terminal the view draws on (then the view prints it)."""
    return sys.stdout is not None and sys.stdout.isatty() and _same_file(1, 2)


def _same_file(a: int, b: int) -> bool:
    try:
        first, second = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino, first.st_rdev) == (second.st_dev, second.st_ino, second.st_rdev)


def _write_report(data: dict[str, object], destination: str) -> bool:
    try:
        report.write(data, destination)
    except OSError as error:
        print_error([f"cannot write the report to {destination}: {error.strerror}"])
        return False
    return True


def print_out(text: str) -> int:
    """Prints on stdout; a reader that left (``--explain ... | head``) or no stdout at all is not an error."""
    if sys.stdout is None:
        return 0
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass
    return 0


def print_error(lines: list[str]) -> None:
    """Prints lines on stderr; each that is not an indented detail is prefixed ``ppipe:``."""
    if sys.stderr is None:
        return
    try:
        for line in lines:
            prefix = "" if line.startswith((" ", "ppipe:")) else "ppipe: "
            sys.stderr.write(f"{prefix}{line}\n")
        sys.stderr.flush()
    except OSError:
        pass  # stderr closed or full: the exit status still tells


def reraise(sig: signal.Signals) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)

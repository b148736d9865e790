"""Doing what the command line asked for: a frozen :class:`~ppipe.cli.config.Config` → the library.

The CLI parsers (typer's in :mod:`ppipe.cli.options`, the fast one in
:mod:`ppipe.cli.entry`) only build a :class:`~ppipe.cli.config.Config`;
:func:`run_command` does the rest and returns the exit status. Nothing here
imports typer or rich, and what only some runs need is imported when they
need it: the report writer (and json) only with ``--report``, ``--explain``'s
module only for it, the view (rich) only when it is drawn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ppipe import interrupts
from ppipe.cli.config import Config
from ppipe.cli.printing import print_error, print_out, reraise
from ppipe.cli.sharding import placeholder_warnings, shard_plan, task_stdin
from ppipe.errors import ExitStatus, PpipeError, UsageError
from ppipe.graph import Graph, Stage

if TYPE_CHECKING:
    from types import ModuleType

    from ppipe.cli.display import LiveView
    from ppipe.cluster.remote import SlurmSpec
    from ppipe.engine.slices import FileSlice
    from ppipe.identity import TaskIdentity
    from ppipe.results import RunResult
    from ppipe.shards.plan import ShardPlan
    from ppipe.snapshots import RunObserver


def run_command(config: Config) -> int:
    """Does what the command line asked; returns the exit status.

    Errors are printed as ``ppipe: ...`` lines, never tracebacks. When the
    run was interrupted by a signal, the same signal is raised again at the
    end (after the report is written) so that a calling shell sees ppipe
    killed by it and stops a loop, as it would for any other program.
    """
    from ppipe.language.parser import parse

    graph: Graph | None = None
    identity: TaskIdentity | None = None
    try:
        if config.report:
            _report().check_destination(config.report)
        sharding = shard_plan(config)
        identity = sharding.identity
        plan, placeholders = sharding.plan, sharding.placeholders
        if config.on is not None and not config.explain:
            from ppipe.cli.cluster import slurm_spec

            spec = slurm_spec(config, plan)
            assert plan is not None
            return _run_on_slurm(config, spec, plan)
        if plan is not None and not config.quiet:
            print_error(placeholder_warnings(config.pipeline, each=plan.items is not None))
        if config.explain:
            from ppipe.cli.explain import explain_text

            text, status = explain_text(
                config.pipeline, plan=plan, placeholders=placeholders, identity=sharding.identity
            )
            return print_out(text) or status
        if plan is None:  # parsed here, once: the pager is decided from it, and a failed start reports it
            graph = parse(config.pipeline, placeholders=placeholders)
            config = with_pager(config, graph)
        stdin = None
        if sharding.identity is not None:  # a job array's task reads its share of a file
            first = graph or parse(config.pipeline, placeholders=plan.first_values() if plan else None)
            stdin = task_stdin(config, sharding, first)
        return _finish(config, _run(graph or config.pipeline, plan, config, stdin), sharding.identity)
    except PpipeError as error:
        print_error(str(error).splitlines())
        if config.report and not isinstance(error, _report().ReportError):
            _write_report(_report().build_for_error(config.pipeline, error, graph, identity), config.report)
        return error.status


def _finish(
    config: Config, result: RunResult, identity: TaskIdentity | None = None, lines: Sequence[str] | None = None
) -> int:
    """Failure lines (``lines``, or the result's where no view showed them), the report, the status; the
    interrupting signal raised again."""
    from ppipe.summary import failure_lines

    if not config.quiet and lines is not None:
        print_error(list(lines))
    elif not config.quiet and not config.shows_view:
        print_error(failure_lines(result))
    status = result.exit_status
    if config.report and not _write_report(_report().build(result, identity), config.report):
        status = status or ExitStatus.FAILURE
    if result.stopped_by is not None and result.stopped_by.signal is not None:
        reraise(signal.Signals(result.stopped_by.signal))
    elif interrupts.take():  # a Ctrl-C Python swallowed, and no run took it: it still ends ppipe
        reraise(signal.SIGINT)
    return status


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
        "pager": bool(config.pager),
    }


def _run(pipeline: str | Graph, plan: ShardPlan | None, config: Config, stdin: FileSlice | None = None) -> RunResult:
    """Runs the pipeline to the end under what the config asks to see: the live view (then its summary),
    ``--progress plain`` lines, or nothing."""
    from ppipe.engine.options import RunOptions
    from ppipe.engine.processes import valid_signals_once
    from ppipe.launch import run_to_end

    valid_signals_once()  # the command line's process is ppipe's own
    options = RunOptions(**_options(config), stdin=stdin)
    with _watching(config) as (observer, view):
        result = run_to_end(pipeline, options, plan, observer)
    if view is not None and not config.quiet:
        view.print(view.render_summary(result))
    return result


@contextlib.contextmanager
def _watching(config: Config) -> Iterator[tuple[RunObserver | None, LiveView | None]]:
    """The run's observer, as the config asks: the live view (drawn until the block ends), ``--progress`` lines,
    or none. rich is imported only for the view."""
    if interrupts.pending():  # a Ctrl-C came while ppipe was loading, and Python swallowed it: nothing starts
        raise KeyboardInterrupt
    if not config.shows_view:
        observer: RunObserver | None = None
        if config.progress != "none" and not config.quiet and not config.pager:
            from ppipe.cli.progress import JsonProgress, PlainProgress

            if not 0 < config.progress_interval < float("inf"):
                raise UsageError("--progress-interval takes a number of seconds above 0, such as 5 or 0.5")
            kind = JsonProgress if config.progress == "json" else PlainProgress
            observer = kind(sys.stderr, every=config.progress_interval)
        yield observer, None
        return
    from ppipe.cli.display import LiveView

    view = LiveView(sys.stderr, show_output=_output_on_view_terminal())
    with view:
        yield view, view


def _run_on_slurm(config: Config, spec: SlurmSpec, plan: ShardPlan) -> int:
    """``--on slurm``: the array submitted and followed, its reports merged, the status by the local rules."""
    import asyncio

    from ppipe.cluster.outcome import run_on_slurm
    from ppipe.engine.options import RunOptions

    with _watching(config) as (observer, view):
        ended = asyncio.run(run_on_slurm(spec, plan, RunOptions(handle_signals=True), observer))
    if view is not None and not config.quiet and (last := view.snapshot()) is not None:
        view.print(view.frame(last))  # the tasks as they ended: no stages to show here
    return _finish(config, ended.result, lines=ended.lines)


def _output_on_view_terminal() -> bool:
    """Whether the pipeline's output would land on the terminal the view draws on (then the view prints it)."""
    return sys.stdout is not None and sys.stdout.isatty() and _same_file(1, 2)


def _same_file(a: int, b: int) -> bool:
    try:
        first, second = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino, first.st_rdev) == (second.st_dev, second.st_ino, second.st_rdev)


def _report() -> ModuleType:
    """The report writer, imported only by runs with ``--report`` (it brings json, tempfile and shutil)."""
    from ppipe.cli import report

    return report


def _write_report(data: dict[str, object], destination: str) -> bool:
    try:
        _report().write(data, destination)
    except OSError as error:
        print_error([f"cannot write the report to {destination}: {error.strerror}"])
        return False
    return True

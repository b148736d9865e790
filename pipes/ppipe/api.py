"""The Python API: ``ppipe.parse``, ``ppipe.run`` and ``await ppipe.run_async``.

Example::

    import ppipe

    result = ppipe.run("seq 10 | grep 1 | wc -l", stdout=ppipe.CAPTURE, count_lines=True)
    assert result.stdout == b"2\\n" and result.ok
    print(result.edge(1, 2).lines)            # 10 lines went from seq to grep

    result = ppipe.run("sort | uniq -c", stdin=b"b\\na\\nb\\n", stdout=ppipe.CAPTURE)

    async def main() -> None:                 # already on an event loop
        result = await ppipe.run_async("yes | head -3", stdout=ppipe.CAPTURE)
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from ppipe.engine.options import Input, Output, RunOptions
from ppipe.graph import Graph
from ppipe.launch import launch
from ppipe.policy import Halt, parse_halt
from ppipe.results import RunResult
from ppipe.shards.input import DEFAULT_BLOCK
from ppipe.shards.joblog import Resume
from ppipe.shards.plan import ShardPlan
from ppipe.snapshots import RunObserver


async def run_async(
    pipeline: str | Graph,
    *,
    stdin: Input = None,
    stdout: Output = None,
    stderr: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    no_fail: bool = False,
    timeout: float | None = None,
    kill_after: float = 2.0,
    handle_signals: bool = False,
    count_lines: bool = False,
    splice: bool | None = None,
    pager: bool = False,
    observer: RunObserver | None = None,
    check: bool = False,
    fork: int | None = None,
    max_restarts: int = 0,
    fail_fast: bool = False,
    tag: bool = False,
    keep_order: bool = False,
    block: int = DEFAULT_BLOCK,
    jobs: int | None = None,
    items: Sequence[str] | None = None,
    halt: Halt | str | None = None,
    shard_timeout: float | None = None,
    retry_delay: float = 0.0,
    joblog: str | None = None,
    resume: Resume = Resume.NONE,
    record_end: bytes = b"\n",
    header: int = 0,
) -> RunResult:
    """Runs a pipeline on the running event loop and returns its :class:`~ppipe.RunResult`.

    ``pipeline`` is text (parsed with ``env`` and ``cwd``) or a parsed
    :class:`~ppipe.graph.Graph`. ``stdin`` is a descriptor the first stage
    reads (default: this process's stdin) or ``bytes`` to feed it.
    ``stdout`` is a descriptor (default: this process's stdout) or
    :data:`~ppipe.CAPTURE`. Stages' stderr goes to ``stderr`` (default fd 2);
    each stage's last stderr lines are in its result either way.

    Bytes are counted on every edge ppipe carries. Lines are counted only
    with ``count_lines=True`` (a pass over every byte), and then exactly, on
    every edge: an edge's ``lines`` is what ``wc -l`` would say of its bytes
    (plus a last line without a newline); otherwise ``lines`` is None.
    ``splice`` forces the Linux fast path on or off (default: on where
    available, unless ``PPIPE_SPLICE=0``). ``pager=True``
    says the stage writing ``stdout`` is a pager owning the terminal: the
    other stages' stderr is held until the end and Ctrl-C from the terminal
    is left to the stages (see ``Execution.pager`` in :mod:`ppipe.engine`).

    ``fork=N`` runs N shards of the pipeline (0: one per CPU; see
    :mod:`ppipe.shards.execution`); the pipeline must then be text, its
    ``{task_id}``, ``{task_num}`` and ``{tasks}`` replaced in each shard.
    ``items`` runs one shard per item instead, its text filled in for
    ``{item}`` (``--each``). ``max_restarts`` (per shard), ``fail_fast``,
    ``tag``, ``keep_order``, ``block``, ``jobs``, ``halt`` (a
    :class:`~ppipe.policy.Halt` or its text, ``"now,fail=1"``),
    ``shard_timeout``, ``retry_delay``, ``joblog``, ``resume``
    (:class:`~ppipe.shards.joblog.Resume`) and ``header`` are the command
    line's options of the same names; ``record_end`` is ``--recend``. The
    command line's other options are not keywords here: those that show or
    write what happened (``--display``, ``--progress``, ``--report``,
    ``--quiet``, ``--explain``) and those of clusters (``--on``, ``--sbatch``,
    ``--task-id``, ``--tasks``, ``--whole-input``). The result has
    the same shape either way (:class:`~ppipe.RunResult`): its shards, each
    with its attempts; a plain run is one shard with one attempt, and its
    stages and edges are on the result itself. ``observer``
    (:class:`~ppipe.snapshots.RunObserver`) watches either kind of run.

    A failing stage does not raise: read ``result.exit_status`` or pass
    ``check=True`` to get :class:`~ppipe.errors.PipelineFailed`. Bad syntax
    and missing commands raise :class:`~ppipe.errors.PpipeError` subclasses
    before anything runs. Must run in the main thread (tornado's SIGCHLD
    handling needs it). Cancelling the call stops and reaps every stage.
    """
    options = RunOptions(
        no_fail=no_fail,
        timeout=timeout,
        kill_after=kill_after,
        handle_signals=handle_signals,
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        count_lines=count_lines,
        splice=splice,
        pager=pager,
    )
    plan = None
    if fork is not None or items is not None:
        plan = ShardPlan(
            fork or 0,
            max_restarts=max_restarts,
            fail_fast=fail_fast,
            tag=tag,
            keep_order=keep_order,
            block=block,
            jobs=jobs,
            items=None if items is None else tuple(items),
            halt=parse_halt(halt) if isinstance(halt, str) else halt,
            shard_timeout=shard_timeout,
            retry_delay=retry_delay,
            joblog=joblog,
            resume=resume,
            record_end=record_end,
            header=header,
        )
    result = await launch(pipeline, options, plan, observer)
    return result.check() if check else result


def run(
    pipeline: str | Graph,
    *,
    stdin: Input = None,
    stdout: Output = None,
    stderr: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    no_fail: bool = False,
    timeout: float | None = None,
    kill_after: float = 2.0,
    handle_signals: bool = False,
    count_lines: bool = False,
    splice: bool | None = None,
    pager: bool = False,
    observer: RunObserver | None = None,
    check: bool = False,
    fork: int | None = None,
    max_restarts: int = 0,
    fail_fast: bool = False,
    tag: bool = False,
    keep_order: bool = False,
    block: int = DEFAULT_BLOCK,
    jobs: int | None = None,
    items: Sequence[str] | None = None,
    halt: Halt | str | None = None,
    shard_timeout: float | None = None,
    retry_delay: float = 0.0,
    joblog: str | None = None,
    resume: Resume = Resume.NONE,
    record_end: bytes = b"\n",
    header: int = 0,
) -> RunResult:
    """Runs a pipeline to the end in a fresh event loop; the arguments are :func:`run_async`'s.

    Safe to call many times in one process: each call installs tornado's
    SIGCHLD handler on its own loop and removes it afterwards.
    """
    return asyncio.run(
        run_async(
            pipeline,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            no_fail=no_fail,
            timeout=timeout,
            kill_after=kill_after,
            handle_signals=handle_signals,
            count_lines=count_lines,
            splice=splice,
            pager=pager,
            observer=observer,
            check=check,
            fork=fork,
            max_restarts=max_restarts,
            fail_fast=fail_fast,
            tag=tag,
            keep_order=keep_order,
            block=block,
            jobs=jobs,
            items=items,
            halt=halt,
            shard_timeout=shard_timeout,
            retry_delay=retry_delay,
            joblog=joblog,
            resume=resume,
            record_end=record_end,
            header=header,
        )
    )

"""The Python API: ``ppipe.run``, ``ppipe.stream`` and their async twins, their keywords declared once.

:class:`PipelineKeywords` are every run's keywords; :class:`RunKeywords`
adds ``stdout`` for :func:`run`; :func:`stream` owns the output and reads it
line by line as it comes (see :mod:`ppipe.streaming`).

Example::

    import ppipe

    result = ppipe.run("seq 10 | grep 1 | wc -l", stdout=ppipe.CAPTURE, count_lines=True)
    assert result.stdout == b"2\\n" and result.ok
    print(result.edge(1, 2).lines)            # 10 lines went from seq to grep

    result = ppipe.run("sort | uniq -c", input=b"b\\na\\nb\\n", stdout=ppipe.CAPTURE)

    with ppipe.stream("zcat big.gz | grep x", encoding="utf-8") as run:
        for line in run:                      # each line as soon as it is whole
            if line.startswith("stop"):
                break                         # the reader leaves: grep gets a broken pipe, excused
    print(run.result.ok)

    async def main() -> None:                 # already on an event loop
        result = await ppipe.run_async("yes | head -3", stdout=ppipe.CAPTURE)
        async with ppipe.stream_async("seq 3") as run:
            lines = [line async for line in run]
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, TypedDict, cast, overload

from ppipe.engine.options import CAPTURE, Capture, RunOptions
from ppipe.engine.outlet import Outlet
from ppipe.graph import Graph
from ppipe.launch import launch, prepare_run
from ppipe.lines import Lines, byte_lines, text_lines
from ppipe.policy import Halt, parse_halt
from ppipe.results import RunResult
from ppipe.shards.joblog import Resume
from ppipe.shards.plan import ShardPlan
from ppipe.snapshots import RunObserver
from ppipe.streaming import AsyncStreamedRun, Start, StreamedRun

if TYPE_CHECKING:
    from typing import Unpack  # Python 3.11; annotations are not evaluated at run time, so 3.10 runs ppipe too

    from ppipe.cluster.remote import SlurmSpec


class PipelineKeywords(TypedDict, total=False):
    """The keyword arguments of every run, each optional; mypy checks callers' keywords.

    :func:`run` and :func:`run_async` take these and ``stdout``
    (:class:`RunKeywords`); :func:`stream` and :func:`stream_async` take
    these alone, since the output is theirs.

    Where the pipeline reads, as :mod:`subprocess` takes it:
    ``input`` is bytes ppipe feeds the first stage; ``stdin`` a descriptor or
    a file object it reads instead (default: this process's stdin);
    ``stderr`` the stages' stderr (default fd 2; each
    stage's last lines are in its result either way). ``env`` and ``cwd``
    are the stages', and the text is expanded with them.

    The others are the command line's options of the same names, with the
    same defaults (``fork``: None, one plain run): ``no_fail``,
    ``timeout``, ``kill_after``, ``pager``, ``fork``, ``max_restarts``,
    ``fail_fast``, ``tag``, ``tag_format``, ``keep_order``, ``block`` (bytes),
    ``jobs``, ``halt`` (a :class:`~ppipe.policy.Halt` or its text,
    ``"now,fail=1"``), ``shard_timeout``, ``retry_delay``, ``joblog``,
    ``resume`` (:class:`~ppipe.shards.joblog.Resume`) and ``header``;
    ``count_lines`` is ``--lines``, ``record_end`` is ``--recend``
    (``b"\\0"``: ``--null``) and ``items`` are ``--each``'s lines. The
    shard options mean something only with ``fork`` or ``items``.
    ``check``, ``observer``, ``handle_signals`` and ``splice`` are the
    library's own: see :func:`run_async`. ``on="slurm"`` runs the ``fork``
    shards as the tasks of a Slurm job array, as ``--on slurm`` does:
    ``sbatch`` are ``--sbatch``'s arguments, ``run_directory`` where the
    tasks' files go (default: a new one under ``ppipe-runs/`` here, which
    the tasks must see).
    """

    input: bytes | None
    stdin: int | IO[Any] | None
    stderr: int | IO[Any] | None
    env: Mapping[str, str] | None
    cwd: str | None
    check: bool
    observer: RunObserver | None
    handle_signals: bool
    splice: bool | None
    no_fail: bool
    timeout: float | None
    kill_after: float
    count_lines: bool
    pager: bool
    fork: int | None
    items: Sequence[str] | None
    max_restarts: int
    fail_fast: bool
    tag: bool
    tag_format: str | None
    keep_order: bool
    block: int
    jobs: int | None
    halt: Halt | str | None
    shard_timeout: float | None
    retry_delay: float
    joblog: str | None
    resume: Resume
    record_end: bytes
    header: int
    on: str | None
    sbatch: Sequence[str]
    run_directory: str | None


class RunKeywords(PipelineKeywords, total=False):
    """The keyword arguments of :func:`run` and :func:`run_async`: :class:`PipelineKeywords` and ``stdout``.

    ``stdout`` is a descriptor, a file object or :data:`CAPTURE` (then
    ``result.stdout``); default: this process's stdout, handed to the last
    stage as it is.
    """

    stdout: int | IO[Any] | Capture | None


async def run_async(pipeline: str | Graph, **keywords: Unpack[RunKeywords]) -> RunResult:
    """Runs a pipeline on the running event loop and returns its :class:`~ppipe.RunResult`.

    ``pipeline`` is text (parsed with ``env`` and ``cwd``) or a parsed
    :class:`~ppipe.graph.Graph`; the keywords are :class:`RunKeywords`.

    Bytes are counted on every edge ppipe carries. Lines are counted only
    with ``count_lines=True`` (a pass over every byte), and then exactly, on
    every edge: an edge's ``lines`` is what ``wc -l`` would say of its bytes
    (plus a last line without a newline); otherwise ``lines`` is None.
    ``splice`` forces the Linux fast path on or off (default: on where
    available, unless ``PPIPE_SPLICE=0``). ``pager=True``
    says the stage writing ``stdout`` is a pager owning the terminal: the
    other stages' stderr is held until the end and Ctrl-C from the terminal
    is left to the stages (see ``Execution.pager`` in :mod:`ppipe.engine`).
    ``handle_signals=True`` forwards SIGINT, SIGTERM and SIGHUP to the
    stages, as the command line does.

    ``fork=N`` runs N shards of the pipeline (0: one per CPU); the pipeline
    must then be text, its ``{task_id}``, ``{task_num}`` and ``{tasks}``
    replaced in each shard; ``items`` runs one shard per item instead, its
    text filled in for ``{item}``. The result has the same shape either way
    (:class:`~ppipe.RunResult`): its shards, each with its attempts; a plain
    run is one shard with one attempt, and its stages and edges are on the
    result itself. ``observer`` (:class:`~ppipe.RunObserver`) watches
    either kind of run.

    A failing stage does not raise: read ``result.exit_status`` or pass
    ``check=True`` to get :class:`~ppipe.errors.PipelineFailed`. Bad syntax
    and missing commands raise :class:`~ppipe.errors.PpipeError` subclasses
    before anything runs; a keyword ppipe does not take, or bytes given as
    ``stdin``, raise TypeError. Must run in the main thread (tornado's
    SIGCHLD handling needs it). Cancelling the call stops and reaps every
    stage.
    """
    return await _launch(pipeline, keywords, *_options("run_async", keywords))


def run(pipeline: str | Graph, **keywords: Unpack[RunKeywords]) -> RunResult:
    """Runs a pipeline to the end in a fresh event loop; the arguments are :func:`run_async`'s.

    Safe to call many times in one process: each call installs tornado's
    SIGCHLD handler on its own loop and removes it afterwards.
    """
    options, plan = _options("run", keywords)  # a bad keyword raises before a loop is made
    return asyncio.run(_launch(pipeline, keywords, options, plan))


@overload
def stream(
    pipeline: str | Graph, *, encoding: None = None, errors: None = None, **keywords: Unpack[PipelineKeywords]
) -> StreamedRun[bytes]: ...


@overload
def stream(
    pipeline: str | Graph, *, encoding: str, errors: str | None = None, **keywords: Unpack[PipelineKeywords]
) -> StreamedRun[str]: ...


def stream(
    pipeline: str | Graph,
    *,
    encoding: str | None = None,
    errors: str | None = None,
    **keywords: Unpack[PipelineKeywords],
) -> StreamedRun[bytes] | StreamedRun[str]:
    """A run whose output is read in Python as it comes: ``with ppipe.stream(text) as run: for line in run:``.

    The keywords are :func:`run`'s (:class:`PipelineKeywords`) but
    ``stdout``: the output is the stream's. Each line is bytes with its
    end, as a file's ``readline`` gives it (the last may have none), or
    str decoded with ``encoding`` (and ``errors``, as :func:`open` takes
    them); lines end with ``record_end`` (default ``b"\\n"``; ``b"\\0"`` is
    ``--null``). A sharded run (``fork``, ``items``) gives its shards'
    merged output, whole lines, as the command line prints it (``tag``,
    ``keep_order``).

    Nothing runs until the block is entered; then errors found before
    anything starts (syntax, a missing command) raise. At most about 1 MiB
    of output waits for the reader: a slow reader slows the run. Leaving
    the block early is a reader leaving (the last stage gets a broken pipe,
    excused); after the block ``run.result`` is the :class:`RunResult`
    (:class:`~ppipe.RunNotFinished` inside it, until every line is read).
    ``check=True`` raises :class:`~ppipe.PipelineFailed` as the block
    ends. ``KeyboardInterrupt`` stops and reaps the run, as in :func:`run`;
    with ``handle_signals=True``, SIGINT stops the run instead and the
    lines end. Runs an event loop of its own in this thread, which must be
    the main thread and have none running (see :func:`stream_async`);
    details in :class:`~ppipe.StreamedRun`.
    """
    lines = _lines("stream", keywords, encoding, errors)
    return StreamedRun(_starting("stream", pipeline, keywords), lines, keywords.get("check", False))


@overload
def stream_async(
    pipeline: str | Graph, *, encoding: None = None, errors: None = None, **keywords: Unpack[PipelineKeywords]
) -> AsyncStreamedRun[bytes]: ...


@overload
def stream_async(
    pipeline: str | Graph, *, encoding: str, errors: str | None = None, **keywords: Unpack[PipelineKeywords]
) -> AsyncStreamedRun[str]: ...


def stream_async(
    pipeline: str | Graph,
    *,
    encoding: str | None = None,
    errors: str | None = None,
    **keywords: Unpack[PipelineKeywords],
) -> AsyncStreamedRun[bytes] | AsyncStreamedRun[str]:
    """:func:`stream` on the running event loop: ``async with ppipe.stream_async(text) as run:``.

    The same arguments, lines and result. Cancelling the block (a timeout,
    Ctrl-C under :func:`asyncio.run`) stops and reaps the run, as
    cancelling :func:`run_async` does. Must run in the main thread.
    """
    lines = _lines("stream_async", keywords, encoding, errors)
    check = keywords.get("check", False)
    return AsyncStreamedRun(_starting("stream_async", pipeline, keywords), lines, check)


def _starting(function: str, pipeline: str | Graph, keywords: PipelineKeywords) -> Start:
    """Checks the keywords now (TypeError, ValueError); the function the stream starts its run with."""
    options, plan = _options(function, keywords, PipelineKeywords.__optional_keys__)
    if options.pager:
        raise ValueError(f"{function}() gives the output to Python: there is no pager to hand it to")

    def start(outlet: Outlet) -> Coroutine[Any, Any, RunResult]:
        streamed = dataclasses.replace(options, stdout=outlet)
        on = _cluster(pipeline, keywords, streamed, plan)
        return prepare_run(pipeline, streamed, plan, keywords.get("observer"), on=on).run()

    return start


def _lines(function: str, keywords: PipelineKeywords, encoding: str | None, errors: str | None) -> Lines[Any]:
    """How the output is cut and decoded: at ``record_end``, as bytes or as ``encoding``'s text."""
    end = keywords.get("record_end", b"\n")
    if not end:
        raise ValueError(f"{function}() takes a record_end of at least one byte")
    if encoding is None:
        if errors is not None:
            raise ValueError(f"{function}() takes errors= only with encoding= (lines are bytes without it)")
        return byte_lines(end)
    return text_lines(encoding, errors or "strict", end)


#: The keywords passed on as they are to the engine's RunOptions, and to ShardPlan: their fields of the same names.
_RUN_FIELDS = {field.name for field in dataclasses.fields(RunOptions)} - {"stdin", "stdout", "stderr", "observer"}
_PLAN_FIELDS = {field.name for field in dataclasses.fields(ShardPlan)}
_SHARD_FIELDS = (_PLAN_FIELDS & RunKeywords.__optional_keys__) - {"items", "halt"}


async def _launch(
    pipeline: str | Graph, keywords: RunKeywords, options: RunOptions, plan: ShardPlan | None
) -> RunResult:
    on = _cluster(pipeline, keywords, options, plan)
    result = await launch(pipeline, options, plan, keywords.get("observer"), on=on)
    return result.check() if keywords.get("check") else result


def _cluster(
    pipeline: str | Graph, keywords: PipelineKeywords, options: RunOptions, plan: ShardPlan | None
) -> SlurmSpec | None:
    """The Slurm array to run the shards as, for ``on="slurm"``; UsageError for what no array can run."""
    on = keywords.get("on")
    if on is None:
        return None
    from ppipe.cluster.remote import SlurmSpec
    from ppipe.errors import UsageError

    if on != "slurm":
        raise UsageError(f"on= takes 'slurm' (the one scheduler ppipe submits to), not {on!r}")
    if plan is None or not keywords.get("fork") or isinstance(pipeline, Graph):
        raise UsageError("on='slurm' runs fork=N shards of a pipeline's text as a job array: give fork=N")
    if keywords.get("input") is not None or keywords.get("stdin") is not None:
        raise UsageError("on='slurm': tasks on other machines cannot read this process's input; use < FILE")
    directory, sbatch = keywords.get("run_directory"), keywords.get("sbatch", ())
    return SlurmSpec.of(pipeline, plan, options, directory=directory, sbatch=sbatch)


def _options(
    function: str, keywords: PipelineKeywords, accepted: frozenset[str] = RunKeywords.__optional_keys__
) -> tuple[RunOptions, ShardPlan | None]:
    """The engine's options and the shard plan (None: one plain run) for the keywords; TypeError for a bad one."""
    given = cast("dict[str, Any]", keywords)  # checked by mypy at the call; read by name here
    unknown = sorted(given.keys() - accepted)
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
    stdin, data = given.get("stdin"), given.get("input")
    if isinstance(stdin, bytes | bytearray | memoryview):
        raise TypeError(f"{function}() takes a descriptor or a file object as stdin=; pass bytes as input=")
    if stdin is not None and data is not None:
        raise ValueError(f"{function}() takes stdin= or input=, not both")
    stdout = given.get("stdout")
    options = RunOptions(
        **{name: given[name] for name in _RUN_FIELDS & given.keys()},
        stdin=bytes(data) if data is not None else _descriptor(stdin),
        stdout=stdout if stdout is CAPTURE else _descriptor(stdout),
        stderr=_descriptor(given.get("stderr")),
    )
    fork, items, halt = given.get("fork"), given.get("items"), given.get("halt")
    if fork is None and items is None:
        return options, None
    plan = ShardPlan(
        fork or 0,
        items=None if items is None else tuple(items),
        halt=parse_halt(halt) if isinstance(halt, str) else halt,
        **{name: given[name] for name in _SHARD_FIELDS & given.keys()},
    )
    return options, plan


def _descriptor(target: int | IO[Any] | None) -> int | None:
    """A descriptor, or a file object's (as :mod:`subprocess` takes them)."""
    return target if target is None or isinstance(target, int) else target.fileno()

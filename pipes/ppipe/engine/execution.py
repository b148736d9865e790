"""Runs a :class:`~ppipe.graph.Graph` on one event loop and always reaps what it starts.

Every stage is a ``tornado.process.Subprocess`` given plain descriptors that
ppipe created itself (close-on-exec pipes and files it opened), never
``Subprocess.STREAM``: when ``Popen`` fails, tornado's ``STREAM`` clean-up
closes descriptors its new ``PipeIOStream`` s still own, and a later garbage
collection then closes whatever reused those numbers. Every edge between
stages is a pipe into ppipe and another out of it, joined by a
:class:`~ppipe.engine.pumps.Pump` that counts the bytes. ppipe's own stdin and
stdout are handed to the first and last stage as they are (the stage sees
the same terminal or file it would under a shell, and nothing is read ahead
from a stdin the stage never reads); the Python API can instead feed bytes
in or capture the output, which ppipe then pumps and counts.

Before anything starts every command is resolved on ``PATH``, so a missing
command fails with 127 and nothing half-started. A redirection that cannot
be opened fails only its stage, with status 1, as in bash.

The engine owns the ``SIGCHLD`` handler for the run (see
:func:`sigchld_handler`), the signal handlers when asked (SIGINT, SIGTERM,
SIGHUP reach every stage), the ``--timeout`` timer, and the guarantee that
no stage outlives ppipe: stages are reaped on every path out of
:meth:`Execution.run`, and on Linux each stage is also tied to ppipe with
``PR_SET_PDEATHSIG`` so that even ``kill -9`` of ppipe takes them down.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import signal
import stat
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tornado.process import Subprocess

from ppipe import policy
from ppipe.engine.counting import Counter, Tail
from ppipe.engine.descriptors import make_pipe, stream
from ppipe.engine.feed import Feed, read_chunks
from ppipe.engine.processes import (
    Stopping,
    exec_failure,
    handling_signals,
    in_terminal_foreground,
    is_binary_file,
    parent_death_hook,
    resolve_commands,
    sigchld_handler,
    terminal_modes_kept,
)
from ppipe.engine.pumps import SPLICE_AVAILABLE, Pump, SplicePump
from ppipe.engine.sinks import (
    CaptureSink,
    FdSink,
    HeldSink,
    LineJoiner,
    LineMerge,
    Sink,
    StreamSink,
    held_problem,
    sink_for_fd,
)
from ppipe.engine.tee import tee_function
from ppipe.errors import ExitStatus, PpipeError
from ppipe.graph import Boundary, Edge, Graph, RedirectOp, Stage
from ppipe.results import EdgeResult, PipelineResult, StageFlow, StageResult
from ppipe.snapshots import PipelineSnapshot, StageSnapshot, StageState

#: How long pumps may keep reading after every stage has exited. Only a
#: stage's background descendants can still hold a pipe open by then, and
#: ppipe does not wait for those (bash does not wait for them either).
DRAIN_GRACE = 0.5

#: How long ppipe waits for a SIGKILLed stage's exit to be reported before reaping it itself.
REAP_LIMIT = 5.0

#: How long stages in the terminal's foreground get to act on Ctrl-C before ppipe passes SIGINT on itself.
FOREGROUND_GRACE = 0.5


class _Capture:
    """The type of :data:`CAPTURE`."""

    def __repr__(self) -> str:
        return "ppipe.CAPTURE"


#: ``stdout=CAPTURE`` collects the pipeline's output into ``RunResult.stdout``.
CAPTURE = _Capture()

#: What the first stage reads: a descriptor (default 0) or bytes fed by ppipe.
Input = int | bytes | None

#: Where the last stage writes: a descriptor (default 1) or :data:`CAPTURE`.
Output = int | _Capture | None


class PipelineObserver(Protocol):
    """Something that watches one pipeline from the engine's own loop.

    A plain run's watcher (the view, through :class:`ppipe.launch.LocalRun`)
    or a shard attempt's link to ppipe (:mod:`ppipe.shards.supervisor`).
    ``stderr_sink`` may return a sink that a stage's stderr goes to instead
    of ppipe's fd 2, and ``stdout_sink`` one for the pipeline's output
    instead of ppipe's fd 1 (the view prints both above itself); ``started``
    is called once every stage is spawned; ``finished`` once all are reaped.
    """

    def stderr_sink(self, stage: Stage) -> Sink | None: ...

    def stdout_sink(self) -> Sink | None: ...

    def started(self, execution: Execution) -> None: ...

    def finished(self) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    """How to run a graph; the CLI builds one of these from its options.

    ``kill_after`` is the grace between SIGTERM (or the forwarded signal)
    and SIGKILL. ``handle_signals`` installs SIGINT/SIGTERM/SIGHUP handlers
    for the run (the CLI does; library callers usually keep their own).

    ``count_lines`` counts lines on every pumped edge; it costs a pass over
    every byte in Python, so it is off unless someone will see the figures.
    ``count_lines_below`` (bytes per second) caps what counting the lines
    of an edge the kernel moves may cost: past that rate it counts a
    sample, spread through the run, and estimates the rest (``EdgeResult.
    lines_estimate``): a live view's figures must not slow the pipeline
    down; exact counts are for whoever asked for them.
    ``splice`` chooses the Linux fast path for edges from one stage to one
    other (:class:`~ppipe.engine.pumps.SplicePump`): None means "where available,
    unless the environment says ``PPIPE_SPLICE=0``". Lines on it are counted
    through ``tee(2)``; where that is missing, an edge whose lines must be
    counted exactly goes through Python instead.
    """

    no_fail: bool = False
    timeout: float | None = None
    kill_after: float = 2.0
    handle_signals: bool = False
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    stdin: Input = None
    stdout: Output = None
    stderr: int | None = None
    count_lines: bool = False
    count_lines_below: int | None = None
    splice: bool | None = None
    #: The stage writing ppipe's stdout is a pager (less) that owns the terminal; see ``Execution.pager``.
    pager: bool = False
    #: Told when the run has started and finished; may take the stages' stderr (the live view).
    observer: PipelineObserver | None = None

    @property
    def use_splice(self) -> bool:
        wanted = os.environ.get("PPIPE_SPLICE", "1") != "0" if self.splice is None else self.splice
        exact_lines = self.count_lines and self.count_lines_below is None
        return wanted and SPLICE_AVAILABLE and not (exact_lines and tee_function() is None)


@dataclass
class _Proc:
    """One stage while it runs: its process and what the result will say."""

    stage: Stage
    path: str
    process: Subprocess | None = None
    pid: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    returncode: int | None = None
    error: str | None = None
    error_status: int = ExitStatus.FAILURE
    signalled: bool = False
    #: ppipe closed its output while it ran (every consumer had gone).
    cut_before_exit: bool = False
    #: ...and it was writing then and exited right after: it died of that (EPIPE).
    output_closed_early: bool = False
    #: Its output went away under it: ppipe closed it, or it is ppipe's own stdout (whose reader may leave).
    consumer_left: bool = False
    output_pump: Pump | SplicePump | None = None
    stderr_pump: Pump | None = None
    #: Its stderr goes to ppipe's, and that is /dev/null: nobody saw what it said.
    stderr_discarded: bool = False
    #: Size of the regular file the stage reads as its stdin, when it does (progress and ETA).
    input_size: int | None = None
    stderr_tail: Tail = field(default_factory=Tail)
    #: The producers whose pumps deliver into this stage's stdin, each with the sink they write through.
    feeders: list[tuple[_Proc, Sink | None]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.process is not None and self.returncode is None


class Execution(Stopping):
    """One run of one graph. Use :meth:`run` once; it always reaps what it started."""

    def __init__(self, graph: Graph, options: RunOptions, paths: Mapping[int, str]) -> None:
        self.graph = graph
        self.options = options
        self.env = dict(os.environ if options.env is None else options.env)
        self.procs = {s.id: _Proc(s, paths[s.id]) for s in graph}
        self.pumps: list[Pump | SplicePump] = []
        self.pump_tasks: list[asyncio.Future[None]] = []
        #: The task running ``stdin_copies``, cancelled once every stage reading it has exited.
        self.stdin_feed: asyncio.Future[None] | None = None
        #: Each edge's counter and what counts it (None: handed over, not counted).
        self.edge_counts: dict[Edge, tuple[Counter, Pump | SplicePump | Feed | None]] = {}
        #: The sink each pumped stage's stdin is written through, by stage id.
        self.stage_sinks: dict[int, Sink] = {}
        #: Edges the kernel moves (splice): the consumer's end of each, until its pump takes it.
        self.spliced: dict[Edge, int] = {}
        self.capture: CaptureSink | None = None
        #: ppipe's stdout when stages write into it through ppipe (a write error there fails the run).
        self.stdout_target: Sink | None = None
        #: ppipe's stderr as the stages whose stderr is not shown elsewhere share it.
        self.shared_stderr: Sink | None = None
        #: Why ppipe could not read its input or write its output, if so.
        self.io_error: str | None = None
        self.watchers: list[asyncio.Future[None]] = []
        #: The descriptors each stage's process gets as 0, 1 and 2, before its redirections.
        self.fd_table: dict[int, dict[int, int]] = {s.id: {} for s in graph}
        #: Descriptors ppipe opened for a stage's process; closed once it has them.
        self.child_fds: dict[int, set[int]] = {s.id: set() for s in graph}
        #: Copies ppipe's input to the stages reading it, when ppipe does that itself (see _feeds_stdin).
        self.stdin_copies = Feed()
        #: Stopped on request (:meth:`stop_for`); the same signal may still come by itself.
        self._stopped_on_request = False
        self._stderr_fd = 2 if options.stderr is None else options.stderr
        last = graph.last_stage() if options.pager else None
        #: The stage that owns the terminal under ``RunOptions.pager``: the one writing ppipe's stdout.
        #: It gets ppipe's stdout itself, as under a shell. While it runs, nothing else may draw on its
        #: screen: the other stages' stderr is held back (``_held_stderr``) and printed when the run
        #: ends. Ctrl-C from the terminal while it runs is the pager's business (less uses it to stop a
        #: search), so ppipe does not stop the run for it: the stages got it from the terminal
        #: themselves, as under bash. A pager killed by a signal cannot restore the terminal's modes;
        #: ppipe puts them back (:func:`terminal_modes_kept`).
        self.pager = last.id if last is not None else None
        self._held_stderr = HeldSink(FdSink(self._stderr_fd), fall_through=True) if self.pager is not None else None
        self.started_at = time.time()
        self._observer_stdout = options.observer.stdout_sink() if options.observer is not None else None

    async def run(self) -> PipelineResult:
        self.started_at = time.time()
        loop = asyncio.get_running_loop()
        pager_terminal = self._boundary_fds()[1] if self.pager is not None else None
        with (
            sigchld_handler(),
            handling_signals(loop, self._on_signal, self.options.handle_signals),
            terminal_modes_kept(pager_terminal),
        ):
            timer = loop.call_later(self.options.timeout, self._on_timeout) if self.options.timeout else None
            try:
                self._spawn_all()
                if self.options.observer is not None:
                    self.options.observer.started(self)
                await self._wait_for_stages()
                await self._drain()
                self._raise_pump_errors()
            finally:
                if timer:
                    timer.cancel()
                await self._reap()
                self._cancel_kill()
                self._close_everything()
                if self._held_stderr is not None:
                    await self._held_stderr.release()
                if self.options.observer is not None:
                    self.options.observer.finished()
        return self._result()

    def snapshot(self) -> PipelineSnapshot:
        """The pipeline as it is now, for displays; cheap enough to take ten times a second."""
        now = time.time()
        return PipelineSnapshot(now - self.started_at, tuple(self._stage_snapshot(p, now) for p in self.procs.values()))

    def _stage_snapshot(self, proc: _Proc, now: float) -> StageSnapshot:
        sid = proc.stage.id
        if proc.running:
            state = StageState.RUNNING
        elif proc.returncode is None:
            state = StageState.WAITING
        else:
            state = StageState.DONE if proc.returncode == 0 else StageState.EXITED
        result = StageResult(proc.stage, returncode=proc.returncode)
        flow = StageFlow.of(
            [self._edge_result(e) for e in self.graph.inputs(sid)],
            [self._edge_result(e) for e in self.graph.outputs(sid)],
        )
        return StageSnapshot(
            id=sid,
            command=proc.stage.command,
            state=state,
            pid=proc.pid,
            status=result.status,
            signal=result.signal,
            flow=flow,
            elapsed=None if proc.started_at is None else (proc.ended_at or now) - proc.started_at,
            input_size=proc.input_size,
            input_read=self._input_read(proc),
        )

    @staticmethod
    def _input_read(proc: _Proc) -> int | None:
        """How far the stage has read its stdin file: its offset, from /proc (Linux); None elsewhere."""
        if proc.input_size is None:
            return None
        if not proc.running:
            return proc.input_size if proc.returncode == 0 else None
        try:
            with open(f"/proc/{proc.pid}/fdinfo/0", "rb") as info:
                return int(info.readline().split()[1])
        except (OSError, IndexError, ValueError):
            return None

    # -- wiring

    def _spawn_all(self) -> None:
        stdin_fd, stdout_fd = self._boundary_fds()
        # Everything that opens a file of its own (ctypes, libc) is loaded before the
        # wiring takes descriptors, so that it cannot fail for want of one later.
        hook = parent_death_hook()
        if self.options.count_lines:
            tee_function()
        try:
            self._wire_inputs(stdin_fd)
            self._wire_outputs(stdout_fd)
            self._check_headroom()
        except OSError as error:
            self._unwire()
            if error.errno in (errno.EMFILE, errno.ENFILE):
                limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                raise PpipeError(
                    f"{len(self.procs)} stages need more open files than the limit of {limit} "
                    f"allows (about 6 per stage, 8 when lines are counted); "
                    f"raise it with ulimit -n"
                ) from error
            raise PpipeError(f"cannot set up the pipes: {error.strerror}") from error
        for proc in self.procs.values():
            self._spawn(proc, hook)
        for pump in self.pumps:
            self.pump_tasks.append(asyncio.ensure_future(pump.run()))
        if self._feeds_stdin():
            stdin = self.options.stdin
            source = stdin if isinstance(stdin, bytes) else read_chunks(stdin_fd)
            self.stdin_feed = asyncio.ensure_future(self._copy_stdin(source))
            self.pump_tasks.append(self.stdin_feed)

    def _check_headroom(self) -> None:
        """Raises EMFILE unless the descriptors that starting the stages still needs are there.

        Once wired, each start still opens a few: ``Popen``'s exec-status pipe
        and the stage's redirections. Finding out then would leave some
        stages running and others not; the whole need is checked up front,
        so that a run either starts every stage or none.
        """
        needed = 4 + max((len(stage.redirects) for stage in self.graph), default=0)
        spare: list[int] = []
        try:
            for _ in range(needed):
                spare.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        finally:
            for fd in spare:
                os.close(fd)

    async def _copy_stdin(self, source: bytes | AsyncIterator[bytes]) -> None:
        try:
            await self.stdin_copies.run(source)
        except OSError as error:  # a closed stdin, a device error: the readers get EOF, the run fails
            self.io_error = f"cannot read the input: {error.strerror}"

    def _feeds_stdin(self) -> bool:
        """Whether ppipe copies its input to the stages itself: bytes given, or several stages reading
        it (``{ a ; b }`` at the start); otherwise the one reader gets ppipe's stdin as it is.

        A terminal is never copied: the readers share it, as a shell's jobs
        do (copying would read what the user types for nobody, and stop
        ppipe with SIGTTIN in the background).
        """
        stdin = self.options.stdin
        if isinstance(stdin, bytes):
            return True
        if len(self.graph.outputs(Boundary.STDIN)) < 2:
            return False
        try:
            return not os.isatty(0 if stdin is None else stdin)
        except OSError:
            return True

    def _boundary_fds(self) -> tuple[int, int]:
        stdin = self.options.stdin
        stdout = self.options.stdout
        return (
            0 if stdin is None or isinstance(stdin, bytes) else stdin,
            1 if stdout is None or isinstance(stdout, _Capture) else stdout,
        )

    def _unwire(self) -> None:
        """Closes what wiring made before it failed; nothing has started yet."""
        for pump in self.pumps:
            pump.close()
        for sink in [*self.stage_sinks.values(), self.stdout_target, self.shared_stderr]:
            if sink is not None:
                sink.abandon()  # a reopened stdout or stderr is closed with it
        for fd in [*self.spliced.values(), *(fd for fds in self.child_fds.values() for fd in fds)]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.spliced.clear()
        self.child_fds = {sid: set() for sid in self.child_fds}

    def _wire_inputs(self, stdin_fd: int) -> None:
        """Gives every stage its stdin; the sinks pumps write into go to ``stage_sinks``."""
        sinks = self.stage_sinks
        for proc in self.procs.values():
            inputs = self.graph.inputs(proc.stage.id)
            from_stdin = [e for e in inputs if e.source is Boundary.STDIN]
            if inputs == tuple(from_stdin) and from_stdin and not self._feeds_stdin():
                proc_in = stdin_fd  # handed over as it is: nothing read ahead
                self.edge_counts[from_stdin[0]] = (Counter(), None)
            elif len(inputs) == 1 and self._can_splice(inputs[0]):
                proc_in, self.spliced[inputs[0]] = make_pipe()
                self.child_fds[proc.stage.id].add(proc_in)
            elif inputs:
                read_fd, write_fd = make_pipe()
                proc_in = read_fd
                self.child_fds[proc.stage.id].add(read_fd)
                inner = StreamSink(stream(write_fd), feeders=len(inputs))
                sink = sinks[proc.stage.id] = LineMerge(inner) if len(inputs) > 1 else inner
                if from_stdin:
                    self.edge_counts[from_stdin[0]] = (self.stdin_copies.add(sink), self.stdin_copies)
            else:
                proc_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                self.child_fds[proc.stage.id].add(proc_in)
            self.fd_table[proc.stage.id][0] = proc_in

    def _wire_outputs(self, stdout_fd: int) -> None:
        stdout_sink: Sink | None = None
        own_stderr = {sid: self._stderr_sink(proc.stage) for sid, proc in self.procs.items()}
        shared_feeders = sum(sink is None for sink in own_stderr.values())
        shared_stderr = (
            LineJoiner(sink_for_fd(self._stderr_fd, feeders=shared_feeders), end_lines=True) if shared_feeders else None
        )
        self.shared_stderr = shared_stderr
        for proc in self.procs.values():
            sid = proc.stage.id
            outputs = self.graph.outputs(sid)
            # ppipe's stdout is handed over only to a sole writer; several are merged by line.
            direct = (
                len(outputs) == 1
                and outputs[0].target is Boundary.STDOUT
                and self.options.stdout is not CAPTURE
                and len(self.graph.inputs(Boundary.STDOUT)) == 1
                and self._observer_stdout is None
            )
            if direct:
                self.fd_table[sid][1] = stdout_fd
                proc.consumer_left = True  # ppipe cannot see that reader; SIGPIPE there is `ppipe yes | head`
                self.edge_counts[outputs[0]] = (Counter(), None)
            elif len(outputs) == 1 and outputs[0] in self.spliced:
                read_fd, write_fd = make_pipe()
                self.fd_table[sid][1] = write_fd
                self.child_fds[sid].add(write_fd)
                splice_pump = SplicePump(
                    read_fd,
                    self.spliced.pop(outputs[0]),  # the pump owns it now
                    count_lines=self.options.count_lines,
                    count_lines_below=self.options.count_lines_below,
                )
                self.pumps.append(splice_pump)
                proc.output_pump = splice_pump
                splice_pump.producer_stderr = proc.stderr_tail
                self.edge_counts[outputs[0]] = (splice_pump.counters[0], splice_pump)
                assert isinstance(outputs[0].target, int)
                self.procs[outputs[0].target].feeders.append((proc, None))
            elif outputs:
                read_fd, write_fd = make_pipe()
                self.fd_table[sid][1] = write_fd
                self.child_fds[sid].add(write_fd)
                sinks: list[Sink] = []
                for edge in outputs:
                    if isinstance(edge.target, int):
                        sinks.append(self.stage_sinks[edge.target])
                    else:
                        stdout_sink = stdout_sink or self._stdout_sink(stdout_fd)
                        sinks.append(stdout_sink)
                pump = Pump(stream(read_fd), sinks, count_lines=self.options.count_lines)
                self.pumps.append(pump)
                proc.output_pump = pump
                pump.producer_stderr = proc.stderr_tail
                for i, edge in enumerate(outputs):
                    self.edge_counts[edge] = (pump.counters[i], pump)
                    if isinstance(edge.target, int):
                        self.procs[edge.target].feeders.append((proc, sinks[i]))
            else:
                self.fd_table[sid][1] = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
                self.child_fds[sid].add(self.fd_table[sid][1])
            shown = own_stderr[sid]
            stderr_sink = LineJoiner(shown, end_lines=True) if shown is not None else shared_stderr
            proc.stderr_discarded = shown is None and _is_devnull(self._stderr_fd)
            assert stderr_sink is not None
            self._wire_stderr(proc, stderr_sink)

    def _wire_stderr(self, proc: _Proc, sink: Sink) -> None:
        """The stage's stderr through a pump that keeps its tail.

        Like a data pump, it stops when its reader has gone (the reader of
        ppipe's own stderr left: ``ppipe "yes >&2" 2>&1 | head -1``), and the
        stage then gets SIGPIPE at its next write, as under a shell. Any other
        error there (a closed or full stderr) does not stop the stage: the
        pump goes on reading, for the tail.
        """
        err_read, err_write = make_pipe(enlarge=False)
        self.fd_table[proc.stage.id][2] = err_write
        self.child_fds[proc.stage.id].add(err_write)
        proc.stderr_pump = Pump(
            stream(err_read), [sink], observers=(proc.stderr_tail,), count_lines=False, keep_draining=True
        )
        self.pumps.append(proc.stderr_pump)

    def _stderr_sink(self, stage: Stage) -> Sink | None:
        """Where a stage's stderr goes when not to ppipe's own (None): the view, or held back for a pager."""
        shown = self.options.observer.stderr_sink(stage) if self.options.observer is not None else None
        if shown is None and self._held_stderr is not None and stage.id != self.pager:
            return self._held_stderr
        return shown

    def _can_splice(self, edge: Edge) -> bool:
        """One stage feeding one other, nothing else in or out: the kernel can move the bytes."""
        return (
            self.options.use_splice
            and isinstance(edge.source, int)
            and isinstance(edge.target, int)
            and len(self.graph.outputs(edge.source)) == 1
            and len(self.graph.inputs(edge.target)) == 1
        )

    def _stdout_sink(self, stdout_fd: int) -> Sink:
        """The one sink every pumped edge into ppipe's stdout shares; several merge whole lines."""
        feeders = len(self.graph.inputs(Boundary.STDOUT))
        if self.options.stdout is CAPTURE:
            self.capture = CaptureSink()
            sink: Sink = self.capture
        elif self._observer_stdout is not None:
            # One writer: lines as they come (a prompt without a newline still shows); several: whole lines.
            return LineMerge(self._observer_stdout) if feeders > 1 else LineJoiner(self._observer_stdout)
        else:
            sink = sink_for_fd(stdout_fd, feeders)
        self.stdout_target = sink
        return LineMerge(sink) if feeders > 1 else sink

    # -- spawning

    def _spawn(self, proc: _Proc, hook: Callable[[], None] | None) -> None:
        sid = proc.stage.id
        fds = dict(self.fd_table[sid])
        try:
            try:
                self._apply_redirects(proc.stage, fds)
            except OSError as error:
                proc.error = f"{error.filename}: {error.strerror}"
                return
            env = {**self.env, **dict(proc.stage.env)}
            proc.started_at = time.time()
            try:
                proc.process = self._popen(proc, fds, env, hook)
            except ValueError as error:  # an argument or variable holding a NUL byte
                proc.error = f"{proc.stage.argv[0]}: cannot be run: {error}"
                return
            except OSError as error:
                # Resolved, yet exec failed: as bash, 127 when something named is
                # missing (a #! naming a missing interpreter, a file that vanished),
                # 126 otherwise (a binary for another machine, no permission).
                proc.error = exec_failure(proc.stage.argv[0], proc.path, error)
                missing = error.errno == errno.ENOENT
                proc.error_status = ExitStatus.NOT_FOUND if missing else ExitStatus.NOT_EXECUTABLE
                return
            proc.pid = proc.process.pid
            proc.input_size = _regular_file_size(fds[0])
            self.watchers.append(asyncio.ensure_future(self._watch(proc)))
        finally:
            # The child has its copies (or never will): ppipe's must go, or
            # its neighbours would never see EOF or EPIPE.
            for fd in self.child_fds[sid]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.child_fds[sid] = set()

    def _popen(
        self, proc: _Proc, fds: Mapping[int, int], env: Mapping[str, str], hook: Callable[[], None] | None
    ) -> Subprocess:
        argv, path = list(proc.stage.argv), proc.path

        def start(args: list[str], executable: str) -> Subprocess:
            return Subprocess(
                args,
                executable=executable,
                stdin=fds[0],
                stdout=fds[1],
                stderr=fds[2],
                env=env,
                cwd=self.options.cwd,
                close_fds=True,
                preexec_fn=hook,
            )

        try:
            return start(argv, path)
        except OSError as error:
            if error.errno != errno.ENOEXEC:
                raise
        # No #! line: run it with sh, as bash and execvp do; but never a binary file.
        if is_binary_file(path):
            raise OSError(errno.ENOEXEC, "cannot execute binary file", path)
        return start(["sh", path, *argv[1:]], "/bin/sh")

    def _apply_redirects(self, stage: Stage, fds: dict[int, int]) -> None:
        """Applies redirections left to right, then ``|&``, as a shell does."""
        opened: list[int] = []
        try:
            for redirect in stage.redirects:
                if redirect.op is RedirectOp.DUP:
                    assert redirect.source_fd is not None
                    fds[redirect.fd] = fds[redirect.source_fd]
                    continue
                flags = {
                    RedirectOp.READ: os.O_RDONLY,
                    RedirectOp.WRITE: os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                    RedirectOp.APPEND: os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                }[redirect.op]
                assert redirect.target is not None
                if redirect.error:
                    raise OSError(errno.EINVAL, redirect.error, redirect.target)
                path = os.path.join(self.options.cwd or "", redirect.target)
                fd = os.open(path, flags | os.O_CLOEXEC, 0o666)
                opened.append(fd)
                fds[redirect.fd] = fd
        except OSError as error:
            error.filename = redirect.target
            for fd in opened:
                os.close(fd)
            raise
        if any(e.with_stderr for e in self.graph.outputs(stage.id)):
            fds[2] = fds[1]
        self.child_fds[stage.id].update(opened)

    # -- waiting

    async def _watch(self, proc: _Proc) -> None:
        assert proc.process is not None
        returncode = await proc.process.wait_for_exit(raise_error=False)
        proc.ended_at = time.time()
        proc.returncode = returncode
        pump = proc.output_pump
        if pump is not None and pump.closed_early:  # a closing after the exit cannot be to blame
            proc.cut_before_exit = True
            proc.output_closed_early = pump.died_of_cut(time.monotonic())
            proc.consumer_left = True
        if proc.stderr_pump is not None and proc.stderr_pump.closed_early:
            proc.consumer_left = True  # ppipe's stderr has no reader left: SIGPIPE there is `2>&1 | head`
        for producer, sink in proc.feeders:
            # The consumer is gone: its producer gets EPIPE/SIGPIPE now, not
            # at its next write into a pipe nobody will ever read.
            feeding_pump = producer.output_pump
            assert feeding_pump is not None
            feeding_pump.consumer_exited(sink)

    @staticmethod
    def _failed_writing(proc: _Proc) -> bool:
        """Whether the stage, once ppipe closed its output, failed because of it (EPIPE).

        Either it was writing at that moment and exited right after, or it
        said so on stderr afterwards ("Broken pipe", Python's
        BrokenPipeError). A stage that had finished writing, or was silent
        (``false | true``), failed on its own.
        """
        if not proc.cut_before_exit or proc.output_pump is None:
            return False
        return proc.output_closed_early or proc.output_pump.said_broken_pipe()

    async def _wait_for_stages(self) -> None:
        # asyncio.wait, not gather: cancelling this run must not cancel the
        # watchers, which _reap still needs to learn when each stage is gone.
        if self.watchers:
            await asyncio.wait(self.watchers)

    async def _drain(self) -> None:
        """Lets every pump finish once the stages are gone, without waiting for their descendants.

        A pump still delivering what the stages wrote (into a slow reader of
        ppipe's stdout, say) goes on until it is all out. Only a stage's
        background descendant can still write into a pipe after that, and
        ppipe does not wait for those (bash does not either): a pump that
        has waited ``DRAIN_GRACE`` for its producer is stopped, and
        ``DRAIN_GRACE`` after the last stage ended every pump delivers what
        its pipe holds at that moment and stops, however busy the
        descendant. A signal or ``--timeout`` stops every pump at once.
        """
        if self.stdin_feed is not None:
            self.stdin_feed.cancel()  # every reader has exited: the rest of ppipe's input is nobody's
        pending = {t for t in self.pump_tasks if not t.done()}
        deadline = time.monotonic() + DRAIN_GRACE
        while pending:
            _, pending = await asyncio.wait(pending, timeout=DRAIN_GRACE / 5)
            past_deadline = time.monotonic() > deadline
            for pump in self.pumps:
                if self.interrupted_by is not None or self.timed_out:
                    pump.close()  # both ends: a write into a reader that never reads ends too
                elif pump.idle_for() > DRAIN_GRACE:
                    pump.stop_reading()
                elif past_deadline:
                    pump.finish_pending()

    def _raise_pump_errors(self) -> None:
        """A pump that crashed is a bug in ppipe: say so instead of reporting wrong counts."""
        for task in self.pump_tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _reap(self) -> None:
        """Stops and waits for every stage still running (errors, cancellation)."""
        if not any(p.running for p in self.procs.values()):
            return
        pending = [w for w in self.watchers if not w.done()]
        self._signal_all(signal.SIGTERM)
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.options.kill_after)
            if still:
                self._signal_all(signal.SIGKILL)
                _, still = await asyncio.wait(still, timeout=REAP_LIMIT)
            for proc in self.procs.values():
                if proc.running and proc.pid is not None:
                    self._reap_directly(proc)

    def _reap_directly(self, proc: _Proc) -> None:
        """Last resort when tornado never reported an exit: wait for the SIGKILLed stage ourselves."""
        try:
            _, status = os.waitpid(proc.pid or 0, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            proc.returncode = -signal.SIGKILL  # reaped elsewhere; it was sent SIGKILL
        proc.ended_at = time.time()

    def _close_everything(self) -> None:
        for pump in self.pumps:
            pump.close()
        for fds in self.child_fds.values():
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        for task in self.pump_tasks:
            if not task.done():
                task.cancel()

    # -- stopping

    def _signal_all(self, sig: int) -> None:
        for proc in self.procs.values():
            if proc.running and proc.pid is not None:
                proc.signalled = True
                # os.kill, not Popen.send_signal: that one polls, and a poll
                # that reaps the stage leaves tornado's wait_for_exit hanging.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    def _stop(self, first_signal: int, already_delivered: bool = False) -> None:
        """First ``first_signal`` to every stage, then SIGKILL after the grace period."""
        if already_delivered:
            for proc in self.procs.values():
                proc.signalled = proc.signalled or proc.running
        else:
            self._signal_all(first_signal)
        self._kill_after(self.options.kill_after)

    def stop_all(self, sig: int) -> None:
        self._stop(sig)

    def kill_all(self) -> None:
        self._signal_all(signal.SIGKILL)

    def stop_for(self, sig: int) -> None:
        """Stops the run as if ppipe had been sent ``sig``, unless it is stopping already.

        For whoever runs this engine on someone's behalf (a shard, for the
        ppipe that started it): a signal sent to the whole process group may
        reach this process too, and that one is not a second request.
        """
        if self.interrupted_by is None:
            self._on_signal(sig)
            self._stopped_on_request = True

    def _on_signal(self, sig: int) -> None:
        if self.interrupted_by is not None and self._stopped_on_request:
            self._stopped_on_request = False  # the request's own signal, arriving by itself
            return
        # Ctrl-C in a terminal reaches the whole foreground group, stages
        # included; sending it again at once would interrupt their clean-up.
        # But it may have come from `kill -INT` instead: stages still running
        # a moment later get it from ppipe.
        from_terminal = self.interrupted_by is None and sig == signal.SIGINT and in_terminal_foreground()
        if from_terminal and self.pager is not None and self.procs[self.pager].running:
            return  # the pager's to handle, and the stages got it already (see self.pager)
        if self._interrupted(sig):
            self._stop(sig, already_delivered=from_terminal)
            if from_terminal:
                asyncio.get_running_loop().call_later(FOREGROUND_GRACE, self._signal_all, sig)

    # -- results

    def _edge_result(self, edge: Edge) -> EdgeResult:
        """What has crossed ``edge``: so far in a snapshot, all of it at the end.

        The consumer's wait is this edge's own: in a fan-out, each branch's
        slowness, not the slowest sibling's.
        """
        counter, pump = self.edge_counts.get(edge, (Counter(), None))
        if pump is None:
            return EdgeResult(edge, counter.nbytes, None, counted=False)
        exact = pump.count_lines and counter.lines_complete
        return EdgeResult(
            edge,
            counter.nbytes,
            counter.lines if exact else None,
            closed_early=pump.left_early(counter),
            waited_on_producer=pump.waits.totals()[0],
            waited_on_consumer=pump.consumer_wait(counter),
            lines_at_least=counter.lines if pump.count_lines and not exact else None,
            lines_estimate=counter.lines_estimate if pump.count_lines and not exact else None,
        )

    def _hold_error(self) -> OSError | None:
        """Why a sink could not keep bytes it had taken on (a long line in a fan-in, a full ``$TMPDIR``)."""
        for pump in self.pumps:
            for sink in pump.sinks if isinstance(pump, Pump) else ():
                if sink.hold_error is not None:
                    return sink.hold_error
        return None

    def _result(self) -> PipelineResult:
        stages = tuple(
            StageResult(
                stage=p.stage,
                pid=p.pid,
                started_at=p.started_at,
                ended_at=p.ended_at,
                returncode=p.returncode,
                error=p.error,
                error_status=p.error_status,
                output_closed_early=self._failed_writing(p),
                consumer_left=p.consumer_left,
                signalled_by_ppipe=p.signalled and p.returncode != 0,
                stderr_tail=p.stderr_tail.lines() or ((p.error,) if p.error else ()),
                # What the stage said went on as it came (ppipe's stderr, the view) or was held
                # for a pager and released before anyone reads the result; unless into /dev/null.
                stderr_seen=bool(p.stderr_tail.total) and not p.stderr_discarded,
            )
            for p in self.procs.values()
        )
        judged = policy.judge(self.graph, stages, no_fail=self.options.no_fail)
        edges = [self._edge_result(edge) for edge in self.graph.edges]
        if self.stdout_target is not None and self.stdout_target.error is not None and not self.io_error:
            self.io_error = f"cannot write the output: {self.stdout_target.error.strerror}"
        held = self._hold_error()
        if held is not None and not self.io_error:
            self.io_error = f"cannot keep an unfinished line for a merge: {held_problem(held)}"
        exit_status = policy.exit_status(judged, timed_out=self.timed_out, interrupted_by=self.interrupted_by)
        return PipelineResult(
            graph=self.graph,
            stages=judged,
            edges=tuple(edges),
            exit_status=exit_status or (ExitStatus.FAILURE if self.io_error else 0),
            io_error=self.io_error,
            started_at=self.started_at,
            ended_at=time.time(),
            timed_out=self.timed_out,
            interrupted_by=signal.Signals(self.interrupted_by).name if self.interrupted_by else None,
            stdout=bytes(self.capture.data) if self.capture is not None else None,
            timeout=self.options.timeout or None,
        )


def _is_devnull(fd: int) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(os.devnull))
    except OSError:
        return False


def _regular_file_size(fd: int) -> int | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def prepare(graph: Graph, options: RunOptions | None = None) -> Execution:
    """An :class:`Execution` of ``graph``, its commands found, ready to :meth:`~Execution.run`.

    Raises :class:`~ppipe.errors.CommandError` before starting anything when
    a command cannot be found or executed.
    """
    options = options or RunOptions()
    env = os.environ if options.env is None else options.env
    return Execution(graph, options, resolve_commands(graph, env))


async def execute(graph: Graph, options: RunOptions | None = None) -> PipelineResult:
    """Runs ``graph`` to the end on the running event loop; see :class:`Execution` and :func:`prepare`."""
    return await prepare(graph, options).run()

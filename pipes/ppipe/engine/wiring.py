"""The descriptors, sinks and pumps of one run of a graph, made before any stage starts.

:class:`Wiring` gives each stage the descriptors it will get as 0, 1 and 2,
and builds what carries every edge: ppipe's own stdin and stdout handed to
the first and last stage as they are (nothing read ahead, the same terminal
a shell would give), a :class:`~ppipe.engine.splice.SplicePump` where one
stage feeds exactly one other and the kernel can move the bytes, a
:class:`~ppipe.engine.pumps.Pump` through Python elsewhere (fan-out, fan-in,
captured, streamed or watched output), and a pump per stage's stderr that keeps its
tail. The whole need for descriptors is taken up front, so that a run
either starts every stage or none.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field

from tornado.process import Subprocess

from ppipe.engine.carrier import Carrier, StagePump
from ppipe.engine.counting import Counter, Tail
from ppipe.engine.descriptors import make_pipe, stream
from ppipe.engine.feed import Feed
from ppipe.engine.options import CAPTURE, RunOptions
from ppipe.engine.positions import FilePositions
from ppipe.engine.pumps import Pump
from ppipe.engine.sinks import CaptureSink, FdSink, HeldSink, LineJoiner, LineMerge, Sink, StreamSink, sink_for_fd
from ppipe.engine.slices import FileSlice
from ppipe.engine.splice import SplicePump
from ppipe.errors import ExitStatus, PpipeError
from ppipe.graph import Boundary, Edge, Graph, RedirectOp, Stage


@dataclass
class RunningStage:
    """One stage while it runs: its process, how it is wired, and what its result will say."""

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
    output_pump: StagePump | None = None
    stderr_pump: Pump | None = None
    #: Its stderr goes to ppipe's, and that is /dev/null: nobody saw what it said.
    stderr_discarded: bool = False
    #: How far it has read the regular files it reads (its arguments', its stdin): progress and ETA.
    positions: FilePositions | None = None
    stderr_tail: Tail = field(default_factory=Tail)
    #: The producers whose pumps deliver into this stage's stdin, each with the sink they write through.
    feeders: list[tuple[RunningStage, Sink | None]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.process is not None and self.returncode is None


class Wiring:
    """Every descriptor and pump of one run; :meth:`wire` once, then each stage takes its descriptors.

    ``pager`` is the id of the stage that owns the terminal (see
    ``Execution.pager``): the other stages' stderr is then held back in
    ``held_stderr`` until the run ends.
    """

    def __init__(
        self, graph: Graph, options: RunOptions, stages: Mapping[int, RunningStage], pager: int | None
    ) -> None:
        self.graph = graph
        self.options = options
        self.stages = stages
        self.pager = pager
        self.pumps: list[StagePump] = []
        #: Each edge's counter and what counts it (None: handed over, not counted).
        self.edge_counts: dict[Edge, tuple[Counter, Carrier | None]] = {}
        #: The sink each pumped stage's stdin is written through, by stage id.
        self.stage_sinks: dict[int, Sink] = {}
        #: Edges the kernel moves (splice): the consumer's end of each, until its pump takes it.
        self.spliced: dict[Edge, int] = {}
        self.capture: CaptureSink | None = None
        #: ppipe's stdout when stages write into it through ppipe (a write error there fails the run).
        self.stdout_target: Sink | None = None
        #: ppipe's stderr as the stages whose stderr is not shown elsewhere share it.
        self.shared_stderr: Sink | None = None
        #: The descriptors each stage's process gets as 0, 1 and 2, before its redirections.
        self.fd_table: dict[int, dict[int, int]] = {s.id: {} for s in graph}
        #: Descriptors ppipe opened for a stage's process; closed once it has them.
        self.child_fds: dict[int, set[int]] = {s.id: set() for s in graph}
        #: Copies ppipe's input to the stages reading it, when ppipe does that itself (see feeds_stdin).
        self.stdin_copies = Feed()
        self.stderr_fd = 2 if options.stderr is None else options.stderr
        self.held_stderr = HeldSink(FdSink(self.stderr_fd), fall_through=True) if pager is not None else None
        self._observer_stdout = options.observer.stdout_sink() if options.observer is not None else None
        self._pumped_stdout: Sink | None = None

    # -- the boundary

    def boundary_fds(self) -> tuple[int, int]:
        """ppipe's stdin and stdout as descriptors (the API's bytes, CAPTURE and streams are pumped from/to these)."""
        stdin, stdout = self.options.stdin, self.options.stdout
        stdin_fd = stdin.fd if isinstance(stdin, FileSlice) else stdin if isinstance(stdin, int) else 0
        return (stdin_fd, stdout if isinstance(stdout, int) else 1)

    def feeds_stdin(self) -> bool:
        """Whether ppipe copies its input to the stages itself: bytes or part of a file given, or several
        stages reading it (``{ a ; b }`` at the start); otherwise the one reader gets ppipe's stdin as it is.

        A terminal is never copied: the readers share it, as a shell's jobs
        do (copying would read what the user types for nobody, and stop
        ppipe with SIGTTIN in the background).
        """
        stdin = self.options.stdin
        if isinstance(stdin, (bytes, FileSlice)):
            return True
        if len(self.graph.outputs(Boundary.STDIN)) < 2:
            return False
        try:
            return not os.isatty(0 if stdin is None else stdin)
        except OSError:
            return True

    # -- making it all

    def wire(self) -> None:
        """Makes every pipe, sink and pump, or none of them: raises :class:`PpipeError` and leaves nothing open."""
        stdin_fd, stdout_fd = self.boundary_fds()
        try:
            self._wire_inputs(stdin_fd)
            self._wire_outputs(stdout_fd)
            self._check_headroom()
        except OSError as error:
            self._unwire()
            if error.errno in (errno.EMFILE, errno.ENFILE):
                limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                raise PpipeError(
                    f"{len(self.stages)} stages need more open files than the limit of {limit} "
                    f"allows (about 6 per stage, 8 when lines are counted); "
                    f"raise it with ulimit -n"
                ) from error
            raise PpipeError(f"cannot set up the pipes: {error.strerror}") from error

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
        for running in self.stages.values():
            sid = running.stage.id
            inputs = self.graph.inputs(sid)
            from_stdin = [e for e in inputs if e.source is Boundary.STDIN]
            if inputs == tuple(from_stdin) and from_stdin and not self.feeds_stdin():
                stage_in = stdin_fd  # handed over as it is: nothing read ahead
                self.edge_counts[from_stdin[0]] = (Counter(), None)
            elif len(inputs) == 1 and self._can_splice(inputs[0]):
                stage_in, self.spliced[inputs[0]] = make_pipe()
                self.child_fds[sid].add(stage_in)
            elif inputs:
                read_fd, write_fd = make_pipe()
                stage_in = read_fd
                self.child_fds[sid].add(read_fd)
                inner = StreamSink(stream(write_fd), feeders=len(inputs))
                sink = sinks[sid] = LineMerge(inner) if len(inputs) > 1 else inner
                if from_stdin:
                    self.edge_counts[from_stdin[0]] = (self.stdin_copies.add(sink), self.stdin_copies)
            else:
                stage_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                self.child_fds[sid].add(stage_in)
            self.fd_table[sid][0] = stage_in

    def _wire_outputs(self, stdout_fd: int) -> None:
        own_stderr = {sid: self._stderr_sink(running.stage) for sid, running in self.stages.items()}
        shared_feeders = sum(sink is None for sink in own_stderr.values())
        self.shared_stderr = (
            LineJoiner(sink_for_fd(self.stderr_fd, feeders=shared_feeders), end_lines=True) if shared_feeders else None
        )
        for running in self.stages.values():
            outputs = self.graph.outputs(running.stage.id)
            if self._hands_over_stdout(outputs):
                self.fd_table[running.stage.id][1] = stdout_fd
                running.consumer_left = True  # ppipe cannot see that reader; SIGPIPE there is `ppipe yes | head`
                self.edge_counts[outputs[0]] = (Counter(), None)
            elif len(outputs) == 1 and outputs[0] in self.spliced:
                self._wire_splice(running, outputs[0])
            elif outputs:
                self._wire_pump(running, outputs, stdout_fd)
            else:
                self._give_child(running.stage.id, 1, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC))
            shown = own_stderr[running.stage.id]
            stderr_sink = LineJoiner(shown, end_lines=True) if shown is not None else self.shared_stderr
            running.stderr_discarded = shown is None and _is_devnull(self.stderr_fd)
            assert stderr_sink is not None
            self._wire_stderr(running, stderr_sink)

    def _hands_over_stdout(self, outputs: tuple[Edge, ...]) -> bool:
        """ppipe's stdout is handed over only to a sole writer; several are merged by line."""
        return (
            len(outputs) == 1
            and outputs[0].target is Boundary.STDOUT
            and (self.options.stdout is None or isinstance(self.options.stdout, int))
            and len(self.graph.inputs(Boundary.STDOUT)) == 1
            and self._observer_stdout is None
        )

    def _give_child(self, sid: int, fd: int, own: int) -> None:
        """The stage's process gets ``own`` as its descriptor ``fd``; ppipe closes its copy once it has started."""
        self.fd_table[sid][fd] = own
        self.child_fds[sid].add(own)

    def _wire_splice(self, running: RunningStage, edge: Edge) -> None:
        read_fd, write_fd = make_pipe()
        self._give_child(running.stage.id, 1, write_fd)
        pump = SplicePump(
            read_fd,
            self.spliced.pop(edge),  # the pump owns it now
            count_lines=self.options.count_lines,
        )
        self.pumps.append(pump)
        running.output_pump = pump
        pump.producer_stderr = running.stderr_tail
        self.edge_counts[edge] = (pump.counters[0], pump)
        assert isinstance(edge.target, int)
        self.stages[edge.target].feeders.append((running, None))

    def _wire_pump(self, running: RunningStage, outputs: tuple[Edge, ...], stdout_fd: int) -> None:
        read_fd, write_fd = make_pipe()
        self._give_child(running.stage.id, 1, write_fd)
        sinks: list[Sink] = []
        for edge in outputs:
            if isinstance(edge.target, int):
                sinks.append(self.stage_sinks[edge.target])
            else:
                sinks.append(self._stdout_sink(stdout_fd))
        pump = Pump(stream(read_fd), sinks, count_lines=self.options.count_lines)
        self.pumps.append(pump)
        running.output_pump = pump
        pump.producer_stderr = running.stderr_tail
        for i, edge in enumerate(outputs):
            self.edge_counts[edge] = (pump.counters[i], pump)
            if isinstance(edge.target, int):
                self.stages[edge.target].feeders.append((running, sinks[i]))

    def _wire_stderr(self, running: RunningStage, sink: Sink) -> None:
        """The stage's stderr through a pump that keeps its tail.

        Like a data pump, it stops when its reader has gone (the reader of
        ppipe's own stderr left: ``ppipe "yes >&2" 2>&1 | head -1``), and the
        stage then gets SIGPIPE at its next write, as under a shell. Any other
        error there (a closed or full stderr) does not stop the stage: the
        pump goes on reading, for the tail.
        """
        err_read, err_write = make_pipe(enlarge=False)
        self._give_child(running.stage.id, 2, err_write)
        running.stderr_pump = Pump(
            stream(err_read), [sink], observers=(running.stderr_tail,), count_lines=False, keep_draining=True
        )
        self.pumps.append(running.stderr_pump)

    def _stderr_sink(self, stage: Stage) -> Sink | None:
        """Where a stage's stderr goes when not to ppipe's own (None): the view, or held back for a pager."""
        shown = self.options.observer.stderr_sink(stage) if self.options.observer is not None else None
        if shown is None and self.held_stderr is not None and stage.id != self.pager:
            return self.held_stderr
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
        if self._pumped_stdout is None:
            self._pumped_stdout = self._make_stdout_sink(stdout_fd)
        return self._pumped_stdout

    def _make_stdout_sink(self, stdout_fd: int) -> Sink:
        feeders = len(self.graph.inputs(Boundary.STDOUT))
        if self.options.stdout is CAPTURE:
            self.capture = CaptureSink()
            sink: Sink = self.capture
        elif isinstance(self.options.stdout, Sink):  # the API's stream: before a view, which would print it
            sink = self.options.stdout
        elif self._observer_stdout is not None:
            # One writer: lines as they come (a prompt without a newline still shows); several: whole lines.
            return LineMerge(self._observer_stdout) if feeders > 1 else LineJoiner(self._observer_stdout)
        else:
            sink = sink_for_fd(stdout_fd, feeders)
        self.stdout_target = sink
        return LineMerge(sink) if feeders > 1 else sink

    # -- each stage's descriptors

    def fds_for(self, stage: Stage) -> dict[int, int]:
        """The descriptors the stage's process gets, its redirections applied left to right, then ``|&``.

        Raises ``OSError`` (its ``filename`` the target) when a redirection
        cannot be opened; what it opened is closed again.
        """
        fds = dict(self.fd_table[stage.id])
        self.child_fds[stage.id].update(apply_redirects(stage, fds, self.options.cwd))
        if any(e.with_stderr for e in self.graph.outputs(stage.id)):
            fds[2] = fds[1]
        return fds

    def release(self, sid: int) -> None:
        """Closes ppipe's copies of what the stage's process got (or never will), so that its
        neighbours see EOF and EPIPE when it goes."""
        for fd in self.child_fds[sid]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.child_fds[sid] = set()

    # -- the end

    def close(self) -> None:
        """Releases every pump and every descriptor still held, whatever state the run is in."""
        for pump in self.pumps:
            pump.close()
        for sid in self.child_fds:
            self.release(sid)

    def hold_error(self) -> OSError | None:
        """Why a sink could not keep bytes it had taken on (a long line in a fan-in, a full ``$TMPDIR``)."""
        for pump in self.pumps:
            for sink in pump.sinks if isinstance(pump, Pump) else ():
                if sink.hold_error is not None:
                    return sink.hold_error
        return None


def _is_devnull(fd: int) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(os.devnull))
    except OSError:
        return False


def apply_redirects(stage: Stage, fds: dict[int, int], cwd: str | None) -> list[int]:
    """Applies the stage's redirections to ``fds`` left to right, as a shell does; returns what it opened.

    Raises ``OSError`` (its ``filename`` the target) when one cannot be
    opened, having closed what it opened before.
    """
    opened: list[int] = []
    try:
        for redirect in stage.redirects:
            if redirect.op is RedirectOp.DUP:
                assert redirect.source_fd is not None
                fds[redirect.fd] = fds[redirect.source_fd]
                continue
            assert redirect.target is not None
            if redirect.error:
                raise OSError(errno.EINVAL, redirect.error, redirect.target)
            fd = os.open(os.path.join(cwd or "", redirect.target), _OPEN_FLAGS[redirect.op] | os.O_CLOEXEC, 0o666)
            opened.append(fd)
            fds[redirect.fd] = fd
    except OSError as error:
        error.filename = redirect.target
        for fd in opened:
            os.close(fd)
        raise
    return opened


_OPEN_FLAGS = {
    RedirectOp.READ: os.O_RDONLY,
    RedirectOp.WRITE: os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    RedirectOp.APPEND: os.O_WRONLY | os.O_CREAT | os.O_APPEND,
}

"""The descriptors, sinks and pumps of one run of a graph, made before any stage starts.

:class:`Wiring` gives each stage the descriptors it will get as 0, 1 and 2,
and as the numbers of its process substitutions (63: ``/dev/fd/63``), and
builds what carries every edge: ppipe's own stdin and stdout handed to the
first and last stage as they are (nothing read ahead, the same terminal a
shell would give), a :class:`~ppipe.engine.splice.SplicePump` where one
descriptor feeds exactly one other and the kernel can move the bytes, a
:class:`~ppipe.engine.pumps.Pump` through Python elsewhere (fan-out, fan-in,
captured, streamed or watched output), and a pump per stage's stderr that
keeps its tail. A substitution's edge is wired as any other, into or out of
the holder's descriptor; the stages at its far end share the holder's stdin
(``<(...)``) or stdout (``>(...)``), as in bash. The whole need for
descriptors is taken up front, so that a run either starts every stage or
none.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

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
from ppipe.engine.stage_descriptors import StageDescriptors
from ppipe.errors import ExitStatus, PpipeError
from ppipe.graph import Boundary, Edge, Graph, Stage


class Feeder(NamedTuple):
    """A pump delivering into one of a stage's input descriptors (``fd``), through ``sink`` (None: a splice)."""

    fd: int
    pump: StagePump
    sink: Sink | None


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
    #: What carries each of its output descriptors (1, and a ``>(...)``'s 63...); a stage at the end of a
    #: ``>(...)`` shares its holder's stdout, and so its pump.
    output_pumps: dict[int, StagePump] = field(default_factory=dict)
    stderr_pump: Pump | None = None
    #: Its stderr goes to ppipe's, and that is /dev/null: nobody saw what it said.
    stderr_discarded: bool = False
    #: How far it has read the regular files it reads (its arguments', its stdin): progress and ETA.
    positions: FilePositions | None = None
    stderr_tail: Tail = field(default_factory=Tail)
    #: The pumps delivering into its input descriptors (a stage sharing its holder's stdin: the holder's too).
    feeders: list[Feeder] = field(default_factory=list)

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
        #: The sink each pumped input descriptor is written through, by (stage id, descriptor).
        self.stage_sinks: dict[tuple[int, int], Sink] = {}
        #: Edges the kernel moves (splice): the consumer's end of each, until its pump takes it.
        self.spliced: dict[Edge, int] = {}
        self.capture: CaptureSink | None = None
        #: ppipe's stdout when stages write into it through ppipe (a write error there fails the run).
        self.stdout_target: Sink | None = None
        #: ppipe's stderr as the stages whose stderr is not shown elsewhere share it.
        self.shared_stderr: Sink | None = None
        #: What each stage's process gets as 0, 1, 2 and its substitutions' numbers, and ppipe's copies.
        self.descriptors = StageDescriptors(graph, options.cwd)
        self.fd_table = self.descriptors.table
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
        self._check_substitution_numbers()
        stdin_fd, stdout_fd = self.boundary_fds()
        try:
            self._wire_inputs(stdin_fd)
            self._wire_outputs(stdout_fd)
            self._share_stdin_feeders()
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

    def _check_substitution_numbers(self) -> None:
        """Refuses a process substitution numbered at or above the open-file limit (``ulimit -n 40``): no
        stage could be given that descriptor. bash numbers it lower there; ppipe keeps bash's usual
        numbers, which the stages' command lines already name."""
        highest = max((max(edge.source_fd, edge.target_fd) for edge in self.graph.edges), default=2)
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if limit != resource.RLIM_INFINITY and highest >= limit:
            raise PpipeError(
                f"a process substitution is /dev/fd/{highest}, beyond the open-file limit of {limit}; "
                f"raise it with ulimit -n {highest + 1} or more"
            )

    def _check_headroom(self) -> None:
        """Raises EMFILE unless the descriptors that starting the stages still needs are there.

        Once wired, each start still opens a few: ``Popen``'s exec-status pipe
        and the stage's redirections. Finding out then would leave some
        stages running and others not; the whole need is checked up front,
        so that a run either starts every stage or none.
        """
        # A substitution's descriptor may take a copy while its stage starts (engine/placement.py).
        needed = 4 + max((len(stage.redirects) + len(self.fd_table[stage.id]) - 3 for stage in self.graph), default=0)
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
        for fd in self.spliced.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.spliced.clear()
        self.descriptors.release_all()

    def _wire_inputs(self, stdin_fd: int) -> None:
        """Gives every stage its stdin and its ``<(...)`` descriptors; the sinks pumps write into go to
        ``stage_sinks``. Stages go in id order: a holder's descriptors are made before the stages that
        share them."""
        for running in self.stages.values():
            stage = running.stage
            for fd, edges in _by_descriptor(self.graph.inputs(stage.id), lambda e: e.target_fd, 0).items():
                self.fd_table[stage.id][fd] = self._wire_input(stage, fd, edges, stdin_fd)

    def _wire_input(self, stage: Stage, fd: int, inputs: tuple[Edge, ...], stdin_fd: int) -> int:
        """The descriptor ``stage`` gets as ``fd``, fed by ``inputs``."""
        sid = stage.id
        from_stdin = [e for e in inputs if e.source is Boundary.STDIN]
        if inputs == tuple(from_stdin) and from_stdin and not self.feeds_stdin():
            self.edge_counts[from_stdin[0]] = (Counter(), None)
            return stdin_fd  # handed over as it is: nothing read ahead
        if len(inputs) == 1 and self._can_splice(inputs[0]):
            read_fd, self.spliced[inputs[0]] = make_pipe()
        elif inputs:
            read_fd, write_fd = make_pipe()
            inner = StreamSink(stream(write_fd), feeders=len(inputs))
            sink = self.stage_sinks[(sid, fd)] = LineMerge(inner) if len(inputs) > 1 else inner
            if from_stdin:
                self.edge_counts[from_stdin[0]] = (self.stdin_copies.add(sink), self.stdin_copies)
        elif stage.reads_stdin_of is not None:
            read_fd = os.dup(self.fd_table[stage.reads_stdin_of][0])  # the same descriptor, as in bash
        else:
            read_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.descriptors.owned[sid].add(read_fd)
        return read_fd

    def _share_stdin_feeders(self) -> None:
        """A stage sharing its holder's stdin is one more consumer of what feeds it: whichever of the two
        exits last is the one whose going stops the producer."""
        for running in self.stages.values():
            holder = running.stage.reads_stdin_of
            if holder is not None:
                running.feeders += [feeder for feeder in self.stages[holder].feeders if feeder.fd == 0]

    def _wire_outputs(self, stdout_fd: int) -> None:
        own_stderr = {sid: self._stderr_sink(running.stage) for sid, running in self.stages.items()}
        shared_feeders = sum(sink is None for sink in own_stderr.values())
        self.shared_stderr = (
            LineJoiner(sink_for_fd(self.stderr_fd, feeders=shared_feeders), end_lines=True) if shared_feeders else None
        )
        for running in self.stages.values():
            outputs = _by_descriptor(self.graph.outputs(running.stage.id), lambda e: e.source_fd, 1)
            for fd, edges in outputs.items():
                self._wire_output(running, fd, edges, stdout_fd)
            shown = own_stderr[running.stage.id]
            stderr_sink = LineJoiner(shown, end_lines=True) if shown is not None else self.shared_stderr
            running.stderr_discarded = shown is None and _is_devnull(self.stderr_fd)
            assert stderr_sink is not None
            self._wire_stderr(running, stderr_sink)

    def _wire_output(self, running: RunningStage, fd: int, outputs: tuple[Edge, ...], stdout_fd: int) -> None:
        """The descriptor ``running`` gets as ``fd`` (1, or a ``>(...)``'s), and what carries it to ``outputs``."""
        sid = running.stage.id
        if fd == 1 and self._hands_over_stdout(outputs):
            self.fd_table[sid][1] = stdout_fd
            running.consumer_left = True  # ppipe cannot see that reader; SIGPIPE there is `ppipe yes | head`
            self.edge_counts[outputs[0]] = (Counter(), None)
        elif len(outputs) == 1 and outputs[0] in self.spliced:
            self._wire_splice(running, fd, outputs[0])
        elif outputs:
            self._wire_pump(running, fd, outputs, stdout_fd)
        elif running.stage.writes_stdout_of is not None:
            self._share_stdout(running, self.stages[running.stage.writes_stdout_of])
        else:
            self.descriptors.give(sid, fd, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC))

    def _share_stdout(self, running: RunningStage, holder: RunningStage) -> None:
        """A stage at the end of a ``>(...)`` writes into its holder's stdout, the same descriptor (as in
        bash), so it is judged by the same evidence when that output goes away."""
        self.descriptors.give(running.stage.id, 1, os.dup(self.fd_table[holder.stage.id][1]))
        running.consumer_left = holder.consumer_left
        if 1 in holder.output_pumps:
            running.output_pumps[1] = holder.output_pumps[1]

    def _hands_over_stdout(self, outputs: tuple[Edge, ...]) -> bool:
        """ppipe's stdout is handed over only to a sole writer; several are merged by line."""
        return (
            len(outputs) == 1
            and outputs[0].target is Boundary.STDOUT
            and (self.options.stdout is None or isinstance(self.options.stdout, int))
            and len(self.graph.inputs(Boundary.STDOUT)) == 1
            and self._observer_stdout is None
        )

    def _wire_splice(self, running: RunningStage, fd: int, edge: Edge) -> None:
        read_fd, write_fd = make_pipe()
        self.descriptors.give(running.stage.id, fd, write_fd)
        pump = SplicePump(
            read_fd,
            self.spliced.pop(edge),  # the pump owns it now
            count_lines=self.options.count_lines,
        )
        self.pumps.append(pump)
        running.output_pumps[fd] = pump
        pump.producer_stderr = running.stderr_tail
        self.edge_counts[edge] = (pump.counters[0], pump)
        assert isinstance(edge.target, int)
        self.stages[edge.target].feeders.append(Feeder(edge.target_fd, pump, None))

    def _wire_pump(self, running: RunningStage, fd: int, outputs: tuple[Edge, ...], stdout_fd: int) -> None:
        read_fd, write_fd = make_pipe()
        self.descriptors.give(running.stage.id, fd, write_fd)
        sinks: list[Sink] = []
        for edge in outputs:
            if isinstance(edge.target, int):
                sinks.append(self.stage_sinks[(edge.target, edge.target_fd)])
            else:
                sinks.append(self._stdout_sink(stdout_fd))
        pump = Pump(stream(read_fd), sinks, count_lines=self.options.count_lines)
        self.pumps.append(pump)
        running.output_pumps[fd] = pump
        pump.producer_stderr = running.stderr_tail
        for i, edge in enumerate(outputs):
            self.edge_counts[edge] = (pump.counters[i], pump)
            if isinstance(edge.target, int):
                self.stages[edge.target].feeders.append(Feeder(edge.target_fd, pump, sinks[i]))

    def _wire_stderr(self, running: RunningStage, sink: Sink) -> None:
        """The stage's stderr through a pump that keeps its tail.

        Like a data pump, it stops when its reader has gone (the reader of
        ppipe's own stderr left: ``ppipe "yes >&2" 2>&1 | head -1``), and the
        stage then gets SIGPIPE at its next write, as under a shell. Any other
        error there (a closed or full stderr) does not stop the stage: the
        pump goes on reading, for the tail.
        """
        err_read, err_write = make_pipe(enlarge=False)
        self.descriptors.give(running.stage.id, 2, err_write)
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
        """One stage's descriptor feeding one other's, nothing else into or out of either: the kernel can move
        the bytes."""
        return (
            self.options.use_splice
            and isinstance(edge.source, int)
            and isinstance(edge.target, int)
            and len(self.graph.outputs_at(edge.source, edge.source_fd)) == 1
            and len(self.graph.inputs_at(edge.target, edge.target_fd)) == 1
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

    # -- the end

    def close(self) -> None:
        """Releases every pump and every descriptor still held, whatever state the run is in."""
        for pump in self.pumps:
            pump.close()
        self.descriptors.release_all()

    def hold_error(self) -> OSError | None:
        """Why a sink could not keep bytes it had taken on (a long line in a fan-in, a full ``$TMPDIR``)."""
        for pump in self.pumps:
            for sink in pump.sinks if isinstance(pump, Pump) else ():
                if sink.hold_error is not None:
                    return sink.hold_error
        return None


def _by_descriptor(edges: tuple[Edge, ...], end: Callable[[Edge], int], first: int) -> dict[int, tuple[Edge, ...]]:
    """``edges`` by the descriptor ``end`` gives, ``first`` (stdin or stdout) first and always there."""
    grouped: dict[int, list[Edge]] = {first: []}
    for edge in edges:
        grouped.setdefault(end(edge), []).append(edge)
    return {fd: tuple(group) for fd, group in grouped.items()}


def _is_devnull(fd: int) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(os.devnull))
    except OSError:
        return False

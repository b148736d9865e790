"""Runs a :class:`~ppipe.graph.Graph` on one event loop and always reaps what it starts.

Every stage is a ``tornado.process.Subprocess`` given plain descriptors that
ppipe created itself (close-on-exec pipes and files it opened), never
``Subprocess.STREAM``: when ``Popen`` fails, tornado's ``STREAM`` clean-up
closes descriptors its new ``PipeIOStream`` s still own, and a later garbage
collection then closes whatever reused those numbers. How each edge is
carried (ppipe's stdin and stdout handed over as they are, the kernel's
splice, a counting pump) is :mod:`ppipe.engine.wiring`'s; this module starts
the stages, waits for them, drains what they wrote, and builds the result.

Before anything starts every command is resolved on ``PATH``, so a missing
command fails with 127 and nothing half-started. A redirection that cannot
be opened fails only its stage, with status 1, as in bash.

The engine owns the ``SIGCHLD`` handler for the run (see
:func:`~ppipe.engine.processes.sigchld_handler`), the signal handlers when
asked (SIGINT, SIGTERM, SIGHUP reach every stage), the ``--timeout`` timer,
and the guarantee that no stage outlives ppipe: stages are reaped on every
path out of :meth:`Execution.run`, and on Linux each stage is also tied to
ppipe with ``PR_SET_PDEATHSIG`` so that even ``kill -9`` of ppipe takes them
down (except in a shard's slot, whose supervisor sees its stages out:
:func:`~ppipe.engine.processes.untie_stages`). Stopping a stage stops its whole process tree, descendants that
double-forked or left the process group included (:mod:`ppipe.engine.trees`);
a run that ends by itself leaves background descendants running, as bash.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import stat
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

from ppipe import policy
from ppipe.engine.accounts import edge_result, stage_result, stage_snapshot
from ppipe.engine.counting import Counter
from ppipe.engine.feed import read_chunks
from ppipe.engine.options import RunOptions
from ppipe.engine.positions import FilePositions
from ppipe.engine.processes import (
    Stopping,
    exec_failure,
    handling_signals,
    in_terminal_foreground,
    resolve_commands,
    sigchld_handler,
    spawn,
    stage_hook,
    terminal_modes_kept,
)
from ppipe.engine.sinks import held_problem
from ppipe.engine.slices import FileSlice, read_slice
from ppipe.engine.tee import tee_function
from ppipe.engine.trees import RunTrees
from ppipe.engine.wiring import RunningStage, Wiring
from ppipe.errors import ExitStatus
from ppipe.flow import EdgeResult, bytes_into_stdout
from ppipe.graph import Boundary, Edge, Graph
from ppipe.results import PipelineResult

if TYPE_CHECKING:
    from ppipe.snapshots import PipelineSnapshot

#: How long pumps may keep reading after every stage has exited. Only a
#: stage's background descendants can still hold a pipe open by then, and
#: ppipe does not wait for those (bash does not wait for them either).
DRAIN_GRACE = 0.5

#: How long ppipe waits for a SIGKILLed stage's exit to be reported before reaping it itself.
REAP_LIMIT = 5.0

#: How long stages in the terminal's foreground get to act on Ctrl-C before ppipe passes SIGINT on itself.
FOREGROUND_GRACE = 0.5


class Execution(Stopping):
    """One run of one graph. Use :meth:`run` once; it always reaps what it started."""

    def __init__(self, graph: Graph, options: RunOptions, paths: Mapping[int, str]) -> None:
        self.graph = graph
        self.options = options
        self.env = dict(os.environ if options.env is None else options.env)
        self.procs = {s.id: RunningStage(s, paths[s.id]) for s in graph}
        last = graph.last_stage() if options.pager else None
        #: The stage that owns the terminal under ``RunOptions.pager``: the one writing ppipe's stdout.
        #: It gets ppipe's stdout itself, as under a shell. While it runs, nothing else may draw on its
        #: screen: the other stages' stderr is held back (``Wiring.held_stderr``) and printed when the
        #: run ends. Ctrl-C from the terminal while it runs is the pager's business (less uses it to stop
        #: a search), so ppipe does not stop the run for it: the stages got it from the terminal
        #: themselves, as under bash. A pager killed by a signal cannot restore the terminal's modes;
        #: ppipe puts them back (:func:`~ppipe.engine.processes.terminal_modes_kept`).
        self.pager = last.id if last is not None else None
        self.wiring = Wiring(graph, options, self.procs, self.pager)
        self.pump_tasks: list[asyncio.Future[None]] = []
        #: The task copying ppipe's input to its readers, cancelled once every stage reading it has exited.
        self.stdin_feed: asyncio.Future[None] | None = None
        #: Why ppipe could not read its input or write its output, if so.
        self.io_error: str | None = None
        self.watchers: list[asyncio.Future[None]] = []
        #: Stopped on request (:meth:`stop_for`); the same signal may still come by itself.
        self._stopped_on_request = False
        #: The stages' process trees: a stop reaches every descendant (:mod:`ppipe.engine.trees`).
        self.trees = RunTrees()
        self.started_at = time.time()

    async def run(self) -> PipelineResult:
        self.started_at = time.time()
        loop = asyncio.get_running_loop()
        pager_terminal = self.wiring.boundary_fds()[1] if self.pager is not None else None
        with (
            self.trees.adopting(),
            sigchld_handler(),
            handling_signals(loop, self._on_signal, self.options.handle_signals),
            terminal_modes_kept(pager_terminal),
        ):
            timeout = self.options.timeout
            timer = loop.call_later(timeout, self._on_timeout, timeout) if timeout else None
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
                if self.wiring.held_stderr is not None:
                    # Before the pumps close: closing abandons their sinks, the spool with them.
                    await self.wiring.held_stderr.release()
                self._close_everything()
                if self.options.observer is not None:
                    self.options.observer.finished()
        return self._result()

    def snapshot(self) -> PipelineSnapshot:
        """The pipeline as it is now, for displays; cheap enough to take ten times a second."""
        from ppipe.snapshots import PipelineSnapshot  # only a watched run takes snapshots

        now = time.time()
        return PipelineSnapshot(
            now - self.started_at,
            tuple(stage_snapshot(p, self.graph, self._edge_result, now) for p in self.procs.values()),
        )

    # -- spawning

    def _spawn_all(self) -> None:
        # Everything that opens a file of its own (ctypes, libc) is loaded before the
        # wiring takes descriptors, so that it cannot fail for want of one later.
        hook = stage_hook()
        if self.options.count_lines:
            tee_function()
        self.wiring.wire()
        for proc in self.procs.values():
            self._spawn(proc, hook)
        for pump in self.wiring.pumps:
            self.pump_tasks.append(asyncio.ensure_future(pump.run()))
        if self.wiring.feeds_stdin():
            stdin = self.options.stdin
            source = (
                stdin
                if isinstance(stdin, bytes)
                else read_slice(stdin)
                if isinstance(stdin, FileSlice)
                else read_chunks(self.wiring.boundary_fds()[0])
            )
            self.stdin_feed = asyncio.ensure_future(self._copy_stdin(source))
            self.pump_tasks.append(self.stdin_feed)

    async def _copy_stdin(self, source: bytes | AsyncIterator[bytes]) -> None:
        try:
            await self.wiring.stdin_copies.run(source)
        except OSError as error:  # a closed stdin, a device error: the readers get EOF, the run fails
            self.io_error = f"cannot read the input: {error.strerror}"

    def _spawn(self, proc: RunningStage, hook: Callable[[], None] | None) -> None:
        sid = proc.stage.id
        try:
            try:
                fds = self.wiring.descriptors.for_spawn(proc.stage)
            except OSError as error:
                proc.error = f"{error.filename}: {error.strerror}"
                return
            env = {**self.env, **dict(proc.stage.env)}
            proc.started_at = time.time()
            try:
                proc.process = spawn(list(proc.stage.argv), proc.path, fds, env, self.options.cwd, hook)
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
            self.trees.claim(proc.pid)
            proc.positions = FilePositions(proc.pid, proc.stage.argv, self.options.cwd, _regular_file(fds[0]))
            self.watchers.append(asyncio.ensure_future(self._watch(proc)))
        finally:
            # The child has its copies (or never will): ppipe's must go, or
            # its neighbours would never see EOF or EPIPE.
            self.wiring.descriptors.release(sid)

    # -- waiting

    async def _watch(self, proc: RunningStage) -> None:
        assert proc.process is not None
        returncode = await proc.process.wait_for_exit(raise_error=False)
        proc.ended_at = time.time()
        proc.returncode = returncode
        self.trees.release(proc.process.pid)
        # A closing after the exit cannot be to blame; one of any output (its stdout, a >(...)'s) can.
        cut = [pump for pump in proc.output_pumps.values() if pump.closed_early]
        if cut:
            proc.cut_before_exit = True
            exited = time.monotonic()
            proc.output_closed_early = any(pump.died_of_cut(exited) for pump in cut)
            proc.consumer_left = True
        if proc.stderr_pump is not None and proc.stderr_pump.closed_early:
            proc.consumer_left = True  # ppipe's stderr has no reader left: SIGPIPE there is `2>&1 | head`
        for feeder in proc.feeders:
            # The consumer is gone: its producer gets EPIPE/SIGPIPE now, not
            # at its next write into a pipe nobody will ever read.
            feeder.pump.consumer_exited(feeder.sink)

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
            for pump in self.wiring.pumps:
                if self.stopped_by is not None:
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
        """Stops and waits for every stage still running (errors, cancellation); after a stop, their trees too.

        A run that ended by itself leaves the stages' background descendants
        running, as bash does; a stopped one (signal, ``--timeout``, an error
        or a cancellation with stages running) waits for every descendant
        and kills those left after the grace (:meth:`RunTrees.settle`).
        """
        if any(p.running for p in self.procs.values()):
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
        await self.trees.settle(self.options.kill_after)

    def _reap_directly(self, proc: RunningStage) -> None:
        """Last resort when tornado never reported an exit: wait for the SIGKILLed stage ourselves."""
        try:
            _, status = os.waitpid(proc.pid or 0, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            proc.returncode = -signal.SIGKILL  # reaped elsewhere; it was sent SIGKILL
        proc.ended_at = time.time()
        self.trees.release(proc.pid or 0)

    def _close_everything(self) -> None:
        self.wiring.close()
        for task in self.pump_tasks:
            if not task.done():
                task.cancel()

    # -- stopping

    def _signal_all(self, sig: int) -> None:
        """Sends ``sig`` to every stage still running and to all their descendants, wherever they went."""
        running = [p for p in self.procs.values() if p.running and p.pid is not None]
        for proc in running:
            proc.signalled = True
        self.trees.signal([p.pid for p in running if p.pid is not None], sig)

    def _stop(self, first_signal: int, already_delivered: bool = False) -> None:
        """First ``first_signal`` to every stage, then SIGKILL after the grace period."""
        if already_delivered:
            for proc in self.procs.values():
                proc.signalled = proc.signalled or proc.running
            self.trees.stopping()
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
        if self.signalled is None:
            self._on_signal(sig)
            self._stopped_on_request = True

    def _on_signal(self, sig: int) -> None:
        if self.signalled is not None and self._stopped_on_request:
            self._stopped_on_request = False  # the request's own signal, arriving by itself
            return
        # Ctrl-C in a terminal reaches the whole foreground group, stages
        # included; sending it again at once would interrupt their clean-up.
        # But it may have come from `kill -INT` instead: stages still running
        # a moment later get it from ppipe.
        from_terminal = self.signalled is None and sig == signal.SIGINT and in_terminal_foreground()
        if from_terminal and self.pager is not None and self.procs[self.pager].running:
            return  # the pager's to handle, and the stages got it already (see self.pager)
        if self._first_stop_signal(sig):
            self._stop(sig, already_delivered=from_terminal)
            if from_terminal:
                asyncio.get_running_loop().call_later(FOREGROUND_GRACE, self._signal_all, sig)

    # -- results

    def stdout_bytes(self) -> int | None:
        """What ppipe has carried into its stdout so far; None when it handed its stdout over uncounted."""
        return bytes_into_stdout(self._edge_result(e) for e in self.graph.inputs(Boundary.STDOUT))

    def _edge_result(self, edge: Edge) -> EdgeResult:
        """What has crossed ``edge``: so far in a snapshot, all of it at the end."""
        return edge_result(edge, *self.wiring.edge_counts.get(edge, (Counter(), None)))

    def _result(self) -> PipelineResult:
        stages = tuple(stage_result(p) for p in self.procs.values())
        judged = policy.judge(self.graph, stages, no_fail=self.options.no_fail)
        edges = [self._edge_result(edge) for edge in self.graph.edges]
        stdout_target = self.wiring.stdout_target
        if stdout_target is not None and stdout_target.error is not None and not self.io_error:
            self.io_error = f"cannot write the output: {stdout_target.error.strerror}"
        held = self.wiring.hold_error()
        if held is not None and not self.io_error:
            self.io_error = f"cannot keep an unfinished line for a merge: {held_problem(held)}"
        exit_status = policy.exit_status(judged, stopped_by=self.stopped_by)
        return PipelineResult(
            graph=self.graph,
            stages=judged,
            edges=tuple(edges),
            exit_status=exit_status or (ExitStatus.FAILURE if self.io_error else 0),
            io_error=self.io_error,
            started_at=self.started_at,
            ended_at=time.time(),
            stopped_by=self.stopped_by,
            stdout=bytes(self.wiring.capture.data) if self.wiring.capture is not None else None,
            timeout=self.timed_out_after or self.options.timeout or None,
        )


def _regular_file(fd: int) -> tuple[os.stat_result, int] | None:
    """The stat of ``fd`` and its offset when it is a regular file (a stage's stdin read from a file)."""
    try:
        info = os.fstat(fd)
        return (info, os.lseek(fd, 0, os.SEEK_CUR)) if stat.S_ISREG(info.st_mode) else None
    except OSError:
        return None


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

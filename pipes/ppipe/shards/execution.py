"""Sharded runs (``--fork N``): N copies of a pipeline side by side, one view, one status.

The design, in three kinds of process:

- **ppipe** (this module, :class:`ShardedExecution`) keeps the event loop,
  the view, the report and every byte that crosses its boundary: it splits
  its stdin between shards and merges their stdout and stderr back, whole
  lines at a time (:mod:`ppipe.shards.input`, :mod:`ppipe.shards.output`). It decides every restart.
- A **supervisor** (:mod:`ppipe.shards.supervisor`), a fresh interpreter with no
  loop and no threads, calls ``tornado.process.fork_processes``.
- Each **shard attempt** runs the pipeline with the ordinary engine, its
  placeholders (``{task_id}``...) substituted, and reports over a socket.

Shard ids are ``offset .. offset + processes - 1`` out of ``tasks``: on
one machine ``0 .. N-1`` of ``N``; as task *k* of a cluster job array with
``--fork N``, ``k·N .. k·N+N-1`` of ``K·N``.

Nothing outlives ppipe: on every way out of :meth:`ShardedExecution.run`
the supervisor is killed if it still runs, and its death takes the shards,
whose deaths take their stages (``PR_SET_PDEATHSIG`` at each level).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tornado.iostream import IOStream, StreamClosedError
from tornado.process import Subprocess

from ppipe import policy
from ppipe.engine.descriptors import make_pipe, stream
from ppipe.engine.execution import DRAIN_GRACE
from ppipe.engine.feed import chunks_of, read_chunks
from ppipe.engine.options import RunOptions
from ppipe.engine.processes import (
    FORWARDED_SIGNALS,
    Stopping,
    handling_signals,
    parent_death_hook,
    resolve_commands,
    sigchld_handler,
)
from ppipe.engine.pumps import Pump
from ppipe.engine.sinks import CaptureSink, LineJoiner, Sink, sink_for_fd
from ppipe.errors import ExitStatus, UsageError
from ppipe.graph import Boundary, Graph
from ppipe.language.parser import parse, placeholder_values, substitute_placeholders
from ppipe.results import PipelineResult, RunResult, ShardAttempt, ShardResult, Verdict, signal_name
from ppipe.shards import channel
from ppipe.shards.input import DEFAULT_BLOCK, ShardInput, split_input, splittable, write_all
from ppipe.shards.output import Lasting, OutputMerge, TagSink
from ppipe.snapshots import PipelineSnapshot, RunObserver, RunSnapshot, ShardSnapshot, ShardState

#: Seconds between an attempt's snapshots, when someone watches (the view).
SNAPSHOT_EVERY = 0.25
#: Extra grace, after ``kill_after``, for a stopping shard to stop its stages and report.
REPORT_GRACE = 1.0


@dataclass(frozen=True)
class ShardPlan:
    """How to shard a pipeline: ``--fork`` and the options that go with it.

    ``processes`` is how many shards run here (``--fork``; 0 means one per
    CPU). ``max_restarts`` is per shard: one shard's bad luck does not use up
    the others' restarts, and the report can say of each shard how often it
    ran. ``offset`` and ``tasks`` place this machine's shards in a larger
    job array (see :func:`cluster_identity`).
    """

    processes: int
    max_restarts: int = 0
    fail_fast: bool = False
    tag: bool = False
    keep_order: bool = False
    block: int = DEFAULT_BLOCK
    offset: int = 0
    tasks: int | None = None

    @property
    def local(self) -> int:
        return self.processes if self.processes > 0 else usable_cpus()

    @property
    def total(self) -> int:
        return self.tasks if self.tasks is not None else self.local

    @property
    def task_ids(self) -> range:
        return range(self.offset, self.offset + self.local)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers and ``taskset`` narrow).

    ``fork_processes`` and ``os.cpu_count()`` count the machine's CPUs instead.
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class TaskIdentity:
    """Which task of a job array this process is, and where that came from."""

    task_id: int
    tasks: int
    source: str


def cluster_identity(
    env: Mapping[str, str], task_id: int | None = None, tasks: int | None = None
) -> TaskIdentity | None:
    """This process's place in a cluster job array: ``--task-id/--tasks``, else Slurm's or Kubernetes' variables.

    Slurm: ``SLURM_ARRAY_TASK_ID`` counted from ``SLURM_ARRAY_TASK_MIN``
    (so ``--array=1-8`` gives ids 0–7), of ``SLURM_ARRAY_TASK_COUNT``.
    Kubernetes Indexed Jobs: ``JOB_COMPLETION_INDEX``; Kubernetes does not
    say how many there are, so ``--tasks`` must. None when nothing says.
    """
    if task_id is not None:
        if tasks is None:
            raise UsageError("--task-id needs --tasks (how many tasks the job has)")
        return _checked(TaskIdentity(task_id, tasks, "--task-id/--tasks"))
    if "SLURM_ARRAY_TASK_ID" in env:
        try:
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            identity = TaskIdentity(
                int(env["SLURM_ARRAY_TASK_ID"]) - first, int(env["SLURM_ARRAY_TASK_COUNT"]), "Slurm"
            )
        except (KeyError, ValueError) as error:
            raise UsageError(f"cannot read the Slurm array task from the environment: {error}") from error
        return _checked(identity)
    if "JOB_COMPLETION_INDEX" in env:
        if tasks is None:
            raise UsageError(
                "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job), but Kubernetes does not say "
                "how many tasks there are: pass --tasks N (the Job's completions)"
            )
        try:
            return _checked(TaskIdentity(int(env["JOB_COMPLETION_INDEX"]), tasks, "Kubernetes"))
        except ValueError as error:
            raise UsageError(f"JOB_COMPLETION_INDEX is not a number: {env['JOB_COMPLETION_INDEX']!r}") from error
    if tasks is not None:
        raise UsageError("--tasks needs --task-id, or a job array's environment (Slurm, Kubernetes)")
    return None


def _checked(identity: TaskIdentity) -> TaskIdentity:
    if identity.tasks < 1 or not 0 <= identity.task_id < identity.tasks:
        raise UsageError(
            f"task id {identity.task_id} is not among the {identity.tasks} tasks "
            f"(from {identity.source}; ids count from 0)"
        )
    return identity


# ---------------------------------------------------------------- the run


@dataclass
class _Attempt:
    number: int
    pid: int
    control: IOStream | None
    started_at: float
    ended_at: float | None = None
    result: PipelineResult | None = None
    error: str | None = None
    error_status: int | None = None
    wait_status: int | None = None
    snapshot: PipelineSnapshot | None = None
    out_pump: Pump | None = None
    pump_tasks: list[asyncio.Future[None]] = field(default_factory=list)
    #: What ppipe could not hold for this attempt (its output, its input for a restart), if anything:
    #: the attempt then fails, whatever its pipeline did.
    lost: str | None = None

    def lose(self, why: str) -> None:
        self.lost = why if self.lost is None else f"{self.lost}; {why}"

    @property
    def reported(self) -> bool:
        return self.result is not None or self.error is not None

    @property
    def bytes_out(self) -> int:
        return self.out_pump.counters[0].nbytes if self.out_pump is not None else 0

    def record(self) -> ShardAttempt:
        error = self.error
        if not self.reported and self.wait_status is not None:
            error = _describe_wait(self.wait_status) + " before it reported"
        elif not self.reported:
            error = "the shard process ended before it reported"
        result = self.result
        if self.lost is not None:
            if result is not None:
                result = dataclasses.replace(
                    result,
                    exit_status=result.exit_status or ExitStatus.FAILURE,
                    io_error="; ".join(filter(None, (result.io_error, self.lost))),
                )
            else:
                error = "; ".join(filter(None, (error, self.lost)))
        return ShardAttempt(
            self.number, self.pid, self.started_at, self.ended_at, result, error, self.error_status, self.wait_status
        )


@dataclass
class _Shard:
    task_id: int
    index: int
    pipeline: str
    input: ShardInput | None
    attempts: list[_Attempt] = field(default_factory=list)
    final: bool = False
    stopped: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def current(self) -> _Attempt | None:
        return self.attempts[-1] if self.attempts else None


class ShardedExecution(Stopping):
    """One sharded run. Use :meth:`run` once; it always leaves nothing running."""

    def __init__(self, text: str, plan: ShardPlan, options: RunOptions, observer: RunObserver | None = None) -> None:
        self.text = text
        self.plan = plan
        self.options = options
        self.observer = observer
        self.env = dict(os.environ if options.env is None else options.env)
        self.shards: list[_Shard] = []
        self.stopping = False
        #: Why ppipe could not read all of its input, if so; the run then fails.
        self.input_error: str | None = None
        self.started_at = time.time()
        self._by_pid: dict[int, tuple[_Shard, _Attempt]] = {}
        self._refused: set[int] = set()
        self._capture: CaptureSink | None = None
        self._tasks: list[asyncio.Future[None]] = []
        self._splitting: asyncio.Future[None] | None = None

    # -- before anything runs

    def check(self) -> Graph:
        """Parses the pipeline as the first shard runs it, and finds its commands: bad input fails before any start.

        Once, not once per shard: placeholders are filled into the parsed
        words and never change how the text parses, so one parse finds
        every syntax error. A command whose name holds a placeholder
        (``./score{task_id}``) is checked by each shard as it starts: a
        shard without its command fails alone (127) and is not restarted.
        """
        values = placeholder_values(self.plan.task_ids[0], self.plan.total)
        graph = parse(self.text, env=self.env, cwd=self.options.cwd, placeholders=values)
        resolve_commands(graph, self.env)
        return graph

    def _splits_input(self, first: Graph) -> bool:
        readers = [first.stage(e.target) for e in first.outputs(Boundary.STDIN) if isinstance(e.target, int)]
        if all(any(r.fd == 0 for r in stage.redirects) for stage in readers):
            return False  # every stage at the start reads a file of its own (`< f`)
        stdin = self.options.stdin
        return isinstance(stdin, bytes) or splittable(0 if stdin is None else stdin)

    # -- the run

    async def run(self) -> RunResult:
        check_plan(self.plan)
        _check_descriptors(self.plan.local)
        split = self._splits_input(self.check())
        self.started_at = time.time()
        loop = asyncio.get_running_loop()
        doorbell, far_doorbell = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.shards = [
            _Shard(
                task_id,
                index,
                substitute_placeholders(self.text, task_id, self.plan.total),
                ShardInput(spool=self.plan.max_restarts > 0) if split else None,
            )
            for index, task_id in enumerate(self.plan.task_ids)
        ]
        self.output = OutputMerge(
            self._stdout_sink(), shards=len(self.shards), tag=self.plan.tag, keep_order=self.plan.keep_order
        )
        self.errors_target = Lasting(self._stderr_target())
        self.errors = LineJoiner(self.errors_target, end_lines=True)
        supervisor: Subprocess | None = None
        with sigchld_handler(), handling_signals(loop, self._on_signal, self.options.handle_signals):
            timer = loop.call_later(self.options.timeout, self._on_timeout) if self.options.timeout else None
            try:
                doorbell.setblocking(False)
                loop.add_reader(doorbell.fileno(), self._answer_door, doorbell)
                supervisor = self._start_supervisor(far_doorbell, split)
                far_doorbell.close()
                if split:
                    self._splitting = asyncio.ensure_future(self._split())
                if self.observer is not None:
                    self.observer.started(self)
                await self._wait(supervisor)
            finally:
                if timer:
                    timer.cancel()
                self._cancel_kill()
                loop.remove_reader(doorbell.fileno())
                doorbell.close()
                far_doorbell.close()
                await self._clean_up(supervisor)
                if self.observer is not None:
                    self.observer.finished()
        return self._result()

    def _start_supervisor(self, far_doorbell: socket.socket, split: bool) -> Subprocess:
        """Starts the supervisor (a fresh ``python -c`` that imports :mod:`ppipe.shards.supervisor` from this ppipe's
        own package root) with its spec on stdin and the doorbell as its only extra fd."""
        ignored = {sig for sig in FORWARDED_SIGNALS if signal.getsignal(sig) == signal.SIG_IGN}
        spec = {
            "pipeline": self.text,
            "local": self.plan.local,
            "offset": self.plan.offset,
            "tasks": self.plan.total,
            "doorbell": far_doorbell.fileno(),
            "split": split,
            "no_fail": self.options.no_fail,
            "kill_after": self.options.kill_after,
            "count_lines": self.options.count_lines,
            "count_lines_below": self.options.count_lines_below,
            "snapshot_every": SNAPSHOT_EVERY if self.observer is not None else None,
            # tornado's global count is only a backstop: ppipe decides (see ppipe.policy).
            "bound": self.plan.local * (self.plan.max_restarts + 3),
            "default_signals": [int(sig) for sig in FORWARDED_SIGNALS if sig not in ignored],
        }
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        bootstrap = "import sys; sys.path.insert(0, sys.argv.pop(1)); from ppipe.shards.supervisor import main; main()"
        # The spec goes through a pipe on its stdin, not argv: Linux takes at most
        # 128 KiB in one argument, and a long pipeline's JSON is larger.
        spec_read, spec_write = make_pipe(enlarge=False)
        try:
            supervisor = Subprocess(
                [sys.executable, "-c", bootstrap, package_root],
                stdin=spec_read,
                stdout=subprocess.DEVNULL,
                stderr=self.options.stderr,
                pass_fds=(far_doorbell.fileno(),),
                env=self.options.env,
                cwd=self.options.cwd,
                preexec_fn=_supervisor_hook(),
            )
        except BaseException:
            os.close(spec_write)
            raise
        finally:
            os.close(spec_read)
        self._tasks.append(asyncio.ensure_future(_hand_over(spec_write, json.dumps(spec).encode())))
        return supervisor

    def _stdout_sink(self) -> Sink:
        if self.observer is not None and (watched := self.observer.stdout_sink()) is not None:
            return watched  # whole lines already: each attempt writes through a LineAssembler
        stdout = self.options.stdout
        if stdout is not None and not isinstance(stdout, int):  # CAPTURE
            self._capture = CaptureSink()
            return self._capture
        return sink_for_fd(1 if stdout is None else stdout)

    def _stderr_target(self) -> Sink:
        return sink_for_fd(2 if self.options.stderr is None else self.options.stderr)

    async def _split(self) -> None:
        inputs = [s.input for s in self.shards if s.input is not None]
        stdin = self.options.stdin
        try:
            if isinstance(stdin, bytes):
                await split_input(chunks_of(stdin), inputs, self.plan.block, size=len(stdin))
            else:
                await split_input(read_chunks(0 if stdin is None else stdin), inputs, self.plan.block)
        except OSError as error:  # the run fails, as a plain run does: the shards may have missed input
            self.input_error = f"cannot read the input: {error.strerror or error}"

    # -- the doorbell: hellos from attempts, exits from the supervisor

    def _answer_door(self, doorbell: socket.socket) -> None:
        while True:
            try:
                rung = channel.answer_door(doorbell)
            except BlockingIOError:
                return
            except OSError:
                rung = None
            if rung is None:
                asyncio.get_running_loop().remove_reader(doorbell.fileno())
                return
            message, fds = rung
            if message[0] == "hello":
                self._on_hello(message[1], message[2], fds)
            elif message[0] == "exited":
                self._on_exit(message[1], message[2])

    def _on_hello(self, index: int, pid: int, fds: list[int]) -> None:
        shard = self.shards[index]
        if len(fds) < (4 if shard.input is not None else 3):
            # The kernel could not give ppipe the attempt's pipes: out of descriptors.
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._refused.add(pid)
            attempt = _Attempt(
                len(shard.attempts) + 1,
                pid,
                None,
                time.time(),
                ended_at=time.time(),
                error="ppipe ran out of file descriptors for this shard (raise ulimit -n)",
                error_status=ExitStatus.FAILURE,
            )
            shard.attempts.append(attempt)
            self._settle(shard)
            return
        control = IOStream(socket.socket(fileno=fds[0]))
        if self._refuses(shard):
            self._refused.add(pid)
            self._tasks.append(asyncio.ensure_future(_say_no(control)))
            for fd in fds[1:]:
                os.close(fd)
            return
        attempt = _Attempt(len(shard.attempts) + 1, pid, control, time.time())
        shard.attempts.append(attempt)
        self._by_pid[pid] = (shard, attempt)
        out_sink = self.output.sink_for(shard.task_id, shard.index, lost=attempt.lose)
        attempt.out_pump = Pump(stream(fds[1]), [out_sink], count_lines=self.options.count_lines)
        err_sink: Sink = self.errors
        watched = self.observer.stderr_sink(shard.task_id, None) if self.observer is not None else None
        if watched is not None:
            err_sink = LineJoiner(watched, end_lines=True)
        elif self.plan.tag:
            err_sink = TagSink(self.errors, f"{shard.task_id}\t".encode())
        err_pump = Pump(stream(fds[2]), [err_sink], count_lines=False, keep_draining=True)
        attempt.pump_tasks = [asyncio.ensure_future(attempt.out_pump.run()), asyncio.ensure_future(err_pump.run())]
        if shard.input is not None:
            shard.input.attach(fds[3], attempt.lose)
        self._tasks.append(asyncio.ensure_future(self._converse(shard, attempt)))

    def _refuses(self, shard: _Shard) -> bool:
        """Whether a new attempt of ``shard`` must not run; settles a shard whose last attempt was lost."""
        if shard.final or self.stopping:
            return True
        last = shard.current
        if last is not None and not (
            policy.should_restart(last.record().exit_status, len(shard.attempts), self.plan.max_restarts)
            and self._can_feed_again(shard, last)
        ):
            self._settle(shard)
            return True
        return False

    @staticmethod
    def _can_feed_again(shard: _Shard, last: _Attempt) -> bool:
        """Whether a restart can be fed the input ``last`` had; if not, ``last`` says why it was not run again."""
        problem = shard.input.spool_error if shard.input is not None else None
        if problem is not None:
            last.lose(f"not run again: {problem}")
        return problem is None

    def _on_exit(self, pid: int, wait_status: int) -> None:
        if pid in self._refused:
            self._refused.discard(pid)  # the pid may come back for a later attempt
            return
        found = self._by_pid.get(pid)
        if found is None:
            return
        shard, attempt = found
        attempt.wait_status = wait_status
        attempt.ended_at = attempt.ended_at or time.time()
        if not attempt.reported and not shard.final and (self.stopping or wait_status == 0):
            self._settle(shard)  # no restart is coming (tornado restarts only failures)

    async def _converse(self, shard: _Shard, attempt: _Attempt) -> None:
        """Says "go" to an attempt, then follows it: snapshots, its result, and the answer to "again?"."""
        assert attempt.control is not None
        try:
            await channel.write(attempt.control, ("go", True))
            while True:
                message = await channel.read(attempt.control)
                if message[0] == "snapshot":
                    attempt.snapshot = message[1]
                    continue
                attempt.ended_at = time.time()
                if message[0] == "result":
                    attempt.result = message[1]
                else:
                    attempt.error, attempt.error_status = message[1], message[2]
                # A command missing on this shard, or output ppipe could not keep: running again will not help.
                could_start = message[0] == "result" and attempt.lost is None
                # Once nobody reads ppipe's output, running again would only fail again.
                stopping = self.stopping or not self.output.target.alive
                again = policy.should_restart(
                    attempt.record().exit_status,
                    len(shard.attempts),
                    self.plan.max_restarts,
                    could_start=could_start,
                    stopping=stopping,
                ) and self._can_feed_again(shard, attempt)
                if not again:
                    self._settle(shard)
                await channel.write(attempt.control, ("again", again))
        except StreamClosedError:
            pass  # the attempt has gone; its exit (from the supervisor) or the next hello decides
        finally:
            attempt.control.close()

    def _settle(self, shard: _Shard) -> None:
        """The shard will run no more: its last attempt's end is its verdict."""
        if shard.final:
            return
        shard.final = True
        shard.stopped = shard.stopped or (self.stopping and not self._succeeded(shard))
        if shard.input is not None:
            shard.input.detach()
        if self.plan.fail_fast and not self.stopping and self._verdict(shard) is Verdict.FAILED:
            self._say(f"ppipe: shard {shard.task_id} failed; stopping the others (--fail-fast)\n")
            self.stop(signal.SIGTERM)
        self._tasks.append(asyncio.ensure_future(self._flush(shard)))

    async def _flush(self, shard: _Shard) -> None:
        """Once the shard's output has all arrived, ``--keep-order`` may move on to the next shard."""
        try:
            await asyncio.gather(*(task for a in shard.attempts for task in a.pump_tasks[:1]), return_exceptions=True)
            await self.output.shard_done(shard.index)
        finally:
            shard.settled.set()  # whatever happened, the run must be able to end

    @staticmethod
    def _succeeded(shard: _Shard) -> bool:
        return shard.current is not None and shard.current.reported and shard.current.record().exit_status == 0

    def _verdict(self, shard: _Shard) -> Verdict:
        last = shard.current
        if last is None:
            return Verdict.TERMINATED if self.stopping else Verdict.FAILED
        # A signal to the whole process group (Ctrl-C, `timeout`) may stop a
        # shard before ppipe itself has handled it: that shard was stopped too.
        interrupted = self.stopping and last.result is not None and last.result.interrupted_by is not None
        return policy.shard_verdict(last.record().exit_status, stopped=shard.stopped or interrupted)

    # -- stopping: --fail-fast, --timeout, signals

    def stop(self, sig: int) -> None:
        """Stops every running attempt and starts no new one.

        Each attempt is asked to stop as ``sig`` would stop it (over its
        control socket, not by a signal, which the attempt may already have
        had from the terminal); attempts still running after the grace
        period are killed, and their stages die with them.
        """
        self.stopping = True
        for shard in self.shards:
            if not shard.final:
                shard.stopped = True
        for attempt in self._running():
            if attempt.control is not None:
                self._tasks.append(asyncio.ensure_future(_ask_to_stop(attempt.control, sig)))
        self._kill_after(self.options.kill_after + REPORT_GRACE)

    def stop_all(self, sig: int) -> None:
        self.stop(sig)

    def _running(self) -> list[_Attempt]:
        attempts = (shard.current for shard in self.shards)
        return [a for a in attempts if a is not None and a.wait_status is None and not a.reported]

    def kill_all(self) -> None:
        """Kills every running attempt; its stages die with it."""
        for attempt in self._running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(attempt.pid, signal.SIGKILL)

    def _on_signal(self, sig: int) -> None:
        if self._interrupted(sig):
            self.stop(sig)

    # -- the end

    async def _wait(self, supervisor: Subprocess) -> None:
        code = await supervisor.wait_for_exit(raise_error=False)
        if code != 0:
            self._say(f"ppipe: the shard supervisor ended with status {code}; its shards ended with it\n")
        for shard in self.shards:
            if not shard.final:
                if self.stopping:
                    shard.stopped = True
                self._settle(shard)
        await self._drain()

    async def _drain(self) -> None:
        """Waits for the shards' output; a background descendant idle past the grace is not waited for."""
        pumps = [t for s in self.shards for a in s.attempts for t in a.pump_tasks]
        while pumps:
            _, pending = await asyncio.wait(pumps, timeout=DRAIN_GRACE)
            if not pending:
                break
            for shard in self.shards:
                for attempt in shard.attempts:
                    if attempt.out_pump is not None and attempt.out_pump.idle_for() > DRAIN_GRACE:
                        attempt.out_pump.stop_reading()
            pumps = list(pending)
        await asyncio.gather(*(s.settled.wait() for s in self.shards))

    async def _clean_up(self, supervisor: Subprocess | None) -> None:
        if supervisor is not None and supervisor.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor.pid, signal.SIGKILL)  # its shards and their stages die with it
            with contextlib.suppress(Exception):
                await asyncio.wait_for(supervisor.wait_for_exit(raise_error=False), 5)
        for task in self._tasks:
            if not task.done():
                task.cancel()
        if self._splitting is not None:  # stopped, it counts what it read and did not deal
            self._splitting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._splitting
        for shard in self.shards:
            for attempt in shard.attempts:
                if attempt.control is not None:
                    attempt.control.close()
                for task in attempt.pump_tasks:
                    task.cancel()
        with contextlib.suppress(Exception):
            await self.output.close()
        with contextlib.suppress(Exception):
            await self.errors_target.close()
        for shard in self.shards:
            if shard.input is not None:
                shard.input.close()

    def _result(self) -> RunResult:
        shards = tuple(
            ShardResult(
                task_id=s.task_id,
                tasks=self.plan.total,
                pipeline=s.pipeline,
                attempts=tuple(a.record() for a in s.attempts),
                bytes_in=s.input.delivered if s.input is not None else None,
                bytes_out=sum(a.bytes_out for a in s.attempts),
                lines_out=sum(a.out_pump.counters[0].lines for a in s.attempts if a.out_pump is not None)
                if self.options.count_lines
                else None,
                verdict=self._verdict(s),
            )
            for s in self.shards
        )
        output_error = self.output.target.inner.error
        exit_status = policy.run_exit_status(
            [(s.task_id, s.verdict, s.exit_status) for s in shards],
            timed_out=self.timed_out,
            interrupted_by=self.interrupted_by,
        )
        return RunResult(
            pipeline=self.text,
            shards=shards,
            sharded=True,
            exit_status=exit_status or (ExitStatus.FAILURE if output_error or self.input_error else 0),
            output_error=output_error.strerror if output_error is not None else None,
            started_at=self.started_at,
            ended_at=time.time(),
            timed_out=self.timed_out,
            interrupted_by=signal.Signals(self.interrupted_by).name if self.interrupted_by else None,
            stdout=bytes(self._capture.data) if self._capture is not None else None,
            input_undelivered=sum(s.input.undelivered for s in self.shards if s.input is not None),
            timeout=self.options.timeout or None,
            input_error=self.input_error,
        )

    @property
    def graph(self) -> Graph | None:
        """None: each shard parses its own pipeline (see :class:`~ppipe.snapshots.Run`)."""
        return None

    def snapshot(self) -> RunSnapshot:
        """The run as it is now, for the view."""
        now = time.time()
        shards = tuple(self._shard_snapshot(s, now) for s in self.shards)
        return RunSnapshot(now - self.started_at, shards, sharded=True)

    def _shard_snapshot(self, shard: _Shard, now: float) -> ShardSnapshot:
        attempt = shard.current
        if shard.final:
            verdict = self._verdict(shard)
            state = {Verdict.OK: ShardState.DONE, Verdict.FAILED: ShardState.FAILED}.get(verdict, ShardState.STOPPED)
        elif attempt is None:
            state = ShardState.WAITING
        elif attempt.reported or attempt.wait_status is not None:
            state = ShardState.RESTARTING
        else:
            state = ShardState.RUNNING
        first = shard.attempts[0].started_at if shard.attempts else None
        last_end = attempt.ended_at if attempt is not None and shard.final else None
        return ShardSnapshot(
            task_id=shard.task_id,
            state=state,
            pid=attempt.pid if attempt is not None else None,
            attempts=len(shard.attempts),
            bytes_in=shard.input.delivered if shard.input is not None else None,
            bytes_out=sum(a.bytes_out for a in shard.attempts),
            elapsed=None if first is None else (last_end or now) - first,
            stages=attempt.snapshot if attempt is not None else None,
        )

    def _say(self, message: str) -> None:
        with contextlib.suppress(OSError):
            os.write(2 if self.options.stderr is None else self.options.stderr, message.encode())


#: The most shards one ppipe runs: far more than a machine's CPUs, far fewer than a typo's zeros.
MAX_SHARDS = 10_000


def check_plan(plan: ShardPlan) -> None:
    """Refuses, before any per-shard work, a plan that cannot be meant: fewer than 0 or more than :data:`MAX_SHARDS`."""
    if plan.processes < 0:
        raise UsageError("--fork must be 0 (one per CPU) or more")
    if plan.local > MAX_SHARDS:
        raise UsageError(
            f"--fork {plan.processes}: ppipe runs at most {MAX_SHARDS} shards on one machine; "
            "for more, run it as the tasks of a job array (--task-id/--tasks)"
        )
    if plan.max_restarts < 0:
        raise UsageError("--max-restarts must be 0 or more")


#: Descriptors ppipe holds per running shard (its pipes, streams and control socket), and for itself.
_FDS_PER_SHARD = 6
_FDS_OWN = 32


def _check_descriptors(shards: int) -> None:
    """Refuses, before anything starts, a ``--fork`` that ``ulimit -n`` cannot hold."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    needed = _FDS_OWN + _FDS_PER_SHARD * shards
    if limit != resource.RLIM_INFINITY and limit < needed:
        raise UsageError(
            f"--fork {shards} needs about {needed} open files, more than the limit of {limit}; "
            f"raise it with ulimit -n, or run fewer shards"
        )


async def _hand_over(fd: int, data: bytes) -> None:
    """Writes ``data`` into the pipe ``fd``, then closes it; a reader gone (the supervisor died) says so by its exit."""
    target = stream(fd)
    try:
        await write_all(target, data)
    except StreamClosedError:
        pass
    finally:
        target.close()


async def _say_no(control: IOStream) -> None:
    with contextlib.suppress(StreamClosedError):
        await channel.write(control, ("go", False))
    control.close()


async def _ask_to_stop(control: IOStream, sig: int) -> None:
    with contextlib.suppress(StreamClosedError):
        await channel.write(control, ("stop", sig))


def _supervisor_hook() -> Callable[[], None]:
    """The supervisor's ``preexec_fn``: it dies with ppipe, and never of the signals ppipe handles for it.

    Ignoring them before exec (not once the interpreter is up) means a
    Ctrl-C during its start-up cannot kill it half-way; its shards take the
    usual dispositions back.
    """
    death = parent_death_hook()

    def hook() -> None:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if death is not None:
            death()

    return hook


async def execute_sharded(
    text: str, plan: ShardPlan, options: RunOptions | None = None, observer: RunObserver | None = None
) -> RunResult:
    """Runs ``text`` as ``plan`` says on the running event loop; see :class:`ShardedExecution`.

    Raises :class:`~ppipe.errors.PpipeError` before anything starts when a
    shard's pipeline does not parse or names a command that cannot be run.
    """
    return await ShardedExecution(text, plan, options or RunOptions(), observer).run()


def _describe_wait(wait_status: int) -> str:
    if os.WIFSIGNALED(wait_status):
        return f"the shard process was killed by {signal_name(os.WTERMSIG(wait_status))}"
    return f"the shard process exited with status {os.WEXITSTATUS(wait_status)}"

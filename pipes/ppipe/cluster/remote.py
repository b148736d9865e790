"""``--on slurm``: a sharded run whose shards are the tasks of a Slurm job array.

ppipe submits one array (``sbatch --array=0-(N-1)%M``) whose every task
runs the same ppipe command line as task *i* of *N* (``--task-id``), then
watches: Slurm says which tasks are queued, running or gone; the run
directory on the shared filesystem holds each attempt's output, stderr and
report (:mod:`ppipe.cluster.tasks`). Output reaches ppipe's stdout in
whole lines, tagged and ordered as in a local run; a failed task is
resubmitted as a new one-task array while ``--max-restarts`` allows (not
requeued: Slurm holds a requeued task back for two minutes); the reports
are merged into one of the same schema as a local sharded run's. Ctrl-C or
SIGTERM cancels the array (``scancel``) and ends ppipe by that signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ppipe import policy, stops
from ppipe.cluster import slurm
from ppipe.cluster.streams import RemoteStreams
from ppipe.cluster.tasks import PENDING_STATES, Phase, RemoteAttempt, RemoteTask
from ppipe.engine.options import RunOptions
from ppipe.engine.processes import handling_signals
from ppipe.errors import UsageError
from ppipe.graph import Graph
from ppipe.results import RunResult
from ppipe.shards.joblog import AttemptLine, JobLog
from ppipe.shards.plan import ShardPlan
from ppipe.snapshots import RunObserver, RunSnapshot
from ppipe.stops import HALT, READER_GONE, StopKind, StopReason

#: Seconds between two looks at Slurm and the run directory: a second at first, then slower, up to
#: POLL_MOST after a minute, so that a long run does not ask a shared controller every second.
POLL_EVERY = 1.0
POLL_MOST = 5.0
#: How long a task's report may take to appear after Slurm says the task ended (a shared filesystem's lag).
REPORT_WAIT = 10.0
#: How long Slurm may fail to answer before the run gives up on it.
SLURM_SILENCE = 120.0
#: Where the run directories go, under the current directory (which the tasks must see too).
RUNS_DIRECTORY = "ppipe-runs"


@dataclass(frozen=True)
class SlurmSpec:
    """What the array's tasks run and how they are submitted.

    ``task_args`` are ppipe's own options every task gets (``--timeout``
    for ``--shard-timeout``, ``--no-fail``...); ``sbatch_args`` are the
    ``--sbatch`` ones; ``stdin_path`` is the file every task takes its
    share of, if any; ``directory`` is the run directory.
    """

    pipeline: str
    directory: str
    task_args: tuple[str, ...] = ()
    sbatch_args: tuple[str, ...] = ()
    stdin_path: str | None = None
    timeout: float | None = None
    env: Mapping[str, str] | None = None

    @classmethod
    def of(
        cls,
        pipeline: str,
        plan: ShardPlan,
        options: RunOptions,
        *,
        directory: str | None = None,
        sbatch: Sequence[str] = (),
        stdin_path: str | None = None,
        lines: bool | None = None,
    ) -> SlurmSpec:
        """The spec of a run of ``plan``'s shards as a Slurm array; :class:`~ppipe.errors.UsageError` (status 2)
        for a plan no array can run.

        Every task gets the options that decide how its own stages end and
        how its share of the file is cut (``--shard-timeout`` is each task's
        ``--timeout``); ``lines`` is the tasks' ``--lines`` (None: their
        default). ``directory`` defaults to a new one under
        :data:`RUNS_DIRECTORY` in the current directory, which the tasks
        must see too.
        """
        if plan.items is not None:
            raise UsageError(
                "--on slurm runs --fork N shards; to run one per item, submit ppipe --each as an array task"
            )
        args = ["--no-fail"] if options.no_fail else []
        if plan.shard_timeout:
            args += ["--timeout", repr(plan.shard_timeout)]
        args += ["--kill-after", repr(options.kill_after)]
        if plan.record_end == b"\0":
            args.append("-0")
        elif plan.record_end != b"\n":
            args += ["--recend", "".join(f"\\x{byte:02x}" for byte in plan.record_end)]  # read back exactly
        if plan.header:
            args += ["--header", str(plan.header)]
        if lines is not None:
            args.append("--lines" if lines else "--no-lines")
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        return cls(
            pipeline=pipeline,
            directory=os.path.abspath(directory or os.path.join(RUNS_DIRECTORY, stamp)),
            task_args=tuple(args),
            sbatch_args=tuple(sbatch),
            stdin_path=stdin_path,
            timeout=options.timeout,
            env=options.env,
        )


@dataclass(frozen=True)
class RemoteResult:
    """A finished ``--on slurm`` run: every attempt's report, and how the run was stopped, if it was."""

    #: Every attempt's run, as its report told it (or Slurm's word, for an attempt that wrote none).
    reports: tuple[RunResult, ...]
    pipeline: str
    tasks: int
    #: Why ppipe stopped the run, if it did: a signal, ``--timeout``, ``--halt``, its reader gone.
    stopped_by: StopReason | None
    halted_on_success: bool
    #: Why the output could not be written, a job-log line was lost, or Slurm failed the run itself.
    problems: tuple[str, ...]
    directory: str
    #: The bytes of each task's output that reached ppipe's stdout, over all its attempts.
    bytes_out: dict[int, int]
    #: The tasks ppipe stopped (``--halt``, ``--timeout``, a signal): terminated, as in a local run.
    stopped: frozenset[int] = frozenset()
    #: The merged output, when the run's options asked for it to be captured.
    stdout: bytes | None = None


class SlurmRun:
    """One ``--on slurm`` run. Use :meth:`run` once; whatever happens, nothing it submitted is left queued."""

    graph: Graph | None = None

    def __init__(
        self, spec: SlurmSpec, plan: ShardPlan, options: RunOptions, observer: RunObserver | None = None
    ) -> None:
        self.spec = spec
        self.plan = plan
        self.options = options
        self.observer = observer
        self.env = dict(os.environ if spec.env is None else spec.env)
        self.tasks = [RemoteTask(i) for i in range(plan.total)]
        self.job_ids: list[str] = []
        self.problems: list[str] = []
        self.started = time.monotonic()
        #: Why ppipe stops the run, once it does: the first cause that came.
        self.stopped_by: StopReason | None = None
        self.halted = False
        #: Set once the whole run is being stopped (a signal, --timeout): nothing is restarted any more.
        self.stopping = False
        self.halted_on_success = False
        self._halt_watch = plan.halt_watch(plan.total)
        self._wake = asyncio.Event()
        self._halting: asyncio.Future[None] | None = None
        self._silent_since: float | None = None
        self.joblog = JobLog(plan.joblog, spec.pipeline, plan.total, plan.resume) if plan.joblog else None
        if self.joblog is not None and self.joblog.mended is not None:
            self._say(self.joblog.mended)
        self.streams = RemoteStreams(plan, options, observer, lost=self.problems.append)

    # -- the run

    async def run(self) -> RemoteResult:
        """Submits the array, follows it to its end, and returns every attempt's report."""
        loop = asyncio.get_running_loop()
        try:
            with handling_signals(loop, self._on_signal, self.options.handle_signals):
                await self._skip_finished()
                script = self._write_script()
                await self._submit(script, [t.task_id for t in self.tasks if not t.skipped])
                if self.observer is not None:
                    self.observer.started(self)
                await self._follow(script)
        finally:
            if self._halting is not None:
                await self._halting
            await self._cancel_left()
            await self.streams.close(self.tasks)
            if self.observer is not None:
                self.observer.finished()
            if self.joblog is not None:
                self.joblog.close()
        return self._result()

    async def _skip_finished(self) -> None:
        for task in self.tasks:
            if self.joblog is not None and self.joblog.skips(task.task_id, self.plan.resume):
                task.skipped = task.final = True
                await self.streams.task_done(task)

    async def _follow(self, script: str) -> None:
        while not all(task.final for task in self.tasks):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_delay())
            self._wake.clear()
            if self._past_deadline() or (self.stopped_by is not None and self.stopped_by.kind is StopKind.SIGNAL):
                await self._stop_all()
                return
            await self._look()
            await self._resubmit_due(script)

    def _poll_delay(self) -> float:
        return min(POLL_MOST, POLL_EVERY + (time.monotonic() - self.started) / 15)

    def _past_deadline(self) -> bool:
        timeout = self.spec.timeout
        past = timeout is not None and time.monotonic() - self.started > timeout
        if past:
            self.stopped_by = stops.after(self.stopped_by, StopReason.timeout(timeout))
        return stops.timed_out(self.stopped_by)

    async def _look(self) -> None:
        """One look at Slurm and the run directory: output moved on, attempts ended, verdicts taken."""
        active = await asyncio.to_thread(slurm.active_tasks, self.job_ids, self.env)
        if active is None:
            self._silent_since = self._silent_since or time.monotonic()
            if time.monotonic() - self._silent_since > SLURM_SILENCE:
                raise slurm.SlurmError(f"Slurm has not answered for {SLURM_SILENCE:.0f} s (squeue fails)")
            return
        self._silent_since = None
        if not self.streams.read and not self.halted:
            self.stopped_by = stops.after(self.stopped_by, READER_GONE)
            self._halt(now=True)  # nobody wants the rest of the output: the work left would be for nothing
        for task in self.tasks:
            attempt = task.current
            if attempt is None or attempt.phase is Phase.ENDED:
                continue
            if attempt.phase is not Phase.QUEUED:  # no files before it runs (and _gone reads them anyway)
                await self.streams.pass_on(attempt)
            state = active.get((attempt.job_id, task.task_id))
            if state is not None:
                if state not in PENDING_STATES and attempt.phase is Phase.QUEUED:
                    attempt.phase, attempt.started_at = Phase.RUNNING, time.time()
                continue
            await self._gone(task, attempt)

    async def _gone(self, task: RemoteTask, attempt: RemoteAttempt) -> None:
        """The attempt has left Slurm's queue: take its report (or Slurm's word), then decide on the task."""
        now = time.monotonic()
        if attempt.phase is not Phase.ENDING:
            attempt.phase, attempt.gone_at = Phase.ENDING, time.time()
            attempt.end = await asyncio.to_thread(slurm.task_end, attempt.job_id, task.task_id, self.env)
            attempt.started_at = attempt.started_at or (attempt.end.started_at if attempt.end else None)
            attempt.waited_from = now
        if not attempt.read_report():
            waited = now - (attempt.waited_from or now)
            if waited < REPORT_WAIT and (attempt.end is None or attempt.end.state in ("COMPLETED", "FAILED")):
                return  # a ppipe that ended by itself wrote its report: give the filesystem a moment
            attempt.report_without_ppipe(self.spec.pipeline, self.plan.total)
        await self.streams.pass_on(attempt)
        await self.streams.finish(attempt)
        attempt.phase = Phase.ENDED
        await self._decide(task, attempt)

    async def _decide(self, task: RemoteTask, attempt: RemoteAttempt) -> None:
        stopping = self.halted or self.stopping or not self.streams.read
        again = policy.should_restart(attempt.status, len(task.attempts), self.plan.max_restarts, stopping=stopping)
        self._log(attempt, final=not again)
        if again:
            task.resubmit_at = time.monotonic() + self.plan.retry_delay_before(len(task.attempts) + 1)
            return
        task.final = True
        await self.streams.task_done(task)
        self._check_halt(task)

    def _check_halt(self, task: RemoteTask) -> None:
        """Rule 9, counted as a local run counts it (:class:`~ppipe.policy.HaltWatch`): by each task's verdict."""
        status = task.current.status if task.current is not None else None
        verdict = policy.shard_verdict(status, stopped=task.stopped)
        if not self._halt_watch.record(verdict) or self.halted:
            return
        self.halted_on_success = self._halt_watch.on_success
        self.stopped_by = stops.after(self.stopped_by, HALT)
        self._say(self._halt_watch.said(f"task {task.task_id}", verdict, stopping_the_others="cancelling the others"))
        self._halt(now=self._halt_watch.rule is not None and self._halt_watch.rule.now)

    def _halt(self, *, now: bool) -> None:
        """Starts no more attempts, and cancels those not yet started (all of them, ``now``).

        The tasks are marked stopped before the cancel is even sent, so that one seen gone at the next
        look is taken for what it is, terminated, not failed."""
        self.halted = True
        for task in self.tasks:
            if not task.final and (now or task.current is None or task.current.phase is Phase.QUEUED):
                task.stopped = True
            if task.resubmit_at is not None:
                task.resubmit_at, task.final, task.stopped = None, True, True
        self._halting = asyncio.ensure_future(self._cancel(pending_only=not now))
        self._wake.set()

    async def _cancel(self, *, pending_only: bool) -> None:
        problem = await asyncio.to_thread(slurm.cancel, self.job_ids, self.env, pending_only=pending_only)
        if problem:
            self.problems.append(f"ppipe: {problem}")

    async def _resubmit_due(self, script: str) -> None:
        now = time.monotonic()
        due = [t for t in self.tasks if t.resubmit_at is not None and t.resubmit_at <= now]
        if not due:
            return
        for task in due:
            task.resubmit_at = None
        await self._submit(script, [t.task_id for t in due])

    async def _submit(self, script: str, indices: Sequence[int]) -> None:
        if not indices:
            return
        throttle = self.plan.jobs if self.plan.jobs else None
        job_id = await asyncio.to_thread(
            slurm.submit, script, indices, throttle=throttle, args=self._sbatch_args(), env=self.env
        )
        self.job_ids.append(job_id)
        self._note_job(job_id)
        for index in indices:
            task = self.tasks[index]
            attempt = RemoteAttempt(index, len(task.attempts) + 1, job_id, self.spec.directory)
            self.streams.connect(attempt)
            task.attempts.append(attempt)

    def _note_job(self, job_id: str) -> None:
        """Each array's id in the run directory's ``jobs``: a ppipe killed by SIGKILL cannot cancel its tasks,
        but whoever cleans up can (``scancel $(cat jobs)``)."""
        try:
            with open(os.path.join(self.spec.directory, "jobs"), "a", encoding="utf-8") as jobs:
                jobs.write(job_id + "\n")
        except OSError as error:
            self.problems.append(f"ppipe: cannot note job {job_id} in the run directory: {error.strerror}")

    def _sbatch_args(self) -> list[str]:
        stem = slurm.filename_pattern(os.path.join(self.spec.directory, ""), "%A_%a")  # the directory's % escaped
        name = [] if "SBATCH_JOB_NAME" in self.env else ["--job-name=ppipe"]  # sbatch's own variable wins
        return [*name, f"--output={stem}.out", f"--error={stem}.err", *self.spec.sbatch_args]

    # -- the files

    def _write_script(self) -> str:
        """The batch script every task runs: this ppipe, as task ``$SLURM_ARRAY_TASK_ID`` of N, its report kept."""
        slurm.run_directory_ok(self.spec.directory)
        stem = shlex.quote(self.spec.directory) + '/"$SLURM_ARRAY_JOB_ID"_"$SLURM_ARRAY_TASK_ID"'
        command = [sys.executable, "-m", "ppipe", "-q", "--display", "never", *self.spec.task_args]
        line = " ".join(shlex.quote(word) for word in command)
        line += f' --task-id "$SLURM_ARRAY_TASK_ID" --tasks {self.plan.total} --report {stem}.json'
        line += " -- " + shlex.quote(self.spec.pipeline)
        if self.spec.stdin_path is not None:
            line += " < " + shlex.quote(self.spec.stdin_path)
        path = os.path.join(self.spec.directory, "task.sh")
        text = "#!/bin/sh\n# Written by ppipe --on slurm: one task of the array.\n"
        text += f"cd {shlex.quote(os.getcwd())} || exit 1\n"
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "exec " + line + "\n")
        except OSError as error:
            raise slurm.SlurmError(f"cannot write the task script {path}: {error.strerror}") from None
        return path

    def _log(self, attempt: RemoteAttempt, *, final: bool) -> None:
        if self.joblog is None:
            return
        report = attempt.report
        started = (report.started_at if report else None) or attempt.started_at or attempt.submitted_at
        ended = (report.ended_at if report else None) or time.time()
        line = AttemptLine(
            task_id=attempt.task_id,
            item=None,
            attempt=attempt.number,
            status=attempt.status,
            signal=report.interrupted_by if report else None,
            started_at=started,
            seconds=round(ended - started, 6),
            bytes_in=None,
            bytes_out=attempt.bytes_out,
            host=(report.host if report else None) or "",
            final=final,
        )
        problem = self.joblog.write(line)
        if problem:
            self.problems.append(f"ppipe: {problem}")

    # -- stopping

    def _on_signal(self, sig: int) -> None:
        self.stopped_by = stops.after(self.stopped_by, StopReason.by_signal(sig))
        self._wake.set()

    async def _stop_all(self) -> None:
        """Cancels every task left, then takes what their reports and files say."""
        self.stopping = True
        await self._cancel_left()
        for task in self.tasks:
            if not task.final:
                task.stopped = True
        deadline = time.monotonic() + REPORT_WAIT
        while time.monotonic() < deadline and not all(t.final for t in self.tasks):
            await self._look()
            for task in self.tasks:
                if task.resubmit_at is not None or (task.current is None and not task.final):
                    task.resubmit_at, task.final = None, True
            await asyncio.sleep(POLL_EVERY / 4)
        for task in self.tasks:
            attempt = task.current
            if attempt is not None and attempt.phase is not Phase.ENDED:
                attempt.report_without_ppipe(self.spec.pipeline, self.plan.total)
                attempt.phase = Phase.ENDED
                self._log(attempt, final=True)
            task.final = True

    async def _cancel_left(self) -> None:
        live = [t for t in self.tasks if not t.final and t.current is not None]
        if live and self.job_ids:
            await self._cancel(pending_only=False)

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError):
            os.write(2 if self.options.stderr is None else self.options.stderr, (line + "\n").encode())

    # -- what observers and the caller see

    def snapshot(self) -> RunSnapshot:
        now = time.time()
        return RunSnapshot(
            elapsed=time.monotonic() - self.started,
            shards=tuple(task.snapshot(now) for task in self.tasks),
            sharded=True,
            slots=self.plan.jobs or None,
        )

    def _result(self) -> RemoteResult:
        reports = tuple(a.report for t in self.tasks for a in t.attempts if a.report is not None)
        return RemoteResult(
            reports=reports,
            pipeline=self.spec.pipeline,
            tasks=self.plan.total,
            stopped_by=self.stopped_by,
            halted_on_success=self.halted_on_success,
            problems=tuple(self.problems),
            directory=self.spec.directory,
            bytes_out={t.task_id: sum(a.bytes_out for a in t.attempts) for t in self.tasks},
            stopped=frozenset(t.task_id for t in self.tasks if t.stopped),
            stdout=bytes(self.streams.capture.data) if self.streams.capture is not None else None,
        )

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
import signal
import sys
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass

from ppipe import stops
from ppipe.cluster import slurm
from ppipe.cluster.streams import RemoteStreams
from ppipe.cluster.tasks import PENDING_STATES, Phase, RemoteAttempt, RemoteTask
from ppipe.engine.options import RunOptions
from ppipe.engine.processes import handling_signals
from ppipe.errors import UsageError
from ppipe.graph import Graph
from ppipe.language.parser import uses_slot
from ppipe.results import RunResult
from ppipe.shards.joblog import JobLog
from ppipe.shards.lifecycle import Scheduler
from ppipe.shards.plan import ShardPlan
from ppipe.snapshots import RunObserver, RunSnapshot
from ppipe.stops import StopReason

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
        if uses_slot(pipeline) or uses_slot(plan.tag_format or ""):
            raise UsageError(
                "{slot} numbers the slots of shards run here; a Slurm array's tasks run in none "
                "(for a GPU each, ask Slurm: --sbatch=--gpus-per-task=1 sets CUDA_VISIBLE_DEVICES)"
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
    """One ``--on slurm`` run, and the Slurm array as a :class:`~ppipe.shards.lifecycle.Backend` of its scheduler.

    Use :meth:`run` once; whatever happens, nothing it submitted is left queued.
    """

    graph: Graph | None = None
    noun = "task"
    halt_words = "cancelling the others"
    #: A task writes its output to a file: it never learns that nobody reads ppipe's, so it is cancelled.
    output_breaks = False

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
        #: The signal or ``--timeout`` that stops the run, once one does.
        self.stopped_by: StopReason | None = None
        self._wake = asyncio.Event()
        #: Tasks handed over by the scheduler, to be submitted at the next turn of the loop (one array).
        self._to_submit: list[RemoteTask] = []
        #: Requests to Slurm and to the merged output made outside the loop's turn; awaited before the end.
        self._requests: set[asyncio.Future[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._stop_until: float | None = None
        self._silent_since: float | None = None
        self.joblog = JobLog(plan.joblog, spec.pipeline, plan.total, plan.resume) if plan.joblog else None
        if self.joblog is not None and self.joblog.mended is not None:
            self._say(self.joblog.mended)
        for task in self.tasks:
            if self.joblog is not None and self.joblog.skips(task.task_id, plan.resume):
                task.skipped = "done before"
        self.streams = RemoteStreams(plan, options, observer, lost=self.problems.append)
        self.scheduler: Scheduler[RemoteTask] = Scheduler(plan, self, self.tasks, joblog=self.joblog, say=self._say)

    # -- the run

    async def run(self) -> RemoteResult:
        """Submits the array, follows it to its end, and returns every attempt's report."""
        loop = asyncio.get_running_loop()
        try:
            with handling_signals(loop, self._on_signal, self.options.handle_signals):
                script = self._write_script()
                self.scheduler.dispatch()
                await self._submit(script)
                if self.observer is not None:
                    self.observer.started(self)
                await self._follow(script)
        finally:
            for timer in self._timers:
                timer.cancel()
            await self._settle_requests()
            await self._cancel_left()
            await self.streams.close(self.tasks)
            if self.observer is not None:
                self.observer.finished()
            if self.joblog is not None:
                self.joblog.close()
        return self._result()

    async def _follow(self, script: str) -> None:
        while not all(task.final for task in self.tasks):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_delay())
            self._wake.clear()
            if (sig := self._stop_due()) is not None:
                self.scheduler.stop(sig)
                self._stop_until = time.monotonic() + REPORT_WAIT
            if self._stop_until is not None and time.monotonic() > self._stop_until:
                self._give_up_on_reports()
                return
            await self._look()
            await self._submit(script)

    def _poll_delay(self) -> float:
        if self._stop_until is not None:
            return POLL_EVERY / 4
        return min(POLL_MOST, POLL_EVERY + (time.monotonic() - self.started) / 15)

    def _stop_due(self) -> int | None:
        """The signal to stop the run by, when a signal or ``--timeout`` asks for a stop not yet made."""
        if self.scheduler.stopping:
            return None
        timeout = self.spec.timeout
        if timeout is not None and time.monotonic() - self.started > timeout:
            self.stopped_by = stops.after(self.stopped_by, StopReason.timeout(timeout))
        if self.stopped_by is None:
            return None
        return self.stopped_by.signal or signal.SIGTERM

    async def _look(self) -> None:
        """One look at Slurm and the run directory: output moved on, attempts ended and handed to the scheduler."""
        active = await asyncio.to_thread(slurm.active_tasks, self.job_ids, self.env)
        if active is None:
            self._silent_since = self._silent_since or time.monotonic()
            if time.monotonic() - self._silent_since > SLURM_SILENCE:
                raise slurm.SlurmError(f"Slurm has not answered for {SLURM_SILENCE:.0f} s (squeue fails)")
            return
        self._silent_since = None
        self.scheduler.dispatch()  # nobody reads the output any more: the work left would be for nothing
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
                    self.scheduler.attempt_running(task)
                continue
            await self._gone(task, attempt)

    async def _gone(self, task: RemoteTask, attempt: RemoteAttempt) -> None:
        """The attempt has left Slurm's queue: take its report (or Slurm's word), then hand it to the scheduler."""
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
        self.scheduler.attempt_ended(task)

    def _give_up_on_reports(self) -> None:
        """``REPORT_WAIT`` after a stop: an attempt that wrote no report by now is taken at Slurm's word."""
        for task in self.tasks:
            attempt = task.current
            if attempt is not None and attempt.phase is not Phase.ENDED:
                attempt.report_without_ppipe(self.spec.pipeline, self.plan.total)
                attempt.phase = Phase.ENDED
                self.scheduler.attempt_ended(task)
            self.scheduler.settle(task)

    # -- the backend

    @property
    def read(self) -> bool:
        return self.streams.read

    def free(self) -> int | None:
        """None: every ready task is submitted at once, and the array's throttle (``%M``) is ``--jobs``."""
        return None

    def live(self) -> list[RemoteTask]:
        return self.tasks

    def start(self, tasks: list[RemoteTask]) -> None:
        self._to_submit.extend(tasks)
        self._wake.set()

    def settled(self, task: RemoteTask) -> None:
        """With ``--keep-order``, the next task's output may follow."""
        self._request(self.streams.task_done(task))

    def idle(self) -> None:
        """Nothing to end: an array has no slots waiting."""

    def halt(self, *, now: bool) -> None:
        """Cancels the tasks still queued (all of them, ``now``).

        They are marked stopped before the cancel is even sent, so that one
        seen gone at the next look is taken for what it is, terminated, not
        failed."""
        for task in self.tasks:
            if not task.final and (now or task.current is None or task.current.phase is Phase.QUEUED):
                task.stopped = True
        self._request(self._cancel(pending_only=not now))
        self._wake.set()

    def stop(self, sig: int) -> None:
        """Cancels every task: Slurm signals a running task's ppipe, which stops its stages and reports."""
        self._request(self._cancel(pending_only=False))
        self._wake.set()

    def time_out(self, task: RemoteTask) -> None:
        """Each task's ppipe runs with ``--timeout`` (the ``--shard-timeout``), stops its own stages and
        reports; a task still running ``--kill-after`` and :data:`REPORT_WAIT` later (a hung node) is cancelled."""
        attempt = task.current
        if attempt is not None:
            grace = self.options.kill_after + REPORT_WAIT
            self._timers.append(asyncio.get_running_loop().call_later(grace, self._cancel_hung, attempt))

    def _cancel_hung(self, attempt: RemoteAttempt) -> None:
        if attempt.phase in (Phase.QUEUED, Phase.RUNNING):
            self._request(self._cancel(pending_only=False, only=f"{attempt.job_id}_{attempt.task_id}"))

    def can_run_again(self, task: RemoteTask) -> bool:
        """Always: every attempt reads the same file."""
        return True

    def _request(self, work: Coroutine[object, object, None]) -> None:
        future = asyncio.ensure_future(work)
        self._requests.add(future)
        future.add_done_callback(self._requests.discard)

    async def _settle_requests(self) -> None:
        while self._requests:
            await asyncio.gather(*list(self._requests), return_exceptions=True)

    # -- Slurm

    async def _cancel(self, *, pending_only: bool, only: str | None = None) -> None:
        """Cancels the run's arrays (or ``only`` that one task: ``JOB_TASK``)."""
        if not self.job_ids:
            return
        jobs = self.job_ids if only is None else [only]
        problem = await asyncio.to_thread(slurm.cancel, jobs, self.env, pending_only=pending_only)
        if problem:
            self.problems.append(f"ppipe: {problem}")

    async def _submit(self, script: str) -> None:
        """Submits the tasks the scheduler handed over since the last turn, as one array."""
        tasks, self._to_submit = self._to_submit, []
        if not tasks:
            return
        throttle = self.plan.jobs if self.plan.jobs else None
        indices = [task.task_id for task in tasks]
        job_id = await asyncio.to_thread(
            slurm.submit, script, indices, throttle=throttle, args=self._sbatch_args(), env=self.env
        )
        self.job_ids.append(job_id)
        self._note_job(job_id)
        for task in tasks:
            attempt = RemoteAttempt(task.task_id, len(task.attempts) + 1, job_id, self.spec.directory)
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

    # -- stopping

    def _on_signal(self, sig: int) -> None:
        self.stopped_by = stops.after(self.stopped_by, StopReason.by_signal(sig))
        self._wake.set()

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
        problems = list(self.problems)
        if self.scheduler.joblog_error is not None:
            problems.append(f"ppipe: {self.scheduler.joblog_error}")
        return RemoteResult(
            reports=reports,
            pipeline=self.spec.pipeline,
            tasks=self.plan.total,
            stopped_by=stops.after(self.scheduler.halted_by, self.stopped_by),
            halted_on_success=self.scheduler.halted_on_success,
            problems=tuple(problems),
            directory=self.spec.directory,
            bytes_out={t.task_id: sum(a.bytes_out for a in t.attempts) for t in self.tasks},
            stopped=frozenset(t.task_id for t in self.tasks if t.stopped),
            stdout=bytes(self.streams.capture.data) if self.streams.capture is not None else None,
        )

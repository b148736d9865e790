"""Slurm's own commands as ppipe uses them: ``sbatch`` to submit, ``squeue`` and ``scontrol`` to watch, ``scancel``.

ppipe runs no daemon of its own on a cluster: the scheduler already knows
where every task is. These functions run the commands, read their
``--parsable``/``-o`` output, and turn a failure into a :class:`SlurmError`
that says what Slurm answered. They are synchronous and quick (Slurm
answers from its controller's memory); the caller runs them off its loop.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ppipe.errors import ExitStatus, PpipeError

#: How long one Slurm command may take before ppipe gives up on that try.
COMMAND_TIMEOUT = 60.0


class SlurmError(PpipeError):
    """Slurm refused or could not answer: a submission it rejected, a controller that is down."""

    status = ExitStatus.FAILURE


@dataclass(frozen=True)
class TaskEnd:
    """How Slurm says an array task ended: its state (``COMPLETED``, ``FAILED``, ``CANCELLED``, ``TIMEOUT``...),
    the exit code and signal of its batch script, where it ran and when."""

    state: str
    exit_code: int
    signal: int
    node: str | None
    started_at: float | None
    ended_at: float | None

    @property
    def status(self) -> int:
        """As a shell gives it: the script's exit code, or 128 + the signal that killed it.

        A task Slurm ended without its script failing still did not succeed: cancelled (often
        while queued, its exit code 0:0) it counts as killed by SIGTERM, as ``scancel`` does it;
        timed out, 124; lost with its node, out of memory or preempted, 1.
        """
        if self.signal:
            return 128 + self.signal
        if self.exit_code or self.state == "COMPLETED":
            return self.exit_code
        if self.state.startswith("CANCELLED"):
            return 128 + signal.SIGTERM
        return 124 if self.state == "TIMEOUT" else 1


def check_installed(env: Mapping[str, str]) -> None:
    """Raises :class:`SlurmError` unless ``sbatch``, ``squeue``, ``scontrol`` and ``scancel`` are on the PATH."""
    missing = [
        name for name in ("sbatch", "squeue", "scontrol", "scancel") if not shutil.which(name, path=env.get("PATH"))
    ]
    if missing:
        raise SlurmError(f"--on slurm needs Slurm's commands, and {', '.join(missing)} is not on the PATH")


def array_spec(indices: Sequence[int], throttle: int | None = None) -> str:
    """``--array``'s value for these task indices: ``0-7``, ``1,3,5-6``; ``%M`` runs at most M at once."""
    ordered = sorted(set(indices))
    parts: list[str] = []
    start = previous = ordered[0]
    for index in [*ordered[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    return ",".join(parts) + (f"%{throttle}" if throttle else "")


def filename_pattern(path: str, pattern: str = "") -> str:
    """``path`` as sbatch's ``--output``/``--error``/``--input`` read it, followed by ``pattern`` as is.

    sbatch reads those options as filename patterns: ``%j``, ``%A``, ``%a``...
    are replaced, ``%%`` is one ``%``. A directory named ``run %j`` would
    otherwise send a task's output elsewhere and fail it (``0:53``, the file
    cannot be opened), so every ``%`` of ``path`` is doubled. ``pattern``
    (``%A_%a.out``) is ppipe's own and is left to be replaced. A backslash
    anywhere turns every replacement off, so a path holding one raises
    :class:`SlurmError`: no escape gives each task a file of its own then.
    """
    if "\\" in path:
        raise SlurmError(f"sbatch cannot be given a path with a backslash (it turns off %A, %a): {path}")
    return path.replace("%", "%%") + pattern


def submit(
    script: str, indices: Sequence[int], *, throttle: int | None, args: Sequence[str], env: Mapping[str, str]
) -> str:
    """Submits ``script`` as a job array of ``indices``; returns the array's job id.

    ``args`` (``--sbatch``) come after ppipe's own, so they win where both
    set the same thing; ``SBATCH_*`` variables in ``env`` apply as sbatch
    reads them (below the command line).
    """
    command = ["sbatch", "--parsable", f"--array={array_spec(indices, throttle)}", *args, script]
    output = _run(command, env, what="sbatch refused the job")
    job_id = output.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch did not give a job id: {output.strip()!r}")
    return job_id


def active_tasks(job_ids: Sequence[str], env: Mapping[str, str]) -> dict[tuple[str, int], str] | None:
    """The tasks of these arrays that Slurm still has queued or running, with their state; None if squeue failed.

    A task that has left this list has ended: :func:`task_end` says how.
    """
    command = ["squeue", "-h", "--array", "-j", ",".join(job_ids), "-o", "%F %K %T"]
    try:
        output = _run(command, env, what="squeue failed")
    except SlurmError:
        return None
    tasks: dict[tuple[str, int], str] = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1].isdigit():
            tasks[(fields[0], int(fields[1]))] = fields[2]
    return tasks


def task_end(job_id: str, index: int, env: Mapping[str, str]) -> TaskEnd | None:
    """How task ``index`` of array ``job_id`` ended, as ``scontrol`` has it; None when Slurm no longer knows."""
    try:
        output = _run(["scontrol", "-o", "show", "job", f"{job_id}_{index}"], env, what="scontrol failed")
    except SlurmError:
        return None
    fields = dict(re.findall(r"(\w+)=(\S*)", output))
    code, _, sig = fields.get("ExitCode", "").partition(":")
    if "JobState" not in fields or not code.isdigit():
        return None
    node = fields.get("BatchHost") or fields.get("NodeList")
    return TaskEnd(
        state=fields["JobState"],
        exit_code=int(code),
        signal=int(sig) if sig.isdigit() else 0,
        node=None if node in (None, "(null)") else node,
        started_at=_time(fields.get("StartTime")),
        ended_at=_time(fields.get("EndTime")),
    )


def cancel(job_ids: Sequence[str], env: Mapping[str, str], *, pending_only: bool = False) -> str | None:
    """Cancels the arrays' tasks (only those not yet started, with ``pending_only``); returns why not, if so."""
    command = ["scancel", *(["--state=PENDING"] if pending_only else []), *job_ids]
    try:
        _run(command, env, what="scancel failed")
    except SlurmError as error:
        return str(error)
    return None


def _run(command: list[str], env: Mapping[str, str], *, what: str) -> str:
    try:
        done = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SlurmError(f"{what}: {error}") from None
    if done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}"
        raise SlurmError(f"{what}: {said}")
    return done.stdout


def _time(text: str | None) -> float | None:
    """Slurm's local ``2026-12-05T01:45:18`` as seconds since the epoch; None for ``Unknown``/``None``."""
    try:
        return datetime.datetime.fromisoformat(text or "").timestamp()
    except ValueError:
        return None


def run_directory_ok(path: str) -> None:
    """Raises :class:`SlurmError` when the run directory cannot be made (the tasks write their files there)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise SlurmError(f"cannot make the run directory {path}: {error.strerror}") from None

"""Which task of a cluster job array this process is: ``--task-id/--tasks``, or the array's own environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ppipe.errors import UsageError


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

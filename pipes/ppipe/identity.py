"""Which task of a cluster job array this process is: ``--task-id/--tasks``, or the scheduler's own environment.

Every scheduler numbers its array tasks its own way; ppipe wants a position
``0 .. N-1`` among ``N``. :data:`READERS` lists, in the order they are
tried, what each scheduler sets and how ppipe reads it; the README's table
is this one. Where the environment does not say where a task stands (a
listed Slurm array such as ``--array=1,3,7``, or a scheduler that does not
say how many tasks there are), ppipe refuses with a message naming
``--task-id``/``--tasks`` rather than guess: a wrong guess runs some work
twice and some never.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ppipe.errors import UsageError


@dataclass(frozen=True)
class TaskIdentity:
    """Which task of a job array this process is, and where that came from.

    ``source`` names the scheduler (``Slurm``, ``--task-id/--tasks``...);
    ``detail`` lists the variables it was read from, for ``--explain``.
    """

    task_id: int
    tasks: int
    source: str
    #: The cluster's id of this task's job (Slurm's ``SLURM_JOB_ID``...), for reports; None when there is none.
    job_id: str | None = None
    detail: str = ""
    #: An ``srun`` step's task: its stdin is always a pipe from srun, data or not.
    step: bool = False

    def describe(self) -> str:
        """``task 2 of 4 (from Slurm: SLURM_ARRAY_TASK_ID=4, ...)``: what ``--explain`` prints."""
        where = f"{self.source}: {self.detail}" if self.detail else self.source
        return f"task {self.task_id} of {self.tasks} (ids 0 to {self.tasks - 1}; from {where})"


@dataclass(frozen=True)
class _Found:
    """What one scheduler's variables say: a position (None: cannot tell) and a count (None: not said)."""

    source: str
    position: int | None
    count: int | None
    names: tuple[str, ...]
    job_id: str | None = None
    #: Why the position cannot be told, when it cannot.
    unknown: str = ""
    step: bool = False


def cluster_identity(
    env: Mapping[str, str], task_id: int | None = None, tasks: int | None = None
) -> TaskIdentity | None:
    """This process's place in a job array: ``--task-id``/``--tasks`` where given, else the scheduler's variables.

    Each of ``task_id`` and ``tasks`` wins over the environment on its own:
    ``--tasks 8`` inside a Slurm array keeps Slurm's position and makes the
    count 8. None when nothing says this is a task of an array. Raises
    :class:`UsageError` when a scheduler's variables are there but cannot
    place the task, or when the position is not among the tasks.
    """
    if task_id is not None:
        if tasks is None:
            raise UsageError("--task-id needs --tasks (how many tasks the job has)")
        return _checked(TaskIdentity(task_id, tasks, "--task-id/--tasks", _job_id(env)))
    found = _from_environment(env)
    if found is None:
        if tasks is not None:
            raise UsageError("--tasks needs --task-id, or a job array's environment (Slurm, PBS, SGE, LSF, ...)")
        return None
    if found.position is None:
        raise UsageError(f"{found.unknown}: pass --task-id I --tasks N (ids 0 to N-1)")
    source = found.source
    if tasks is not None:
        source += ", --tasks"
    elif found.count is None:
        raise UsageError(f"{found.source} does not say how many tasks the array has: pass --tasks N")
    else:
        tasks = found.count
    detail = ", ".join(f"{name}={env[name]}" for name in found.names if name in env)
    return _checked(TaskIdentity(found.position, tasks, source, found.job_id, detail, found.step))


def _job_id(env: Mapping[str, str]) -> str | None:
    """The scheduler's id of this job, for reports, even where ``--task-id`` says which task it is."""
    try:
        found = _from_environment(env)
    except UsageError:
        return None
    return found.job_id if found is not None else env.get("SLURM_JOB_ID")


def _from_environment(env: Mapping[str, str]) -> _Found | None:
    for read in READERS:
        found = read(env)
        if found is not None:
            return found
    return None


def _number(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = env.get(name)
    if value is None:
        if default is None:
            raise UsageError(f"{name} is not set, though the other variables of a job array are")
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} is not a number: {value!r}") from None


def _progression(source: str, ident: int, first: int, step: int, count: int) -> tuple[int | None, str]:
    """The position of ``ident`` in ``first, first+step, ...`` (``count`` of them); None if it is not one."""
    if step < 1 or count < 1 or (ident - first) % step or not 0 <= (ident - first) // step < count:
        return None, f"{source} does not say where task {ident} stands in its array (a listed array?)"
    return (ident - first) // step, ""


def _slurm(env: Mapping[str, str]) -> _Found | None:
    """Slurm: an array task (``(ID - MIN) / STEP`` of ``COUNT``), an ``srun`` step (``PROCID`` of its tasks), or both.

    An array whose ids are not ``MIN, MIN+STEP, ... MAX`` (``--array=1,3,7``,
    ``--array=1-2,7``: Slurm says ``STEP=1`` for any list) gives no position. Inside an array, each of an
    ``srun`` step's tasks is ``array position × tasks per step + PROCID``.
    The batch script itself is not a step: it has ``SLURM_PROCID=0``, and
    ``SLURM_NTASKS`` with ``--ntasks``, but never ``SLURM_STEP_ID``; so
    ``sbatch --ntasks=2`` alone still runs ppipe once.
    """
    in_array = "SLURM_ARRAY_TASK_ID" in env
    step = _srun_step(env)
    if not in_array and step is None:
        return None
    position: int | None = 0
    count, unknown = 1, ""
    names: tuple[str, ...] = ()
    if in_array:
        ident = _number(env, "SLURM_ARRAY_TASK_ID")
        first = _number(env, "SLURM_ARRAY_TASK_MIN", ident)
        stride = _number(env, "SLURM_ARRAY_TASK_STEP", 1)
        count = _number(env, "SLURM_ARRAY_TASK_COUNT")
        last = _number(env, "SLURM_ARRAY_TASK_MAX", first + stride * (count - 1))
        position, unknown = _progression("Slurm", ident, first, stride, count)
        if last != first + stride * (count - 1):
            position, unknown = None, f"Slurm's array is not evenly spaced ({count} tasks from {first} to {last})"
        names = tuple(f"SLURM_ARRAY_TASK_{part}" for part in ("ID", "MIN", "STEP", "MAX", "COUNT"))
    if step is not None:
        procid, ntasks = step
        position = None if position is None else position * ntasks + procid
        count *= ntasks
        names += ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS")
    job_id = env.get("SLURM_JOB_ID")
    return _Found("Slurm", position, count, names, job_id, unknown, step is not None)


def _srun_step(env: Mapping[str, str]) -> tuple[int, int] | None:
    """``(PROCID, tasks)`` of the ``srun`` step this runs in; None in a batch script or outside Slurm."""
    step_id = env.get("SLURM_STEP_ID", "")
    if not step_id.isdigit() or int(step_id) >= 0xFFFFFFF0 or "SLURM_PROCID" not in env:  # batch, extern, interactive
        return None
    ntasks = _number(env, "SLURM_STEP_NUM_TASKS", _number(env, "SLURM_NTASKS", 1))
    return _number(env, "SLURM_PROCID"), ntasks


def _sge(env: Mapping[str, str]) -> _Found | None:
    """SGE/UGE (``qsub -t FIRST-LAST:STEP``): ``SGE_TASK_ID`` is ``undefined`` outside an array."""
    if env.get("SGE_TASK_ID", "undefined") == "undefined":
        return None
    ident = _number(env, "SGE_TASK_ID")
    first, last = _number(env, "SGE_TASK_FIRST", ident), _number(env, "SGE_TASK_LAST", ident)
    stride = _number(env, "SGE_TASK_STEPSIZE", 1)
    count = (last - first) // stride + 1 if stride > 0 and last >= first else 0
    position, unknown = _progression("SGE", ident, first, stride, count)
    names = ("SGE_TASK_ID", "SGE_TASK_FIRST", "SGE_TASK_STEPSIZE", "SGE_TASK_LAST")
    return _Found("SGE", position, count or None, names, env.get("JOB_ID"), unknown)


def _lsf(env: Mapping[str, str]) -> _Found | None:
    """LSF (``bsub -J "name[1-N]"``): ``LSB_JOBINDEX`` is 0 outside an array; arrays are read as numbered from 1."""
    if env.get("LSB_JOBINDEX", "0") == "0":
        return None
    ident = _number(env, "LSB_JOBINDEX")
    stride = _number(env, "LSB_JOBINDEX_STEP", 1)
    last = env.get("LSB_JOBINDEX_END")
    count = (int(last) - 1) // stride + 1 if last is not None and last.isdigit() and stride > 0 else 0
    position, unknown = _progression("LSF", ident, 1, stride, count or ident)
    names = ("LSB_JOBINDEX", "LSB_JOBINDEX_STEP", "LSB_JOBINDEX_END")
    return _Found("LSF", position, count or None, names, env.get("LSB_JOBID"), unknown)


def _index_only(source: str, name: str, job_name: str) -> Callable[[Mapping[str, str]], _Found | None]:
    """A scheduler that gives only a task's index, counted from 0, and not how many tasks there are."""

    def read(env: Mapping[str, str]) -> _Found | None:
        if name not in env:
            return None
        return _Found(source, _number(env, name), None, (name,), env.get(job_name))

    read.__doc__ = f"{source}: ``{name}``, from 0; ``--tasks`` says how many."
    return read


#: Each scheduler's reader, in the order they are tried.
READERS: tuple[Callable[[Mapping[str, str]], _Found | None], ...] = (
    _slurm,
    _index_only("PBS Pro", "PBS_ARRAY_INDEX", "PBS_JOBID"),
    _index_only("Torque", "PBS_ARRAYID", "PBS_JOBID"),
    _sge,
    _lsf,
    _index_only("AWS Batch", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ID"),
    _index_only("Kubernetes", "JOB_COMPLETION_INDEX", ""),
)


def _checked(identity: TaskIdentity) -> TaskIdentity:
    if identity.tasks < 1 or not 0 <= identity.task_id < identity.tasks:
        raise UsageError(
            f"task id {identity.task_id} is not among the {identity.tasks} tasks "
            f"(from {identity.source}; ids count from 0)"
        )
    return identity

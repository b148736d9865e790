"""``--on slurm`` from the command line: the options checked and turned into a :class:`~ppipe.cluster.remote.SlurmSpec`.

The run itself is :class:`ppipe.cluster.remote.SlurmRun`; this module only
refuses what cannot work on a cluster (a pipe on stdin, which the tasks on
other machines cannot read; ``--each``; one shard per CPU *here*), picks
the run directory, and passes the options every task needs on.
"""

from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING

from ppipe.cli.config import Config
from ppipe.errors import UsageError

if TYPE_CHECKING:
    from ppipe.cluster.remote import SlurmSpec
    from ppipe.shards.plan import ShardPlan

#: Where the run directories go, under the current directory (which the tasks must see too).
RUNS_DIRECTORY = "ppipe-runs"


def slurm_spec(config: Config, plan: ShardPlan | None) -> SlurmSpec:
    """The spec of an ``--on slurm`` run; :class:`UsageError` (status 2) for what cannot run on a cluster."""
    from ppipe.cluster import slurm
    from ppipe.cluster.remote import SlurmSpec
    from ppipe.language.parser import parse

    if config.on != "slurm":
        raise UsageError(f"--on takes slurm (the one scheduler ppipe submits to), not {config.on!r}")
    if plan is None or config.fork is None:
        raise UsageError("--on slurm runs --fork N shards as a job array: give --fork N")
    if plan.items is not None:
        raise UsageError("--on slurm runs --fork N shards; to run one per item, submit ppipe --each as an array task")
    if config.fork == 0:
        raise UsageError("--on slurm needs the number of tasks: --fork 0 (one per CPU here) means nothing on a cluster")
    if config.task_id is not None or config.tasks is not None:
        raise UsageError("--on slurm gives each task its --task-id itself")
    parse(config.pipeline, placeholders=plan.values(0))  # bad syntax is refused here, not by every task
    slurm.check_installed(os.environ)
    return SlurmSpec(
        pipeline=config.pipeline,
        directory=os.path.abspath(os.path.join(RUNS_DIRECTORY, f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")),
        task_args=tuple(_task_args(config)),
        sbatch_args=tuple(config.sbatch or ()),
        stdin_path=_stdin_path(),
        timeout=config.timeout,
    )


def _stdin_path() -> str | None:
    """The file on stdin, by a name the tasks can open; None for a terminal or ``/dev/null``."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise UsageError(
            "--on slurm: stdin is a pipe, which tasks on other machines cannot read; "
            "give a file on a filesystem they share (< FILE), which they split between them"
        )
    if not stat.S_ISREG(mode):
        return None
    path = os.path.realpath("/proc/self/fd/0")
    if not os.path.isfile(path):
        raise UsageError("--on slurm: the file on stdin has no name the tasks could open (was it deleted?)")
    if os.lseek(0, 0, os.SEEK_CUR) != 0:
        raise UsageError("--on slurm: stdin has been read from already; the tasks would read it from its start")
    return path


def _task_args(config: Config) -> list[str]:
    """ppipe's options every task gets: how its stages end (``--shard-timeout`` is each task's ``--timeout``),
    and how its share of the file is cut."""
    args = []
    if config.no_fail:
        args.append("--no-fail")
    if config.shard_timeout:
        args += ["--timeout", repr(config.shard_timeout)]
    args += ["--kill-after", repr(config.kill_after)]
    if config.recend is not None:
        args += ["--recend", config.recend]
    elif config.null:
        args.append("-0")
    if config.header:
        args += ["--header", str(config.header)]
    if config.lines is not None:
        args.append("--lines" if config.lines else "--no-lines")
    return args

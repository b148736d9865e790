"""``--on slurm`` from the command line: the options checked and turned into a :class:`~ppipe.cluster.remote.SlurmSpec`.

The run itself is :class:`ppipe.cluster.remote.SlurmRun`; this module only
refuses what cannot work on a cluster (a pipe on stdin, which the tasks on
other machines cannot read; ``--each``; one shard per CPU *here*), picks
the run directory, and passes the options every task needs on.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from ppipe.cli.config import Config
from ppipe.errors import UsageError

if TYPE_CHECKING:
    from ppipe.cluster.remote import SlurmSpec
    from ppipe.shards.plan import ShardPlan


def slurm_spec(config: Config, plan: ShardPlan | None) -> SlurmSpec:
    """The spec of an ``--on slurm`` run; :class:`UsageError` (status 2) for what cannot run on a cluster."""
    from ppipe.cluster import slurm
    from ppipe.cluster.remote import SlurmSpec
    from ppipe.engine.options import RunOptions
    from ppipe.language.parser import parse

    if config.on != "slurm":
        raise UsageError(f"--on takes slurm (the one scheduler ppipe submits to), not {config.on!r}")
    if plan is None or config.fork is None:
        raise UsageError("--on slurm runs --fork N shards as a job array: give --fork N")
    if config.fork == 0:
        raise UsageError("--on slurm needs the number of tasks: --fork 0 (one per CPU here) means nothing on a cluster")
    if config.task_id is not None or config.tasks is not None:
        raise UsageError("--on slurm gives each task its --task-id itself")
    parse(config.pipeline, placeholders=plan.first_values())  # bad syntax is refused here, not by every task
    slurm.check_installed(os.environ)
    options = RunOptions(no_fail=config.no_fail, kill_after=config.kill_after, timeout=config.timeout)
    return SlurmSpec.of(
        config.pipeline, plan, options, sbatch=config.sbatch or (), stdin_path=_stdin_path(), lines=config.lines
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

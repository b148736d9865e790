"""How a sharded run is laid out: :class:`ShardPlan`, and the checks that refuse a plan before anything starts."""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass

from ppipe.engine.processes import resolve_commands
from ppipe.errors import UsageError
from ppipe.graph import Boundary, Graph
from ppipe.language.parser import parse, placeholder_values
from ppipe.shards.input import DEFAULT_BLOCK, splittable


@dataclass(frozen=True)
class ShardPlan:
    """How to shard a pipeline: ``--fork`` and the options that go with it.

    ``processes`` is how many shards run here (``--fork``; 0 means one per
    CPU). ``max_restarts`` is per shard: one shard's bad luck does not use up
    the others' restarts, and the report can say of each shard how often it
    ran. ``offset`` and ``tasks`` place this machine's shards in a larger
    job array (see :func:`~ppipe.shards.identity.cluster_identity`).
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


def check_descriptors(shards: int) -> None:
    """Refuses, before anything starts, a ``--fork`` that ``ulimit -n`` cannot hold."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    needed = _FDS_OWN + _FDS_PER_SHARD * shards
    if limit != resource.RLIM_INFINITY and limit < needed:
        raise UsageError(
            f"--fork {shards} needs about {needed} open files, more than the limit of {limit}; "
            f"raise it with ulimit -n, or run fewer shards"
        )


def check_pipeline(text: str, plan: ShardPlan, env: Mapping[str, str], cwd: str | None) -> Graph:
    """Parses the pipeline as the first shard runs it, and finds its commands: bad input fails before any start.

    Once, not once per shard: placeholders are filled into the parsed
    words and never change how the text parses, so one parse finds
    every syntax error. A command whose name holds a placeholder
    (``./score{task_id}``) is checked by each shard as it starts: a
    shard without its command fails alone (127) and is not restarted.
    """
    values = placeholder_values(plan.task_ids[0], plan.total)
    graph = parse(text, env=env, cwd=cwd, placeholders=values)
    resolve_commands(graph, env)
    return graph


def splits_input(first: Graph, stdin: int | bytes | None) -> bool:
    """Whether ppipe deals its input (``stdin``: a descriptor, default 0, or bytes) to the shards.

    Not when every stage at the start reads a file of its own (``< f``),
    nor from a terminal; a pipe, a file or the API's bytes, yes.
    """
    readers = [first.stage(e.target) for e in first.outputs(Boundary.STDIN) if isinstance(e.target, int)]
    if all(any(r.fd == 0 for r in stage.redirects) for stage in readers):
        return False
    return isinstance(stdin, bytes) or splittable(0 if stdin is None else stdin)

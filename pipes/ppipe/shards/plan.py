"""How a sharded run is laid out: :class:`ShardPlan`, and the checks that refuse a plan before anything starts."""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass

from ppipe.engine.options import Input
from ppipe.engine.processes import resolve_commands
from ppipe.engine.slices import FileSlice
from ppipe.errors import PpipeError, UsageError
from ppipe.graph import Boundary, Graph
from ppipe.language.expansion import fill_text
from ppipe.language.parser import parse, placeholder_values
from ppipe.policy import FAIL_FAST, Halt, HaltWatch
from ppipe.shards.input import DEFAULT_BLOCK, splittable
from ppipe.shards.joblog import Resume


@dataclass(frozen=True)
class ShardPlan:
    """How to shard a pipeline: ``--fork`` or ``--each``, and the options that go with them.

    ``processes`` is how many shards run here (``--fork``; 0 means one per
    CPU); ``items`` (``--each``) makes one shard per item instead, its text
    filled in for ``{item}``. ``jobs`` caps how many run at once (0: one per
    CPU; None: all of them); they start in task order as slots free.
    ``max_restarts`` is per shard: one shard's bad luck does not use up the
    others' restarts, and the report can say of each shard how often it
    ran; ``retry_delay`` is the wait before a shard's first restart, doubled
    for each next one (up to :data:`RETRY_DELAY_CAP`). ``shard_timeout``
    limits each attempt. ``halt`` (or ``fail_fast``, which is ``now,fail=1``)
    says when the run stops starting shards. ``joblog`` is a file to write
    every attempt's line to, and ``resume`` what to take over from it.
    ``record_end`` ends the records ppipe's input is split by (a newline,
    NUL for ``-0``), and every shard's input starts with the first ``header``
    records. ``tag`` puts each shard's tag and a tab before every line of
    its output and stderr: ``tag_format`` with the shard's placeholders
    filled in (which implies ``tag``), else its item with ``--each``, else
    its task id, as ``parallel --tag`` and ``--tagstring`` do. ``offset``
    and ``tasks`` place this machine's shards in a larger job array (see :func:`~ppipe.identity.cluster_identity`): with
    ``--fork``, the shards here are ``offset .. offset+N-1``. With
    ``--each`` in a job array of K tasks, ``stride`` is K and ``offset``
    this task's position k: it runs the items i with i mod K = k, each
    keeping its index in the whole list as its ``{task_id}``.
    """

    processes: int
    max_restarts: int = 0
    fail_fast: bool = False
    tag: bool = False
    keep_order: bool = False
    block: int = DEFAULT_BLOCK
    offset: int = 0
    tasks: int | None = None
    jobs: int | None = None
    items: tuple[str, ...] | None = None
    halt: Halt | None = None
    shard_timeout: float | None = None
    retry_delay: float = 0.0
    joblog: str | None = None
    resume: Resume = Resume.NONE
    record_end: bytes = b"\n"
    header: int = 0
    stride: int = 1
    tag_format: str | None = None

    @property
    def local(self) -> int:
        """How many shards run here: one per item of this task's share, or ``--fork``'s count."""
        if self.items is not None:
            return len(range(self.offset, len(self.items), self.stride))
        return self.processes if self.processes > 0 else usable_cpus()

    @property
    def slots(self) -> int:
        """How many shards run at once: ``jobs``, at most every shard (and at least one)."""
        wanted = self.local if self.jobs is None else (self.jobs or usable_cpus())
        return max(1, min(wanted, self.local))

    @property
    def halt_rule(self) -> Halt | None:
        return self.halt if self.halt is not None else (FAIL_FAST if self.fail_fast else None)

    def halt_watch(self, total: int) -> HaltWatch:
        """The run's ``--halt`` (or ``--fail-fast``) rule over ``total`` shards, counted as they end."""
        named = "--fail-fast" if self.halt is None else f"--halt {self.halt}"
        return HaltWatch(self.halt_rule, total, named=named)

    def task_id(self, index: int) -> int:
        """The task id of the shard at ``index`` here: its place among all the run's shards (an item's index)."""
        return self.offset + index * self.stride

    def item(self, index: int) -> str | None:
        """The item of the shard at ``index`` here (``--each``), else None."""
        return None if self.items is None else self.items[self.task_id(index)]

    def values(self, index: int, slot: int | None = None) -> dict[str, str]:
        """The placeholder values of the shard at ``index`` here: ``{task_id}``... and ``{item}``;
        ``{slot}`` when it runs in local ``slot`` (1 … :attr:`slots`)."""
        values = placeholder_values(self.task_id(index), self.total)
        item = self.item(index)
        if item is not None:
            values["item"] = item
        if slot is not None:
            values["slot"] = str(slot)
        return values

    def first_values(self) -> dict[str, str]:
        """The values the first shard here runs with, in slot 1: what a check or ``--explain`` parses with.

        A job array's task with no items of its own still gets every name
        (``{item}`` empty), so that its pipeline parses as its shards would.
        """
        if self.local:
            return self.values(0, slot=1)
        return {**placeholder_values(self.offset, self.total), "item": "", "slot": "1"}

    @property
    def tags(self) -> bool:
        """Whether output and stderr lines get their shard's tag (``--tag``, or ``--tag-format``)."""
        return self.tag or self.tag_format is not None

    def tag_of(self, index: int, slot: int | None = None) -> bytes | None:
        """What goes before each line of the shard at ``index`` (in ``slot``): its tag and a tab; None: no tag."""
        if not self.tags:
            return None
        item = self.item(index)
        if self.tag_format is not None:
            text = fill_text(self.tag_format, self.values(index, slot))
        else:
            text = item if item is not None else str(self.task_id(index))
        return os.fsencode(f"{text}\t")

    def retry_delay_before(self, attempt: int) -> float:
        """The wait before ``attempt`` (2 is the first restart): ``retry_delay``, doubled for each next one."""
        if attempt < 2 or self.retry_delay <= 0:
            return 0.0
        return float(min(self.retry_delay * 2.0 ** (attempt - 2), max(self.retry_delay, RETRY_DELAY_CAP)))

    @property
    def total(self) -> int:
        """How many shards the whole run has (every task of a job array's); ``{tasks}``."""
        return self.tasks if self.tasks is not None else self.local


#: The longest wait ``retry_delay`` doubles up to (unless it starts longer): five minutes.
RETRY_DELAY_CAP = 300.0


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
    if plan.items is not None:
        if len(plan.items) > MAX_ITEMS:
            raise UsageError(f"--each: ppipe runs at most {MAX_ITEMS} items in one run; split the list")
    elif plan.local > MAX_SHARDS:
        raise UsageError(
            f"--fork {plan.processes}: ppipe runs at most {MAX_SHARDS} shards on one machine; "
            "for more, run it as the tasks of a job array (--task-id/--tasks)"
        )
    if plan.max_restarts < 0:
        raise UsageError("--max-restarts must be 0 or more")
    if plan.jobs is not None and plan.jobs < 0:
        raise UsageError("--jobs must be 0 (one per CPU) or more")
    if plan.header < 0:
        raise UsageError("--header must be 0 or more")
    if not plan.record_end:
        raise UsageError("--recend must not be empty")
    if plan.resume is not Resume.NONE and plan.joblog is None:
        raise UsageError("--resume and --resume-failed need --joblog FILE (the log to resume from)")


#: The most ``--each`` items in one run: each is a shard ppipe keeps track of, though only ``--jobs`` run at once.
MAX_ITEMS = 1_000_000

#: Descriptors ppipe holds per running shard (its pipes, streams and control socket), and for itself.
_FDS_PER_SHARD = 6
_FDS_OWN = 32


def check_descriptors(plan: ShardPlan) -> None:
    """Refuses, before anything starts, more shards at once than ``ulimit -n`` can hold.

    Status 1, as a plain run with too many stages for the limit: a resource
    limit of the machine, not a wrong command line.
    """
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    needed = _FDS_OWN + _FDS_PER_SHARD * plan.slots
    if limit != resource.RLIM_INFINITY and limit < needed:
        asked = f"--jobs {plan.jobs}" if plan.jobs is not None else f"--fork {plan.processes}"
        raise PpipeError(
            f"{asked} needs about {needed} open files, more than the limit of {limit}; "
            f"raise it with ulimit -n, or run fewer shards at once (--jobs)"
        )


def check_pipeline(text: str, plan: ShardPlan, env: Mapping[str, str], cwd: str | None) -> Graph:
    """Parses the pipeline as the first shard runs it, and finds its commands: bad input fails before any start.

    Once, not once per shard: placeholders are filled into the parsed
    words and never change how the text parses, so one parse finds
    every syntax error. A command whose name holds a placeholder
    (``./score{task_id}``) is checked by each shard as it starts: a
    shard without its command fails alone (127) and is not restarted.
    """
    graph = parse(text, env=env, cwd=cwd, placeholders=plan.first_values())
    resolve_commands(graph, env)
    return graph


def splits_input(first: Graph, stdin: Input) -> bool:
    """Whether ppipe deals its input (``stdin``: a descriptor, default 0, bytes, or part of a file) to the shards.

    Not when every stage at the start reads a file of its own (``< f``),
    nor from a terminal; a pipe, a file or the API's bytes, yes.
    """
    if not reads_stdin(first):
        return False
    return isinstance(stdin, (bytes, FileSlice)) or splittable(0 if stdin is None else stdin)


def reads_stdin(graph: Graph) -> bool:
    """Whether a stage at the start of ``graph`` reads ppipe's stdin (not every one reads a file of its own)."""
    readers = [graph.stage(e.target) for e in graph.outputs(Boundary.STDIN) if isinstance(e.target, int)]
    return not all(any(r.fd == 0 for r in stage.redirects) for stage in readers)

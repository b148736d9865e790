"""``--explain``: the parsed graph as text, exactly as it would run.

Each stage shows its argv as a Python list (what ``execve``
receives), its extra environment, its redirections in the order they are
applied, and the opt-out marker; then the edges, whose ends are what each
stage really reads and writes once its redirections are applied
(``sort < in.txt`` reads ``file in.txt``, not ppipe's stdin), a process
substitution's as the descriptor its holder opens (``stage 2 -> stage 1 as
/dev/fd/63``); then every command that could not be started, with the exit
status a real run would give for it (127 not found, 126 not executable).
Nothing is run.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from ppipe.errors import CommandError, CommandProblem, ExitStatus
from ppipe.graph import Boundary, Edge, Graph, Node, Redirect, RedirectOp, Stage, tree_prefixes

if TYPE_CHECKING:
    from ppipe.identity import TaskIdentity
    from ppipe.shards.plan import ShardPlan

#: How many ``--each`` shards ``--explain`` lists with their argv before counting the rest.
SHARDS_LISTED = 5


class Explanation(NamedTuple):
    """What ``--explain`` prints, and the status it exits with: the one a real run would start with."""

    text: str
    status: int


def explain(graph: Graph) -> str:
    """A human-readable description of ``graph``; runs nothing. See :func:`explain_checked`."""
    return explain_checked(graph).text


def explain_checked(graph: Graph, env: Mapping[str, str] | None = None) -> Explanation:
    """The description of ``graph`` and the exit status a real run would give before starting anything.

    Commands are looked up as the engine looks them up (``PATH`` from
    ``env``, default ``os.environ``, or the stage's own ``PATH=``). Each one
    that cannot be started gets a line (``stage 2: nosuchcmd: command not
    found``) and the status is the rightmost problem's, 127 or 126, as a run
    would exit; 0 when every command can start.
    """
    problems = _command_problems(graph, os.environ if env is None else env)
    text = _describe(graph)
    if problems:
        status = problems[-1].status
        text += f"\nnot started: a run would stop before starting anything, with exit status {status}:\n"
        text += "".join(f"  stage {p.stage}: {p.command}: {p.reason}\n" for p in problems)
        return Explanation(text, status)
    return Explanation(text, ExitStatus.OK)


def _command_problems(graph: Graph, env: Mapping[str, str]) -> tuple[CommandProblem, ...]:
    from ppipe.engine.processes import resolve_commands

    try:
        resolve_commands(graph, env)
    except CommandError as error:
        return error.problems
    return ()


def _describe(graph: Graph) -> str:
    lines = [f"pipeline: {graph.text.strip()}", ""]
    for stage in graph:
        lines.append(f"stage {stage.id}: {stage.command}")
        lines.append(f"  argv: {list(stage.argv)!r}")
        for name, value in stage.env:
            lines.append(f"  env: {name}={value!r}")
        for redirect in stage.redirects:
            problem = f"  (fails when run: {redirect.error})" if redirect.error else ""
            lines.append(f"  redirect: {redirect}{problem}")
        if stage.may_fail:
            lines.append("  may fail: a non-zero exit is reported, not fatal")
    if any(stage.branch for stage in graph):
        prefixes = tree_prefixes(graph)
        lines.append(f"graph ({_tree_caption(graph)}):")
        lines.extend(f"  {prefixes[stage.id]}{stage.id} {stage.command}" for stage in graph)
    lines.append("")
    lines.append("edges:")
    lines.extend(f"  {line}" for line in _edges(graph))
    return "\n".join(lines) + "\n"


def _tree_caption(graph: Graph) -> str:
    """What the tree draws: groups' branches, process substitutions beneath their holders, or both (each holder
    makes one group of its substitutions, so more groups than holders means real groups too)."""
    holders = {_holder(edge) for edge in graph.edges if edge.substitution_fd is not None}
    groups = {number for stage in graph for number, _, _ in stage.branch}
    said = (
        ["a group's branches each get a full copy; their outputs merge, whole lines"]
        if len(groups) > len(holders)
        else []
    )
    if holders:
        said.append("a stage's process substitutions are drawn beneath it")
    return "; ".join(said)


def _holder(edge: Edge) -> Node:
    """The stage holding the process substitution an edge carries: the one whose /dev/fd/N it is."""
    return edge.target if edge.target_fd != 0 else edge.source


# ---------------------------------------------------------------- the ends of the edges

#: What a stage's descriptor ends up as: its own end of the edge in (``_IN``)
#: or out (``_OUT``), ppipe's stderr (``_ERR``), or a file.
_IN, _OUT, _ERR = "in", "out", "err"
_End = str | Redirect


def _ends(stage: Stage, joins_stderr: bool, substitutions: set[str]) -> dict[int, _End]:
    """Descriptors 0, 1 and 2 of ``stage`` after its redirections, then ``|&``, in the engine's order; a
    redirection to one of its ``substitutions`` (``< <(...)``) is that descriptor, not a file."""
    fds: dict[int, _End] = {0: _IN, 1: _OUT, 2: _ERR}
    for redirect in stage.redirects:
        if redirect.op is RedirectOp.DUP:
            assert redirect.source_fd is not None
            fds[redirect.fd] = fds[redirect.source_fd]
        elif redirect.target in substitutions:
            fds[redirect.fd] = f"its {redirect.target}"
        else:
            fds[redirect.fd] = redirect
    if joins_stderr:
        fds[2] = fds[1]
    return fds


def _edges(graph: Graph) -> list[str]:
    """One line per edge, its ends as they really are; then the files read or written by stages inside the pipeline."""
    joins_stderr = {edge.source for edge in graph.edges if edge.with_stderr}
    substitutions: dict[int, set[str]] = {stage.id: set() for stage in graph}
    for edge in graph.edges:
        holder = _holder(edge)
        if edge.substitution_fd is not None and isinstance(holder, int):
            substitutions[holder].add(f"/dev/fd/{edge.substitution_fd}")
    ends = {stage.id: _ends(stage, stage.id in joins_stderr, substitutions[stage.id]) for stage in graph}
    lines = [_edge(edge, ends) for edge in graph.edges]
    for stage in graph:
        if stage.reads_stdin_of is not None:
            lines.append(
                f"stage {stage.id} reads stage {stage.reads_stdin_of}'s stdin  (the same descriptor, as in bash)"
            )
        if stage.writes_stdout_of is not None:
            holder = stage.writes_stdout_of
            lines.append(f"stage {stage.id} writes into stage {holder}'s stdout  (the same descriptor, as in bash)")
    # One pass over the edges, not graph.inputs() per stage: a pipeline of 20,000 stages stays linear.
    reading_stdin = {edge.target for edge in graph.edges if edge.source is Boundary.STDIN}
    writing_stdout = {edge.source for edge in graph.edges if edge.target is Boundary.STDOUT}
    for stage in graph:
        fds = ends[stage.id]
        if fds[0] != _IN and stage.id not in reading_stdin and stage.reads_stdin_of is None:
            lines.append(f"{_name(fds[0])} -> stage {stage.id}")
        if fds[1] != _OUT and stage.id not in writing_stdout and stage.writes_stdout_of is None:
            lines.append(f"stage {stage.id} -> {_name(fds[1])}")
    return lines


def _edge(edge: Edge, ends: Mapping[int, dict[int, _End]]) -> str:
    """``a -> b``, where a redirection replaces ppipe's own stream; a note when a redirection empties an inner edge.

    A process substitution's edge names the holder's descriptor: ``stage 2
    -> stage 1 as /dev/fd/63`` (``<(...)``), ``stage 1 as /dev/fd/63 ->
    stage 2`` (``>(...)``).
    """
    if edge.source_fd != 1:
        return f"stage {edge.source} as /dev/fd/{edge.source_fd} -> stage {edge.target}"
    notes = []
    if edge.source is Boundary.STDIN:
        source = "ppipe's stdin"
    else:
        assert isinstance(edge.source, int)
        writes = ends[edge.source]
        source = f"stage {edge.source}"
        if writes[2] == _OUT and writes[1] == _OUT:
            notes.append("stdout and stderr: |&" if edge.with_stderr else "stdout and stderr: 2>&1")
        if writes[1] != _OUT and edge.target is Boundary.STDOUT:
            return f"{source} -> {_name(writes[1])}"
        if writes[1] != _OUT:
            notes.append(f"nothing flows: stage {edge.source} writes {_name(writes[1])} instead")
    if edge.target_fd != 0:
        return f"{source} -> stage {edge.target} as /dev/fd/{edge.target_fd}" + "".join(f"  ({n})" for n in notes)
    if edge.target is Boundary.STDOUT:
        target = "ppipe's stdout"
    else:
        assert isinstance(edge.target, int)
        reads = ends[edge.target][0]
        target = f"stage {edge.target}"
        if reads != _IN and edge.source is Boundary.STDIN:
            return f"{_name(reads)} -> {target}"
        if reads != _IN:
            notes.append(f"not read: stage {edge.target} reads {_name(reads)} instead")
    return f"{source} -> {target}" + "".join(f"  ({note})" for note in notes)


def _name(end: _End) -> str:
    if isinstance(end, Redirect):
        appending = " (appending)" if end.op is RedirectOp.APPEND else ""
        return f"file {shlex.quote(end.target or '')}{appending}"
    return {_IN: "its own stdin", _OUT: "its own stdout", _ERR: "ppipe's stderr"}.get(end, end)


def explain_text(
    text: str,
    *,
    plan: ShardPlan | None = None,
    placeholders: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    identity: TaskIdentity | None = None,
) -> Explanation:
    """``--explain`` of a pipeline's text: :func:`explain_checked` of the graph as it would run.

    ``identity``, the job-array task this process is, comes first, with the
    variables it was read from: the line to check when a task runs the
    wrong share.

    For a sharded run (``plan``), the rule that fills each shard's
    placeholders comes first, then its first shard's graph as it runs in
    slot 1, its placeholders filled into the parsed words. An ``--each``
    run also lists its first :data:`SHARDS_LISTED` shards' argv with their
    items as the run gives them (and how many more). Otherwise
    ``placeholders`` (a cluster task's) are filled in, if any.
    """
    from ppipe.language.parser import parse

    rule = "" if identity is None else f"this process: {identity.describe()}\n"
    if plan is not None:
        rule += _each_rule(text, plan, env) if plan.items is not None else _fork_rule(plan)
        placeholders = plan.first_values()
    shown = explain_checked(parse(text, env=env, placeholders=placeholders), env)
    return Explanation(rule + shown.text, shown.status)


def _fork_rule(plan: ShardPlan) -> str:
    first, tasks = plan.offset, plan.total
    return (
        f"shards: {tasks} in all; shard i runs the pipeline with {{task_id}} = i, {{task_num}} = i+1, "
        f"{{tasks}} = {tasks}, {{slot}} = {_SLOT_RULE.format(slots=plan.slots)}\n"
        f"shown: shard {first} ({{task_id}}={first}, {{task_num}}={first + 1}, {{tasks}}={tasks}, {{slot}}=1)"
        f"{_tag_shown(plan, 0)}\n\n"
    )


#: Which slot runs a shard is known only as it starts (the first free one): the shards are shown in slot 1.
_SLOT_RULE = "the number of the slot running it, 1 … {slots} (shown: 1)"


def _tag_shown(plan: ShardPlan, index: int) -> str:
    """``, tag 'a.txt'``: the tag before the shard's lines, when there is one (as in slot 1)."""
    tag = plan.tag_of(index, slot=1) if plan.local else None
    return "" if tag is None else f", tag {os.fsdecode(tag[:-1])!r}"


def _each_rule(text: str, plan: ShardPlan, env: Mapping[str, str] | None) -> str:
    """An ``--each`` run's rule and its first shards' argv, each item filled in as the run fills it."""
    from ppipe.language.parser import parse

    count = plan.local
    if plan.stride > 1:
        lines = [
            f"items: {plan.total} in all; this task runs the items i with i mod {plan.stride} = {plan.offset}: "
            f"{count} of them"
        ]
    else:
        lines = [f"items: {count}; one shard per item"]
    lines.append(
        f"the shard of item i (from 0) runs the pipeline with {{item}} = item i, {{task_id}} = i, "
        f"{{task_num}} = i+1, {{tasks}} = {plan.total}, {{slot}} = {_SLOT_RULE.format(slots=plan.slots)}"
    )
    for index in range(min(count, SHARDS_LISTED)):
        values = plan.values(index, slot=1)
        stages = list(parse(text, env=env, placeholders=values))
        head = f"  shard {values['task_id']} (item {values['item']!r}{_tag_shown(plan, index)}):"
        if len(stages) == 1:
            lines.append(f"{head} {list(stages[0].argv)!r}")
        else:
            lines.append(head)
            lines.extend(f"    stage {stage.id}: {list(stage.argv)!r}" for stage in stages)
    if count > SHARDS_LISTED:
        lines.append(f"  … and {count - SHARDS_LISTED} more shards")
    if count:
        first = plan.values(0)
        lines.append(f"shown in full: shard {first['task_id']} (item {first['item']!r})")
    else:
        lines.append("nothing to run here: the pipeline is shown with {item} empty")
    return "\n".join(lines) + "\n\n"

"""``--explain``: the parsed graph as text, exactly as it would run.

Each stage shows its argv as a Python list (what ``execve``
receives), its extra environment, its redirections in the order they are
applied, and the opt-out marker; then the edges.
"""

from __future__ import annotations

from .graph import Boundary, Graph, Node, tree_prefixes


def explain(graph: Graph) -> str:
    """A human-readable description of ``graph``; runs nothing."""
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
        lines.append("graph (a group's branches each get a full copy; their outputs merge, whole lines):")
        lines.extend(f"  {prefixes[stage.id]}{stage.id} {stage.command}" for stage in graph)
    lines.append("")
    lines.append("edges:")
    for edge in graph.edges:
        label = "  (stdout and stderr: |&)" if edge.with_stderr else ""
        lines.append(f"  {_node(edge.source)} -> {_node(edge.target)}{label}")
    return "\n".join(lines) + "\n"


def _node(node: Node) -> str:
    if node is Boundary.STDIN:
        return "ppipe's stdin"
    if node is Boundary.STDOUT:
        return "ppipe's stdout"
    return f"stage {node}"


def explain_shards(text: str, first: int, tasks: int) -> str:
    """``--explain --fork N``: the rule, then shard ``first``'s graph as it would run."""
    from .syntax import parse, substitute_placeholders

    graph = parse(substitute_placeholders(text, first, tasks))
    rule = (f"shards: {tasks} in all; shard i runs the pipeline with {{task_id}} = i, {{task_num}} = i+1, "
            f"{{tasks}} = {tasks}\n"
            f"shown: shard {first} ({{task_id}}={first}, {{task_num}}={first + 1}, {{tasks}}={tasks})\n\n")
    return rule + explain(graph)

"""The pipeline as data: stages, their redirections, and the edges between them.

A :class:`Graph` is what the parser produces and what the engine runs. It is
immutable and already fully expanded: ``Stage.argv`` is exactly what the
process receives. The model is a graph, not a list: one stage's output may
feed several edges (fan-out, every edge gets a full copy) and one stage's
input may be fed by several (fan-in, whole lines merged), so later syntax for
branches adds edges, not a new model.
"""

from __future__ import annotations

import enum
import functools
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field


class Boundary(enum.Enum):
    """ppipe's own standard streams, as ends of edges."""

    STDIN = "stdin"
    STDOUT = "stdout"

    def __str__(self) -> str:
        return self.value


#: An end of an edge: a stage id (1-based) or one of ppipe's own streams.
Node = int | Boundary


class RedirectOp(enum.Enum):
    """What a redirection does to its file descriptor."""

    READ = "<"
    WRITE = ">"
    APPEND = ">>"
    DUP = ">&"


@dataclass(frozen=True)
class Redirect:
    """One redirection, applied in order, as a shell applies them.

    ``fd`` is 0, 1 or 2. For ``DUP`` the descriptor becomes a copy of
    ``source_fd`` (``2>&1``: ``fd=2, source_fd=1``) and ``target`` is None;
    otherwise ``target`` is the file path. ``&> f`` is two redirections:
    ``> f`` then ``2>&1``. ``error`` is set when the target could not be
    expanded to one file (bash's "ambiguous redirect"); the stage then fails
    with status 1 when the pipeline runs, as in bash.
    """

    fd: int
    op: RedirectOp
    target: str | None = None
    source_fd: int | None = None
    error: str | None = None

    def __str__(self) -> str:
        if self.op is RedirectOp.DUP:
            return f"{self.fd}>&{self.source_fd}"
        default_fd = 0 if self.op is RedirectOp.READ else 1
        prefix = "" if self.fd == default_fd else str(self.fd)
        return f"{prefix}{self.op.value} {shlex.quote(self.target or '')}"


@dataclass(frozen=True)
class Stage:
    """One process of the pipeline.

    ``id`` is 1-based, in the order stages appear in the text; exit-status
    rules ("rightmost failure") use this order. ``env`` holds only the
    ``NAME=value`` assignments written before the command; the process gets
    ppipe's environment plus these. ``may_fail`` is the per-stage opt-out
    (a leading ``-`` in the text): a non-zero exit is reported, never fatal.
    ``source`` is the stage's own text, for messages.
    """

    id: int
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    redirects: tuple[Redirect, ...] = ()
    may_fail: bool = False
    source: str = ""
    #: Where the stage sits in groups and process substitutions: per enclosing group, outermost first,
    #: (the group's number, the branch's index in it, how many branches it has). A stage's
    #: substitutions are drawn as a group of their own beneath it, one branch each.
    branch: tuple[tuple[int, int, int], ...] = ()
    #: A stage at the start of a ``<(...)`` reads what the stage holding that substitution reads (the
    #: holder's id), and one at the end of a ``>(...)`` writes where its holder's stdout goes: the same
    #: descriptor, not a copy, as in bash. None for every other stage.
    reads_stdin_of: int | None = None
    writes_stdout_of: int | None = None

    @property
    def command(self) -> str:
        """The argv as one shell-quoted line, for messages and displays."""
        return shlex.join(self.argv)


#: A process substitution's descriptors in the stage holding it, as bash numbers them: the first
#: ``/dev/fd/63``, then 62, ... down to 3 (``MAX_SUBSTITUTIONS`` in one command).
FIRST_SUBSTITUTION_FD = 63
MAX_SUBSTITUTIONS = FIRST_SUBSTITUTION_FD - 2


@dataclass(frozen=True)
class Edge:
    """Bytes flowing from ``source``'s descriptor ``source_fd`` into ``target``'s descriptor ``target_fd``.

    Between the stages of a pipeline that is stdout (1) into stdin (0).
    A process substitution is an edge to or from a higher descriptor of
    the stage holding it: ``diff <(sort a) ...`` gives an edge from ``sort``
    into ``diff``'s 63, which ``diff`` opens as ``/dev/fd/63``; ``tee >(wc
    -c)`` one from ``tee``'s 63 into ``wc``'s stdin. ``with_stderr`` marks a
    ``|&`` edge: the source's stderr joins its stdout (applied after the
    source's own redirections, as in bash).
    """

    source: Node
    target: Node
    with_stderr: bool = False
    source_fd: int = 1
    target_fd: int = 0

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def substitution_fd(self) -> int | None:
        """The descriptor of the stage holding the process substitution this edge carries, if it carries one."""
        if self.target_fd != 0:
            return self.target_fd
        return self.source_fd if self.source_fd != 1 else None


@dataclass(frozen=True)
class Graph:
    """A whole pipeline: its text, its stages and its edges.

    Edges from :data:`Boundary.STDIN` and to :data:`Boundary.STDOUT` say which
    stages read ppipe's stdin and write ppipe's stdout.
    """

    text: str
    stages: tuple[Stage, ...]
    edges: tuple[Edge, ...] = field(default=())

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def stage(self, stage_id: int) -> Stage:
        return self.stages[stage_id - 1]

    def inputs(self, node: Node) -> tuple[Edge, ...]:
        """Edges feeding ``node``, into any of its descriptors; several into one mean fan-in."""
        return self._adjacency[1].get(node, ())

    def outputs(self, node: Node) -> tuple[Edge, ...]:
        """Edges fed by ``node``, from any of its descriptors; several from one mean fan-out."""
        return self._adjacency[0].get(node, ())

    def inputs_at(self, node: Node, fd: int) -> tuple[Edge, ...]:
        """Edges feeding ``node``'s descriptor ``fd`` (0: its stdin; 63: its ``/dev/fd/63``)."""
        return tuple(edge for edge in self.inputs(node) if edge.target_fd == fd)

    def outputs_at(self, node: Node, fd: int) -> tuple[Edge, ...]:
        """Edges fed by ``node``'s descriptor ``fd`` (1: its stdout; 63: its ``/dev/fd/63``)."""
        return tuple(edge for edge in self.outputs(node) if edge.source_fd == fd)

    @functools.cached_property
    def _adjacency(self) -> tuple[dict[Node, tuple[Edge, ...]], dict[Node, tuple[Edge, ...]]]:
        """(edges by source, edges by target), each in the graph's order: built once, so that a long
        pipeline's lookups stay linear in all."""
        by_source: dict[Node, list[Edge]] = {}
        by_target: dict[Node, list[Edge]] = {}
        for edge in self.edges:
            by_source.setdefault(edge.source, []).append(edge)
            by_target.setdefault(edge.target, []).append(edge)
        return ({n: tuple(e) for n, e in by_source.items()}, {n: tuple(e) for n, e in by_target.items()})

    def last_stage(self) -> Stage | None:
        """The one stage writing the pipeline's output, if exactly one does (not a group's branches, nor a
        stage whose ``>(...)`` writes there too)."""
        writers = self.inputs(Boundary.STDOUT)
        if len(writers) != 1 or not isinstance(writers[0].source, int):
            return None
        last = writers[0].source
        if any(stage.writes_stdout_of == last for stage in self.stages):
            return None
        return self.stage(last)


def tree_prefixes(graph: Graph) -> dict[int, str]:
    """A prefix per stage that draws the graph's branches as a tree, for ``--explain`` and the view::

        1 a                 a | { { b ; c } | d ; e }
        ├─ ├─ 2 b
        │  └─ 3 c
        │  4 d
        └─ 5 e

    At each group level, the first stage of a branch gets ``├─`` (``└─`` in
    the group's last branch), and later stages ``│`` (or nothing in the last
    branch), so every branch's start is marked at every level it starts.
    """
    prefixes: dict[int, str] = {}
    started: set[tuple[tuple[int, int, int], ...]] = set()
    for stage in graph:
        parts = []
        for depth, (_, index, count) in enumerate(stage.branch):
            branch = stage.branch[: depth + 1]
            last = index == count - 1
            if branch in started:
                parts.append("   " if last else "│  ")
            else:
                parts.append("└─ " if last else "├─ ")
                started.add(branch)
        prefixes[stage.id] = "".join(parts)
    return prefixes

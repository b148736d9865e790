"""The parsed pipeline into a :class:`~ppipe.graph.Graph`: stages numbered, words expanded, edges joined.

The parser (:mod:`ppipe.language.parser`) reads the tokens into the tree of
:mod:`ppipe.language.tree`; this numbers its stages in text order, expands
their words (:mod:`ppipe.language.expansion`), gives each process
substitution its ``/dev/fd/N`` as bash numbers them, and joins the stages
with edges.
"""

from __future__ import annotations

import dataclasses

from ppipe.errors import PipelineSyntaxError
from ppipe.graph import FIRST_SUBSTITUTION_FD, Boundary, Edge, Graph, Redirect, RedirectOp, Stage
from ppipe.language.expansion import Expander, Lit, Piece
from ppipe.language.lexer import _REDIRECTIONS, Operator, ProcessSubstitution, Word
from ppipe.language.tree import RawGroup, RawPipeline, RawStage, RawSubstitution


class GraphBuilder:
    """Numbers the stages in text order and joins them with edges.

    ``a | X`` joins every stage whose output is ``a``'s (its *exits*) to
    every stage that reads ``X``'s input (its *entries*). A stage's exits
    and entries are itself; a group's are those of all its branches. So
    ``a | { b ; c } | d`` gives a→b, a→c (fan-out: each gets a full copy)
    and b→d, c→d (fan-in: lines merged whole).

    A stage holding process substitutions is numbered before them, and they
    after it in text order (``diff <(sort a) <(sort b)``: 1, 2, 3), so that
    "the rightmost failure" is a substitution's before its holder's. A
    ``<(P)``'s exits feed the holder's descriptor N (``/dev/fd/N``, numbered
    as bash numbers them: :func:`_substitution_fds`) and its entries read
    what the holder reads; a ``>(P)``'s entries are fed by the holder's N and
    its exits write where the holder's stdout goes, as in bash.
    """

    def __init__(self, text: str, expander: Expander) -> None:
        self.text = text
        self.expander = expander
        self.stages: dict[int, Stage] = {}
        self.next_id = 1
        self.edges: list[Edge] = []
        self.branch: tuple[tuple[int, int, int], ...] = ()
        self.groups = 0

    def build(self, raw: RawPipeline) -> Graph:
        entries, exits = self.pipeline(raw)
        inputs = [Edge(Boundary.STDIN, entry) for entry in entries]
        outputs = [Edge(exit_, Boundary.STDOUT) for exit_ in exits]
        inner = sorted(self.edges, key=lambda e: (e.source, e.target, e.source_fd, e.target_fd))
        stages = tuple(self.stages[i] for i in range(1, self.next_id))
        return Graph(text=self.text, stages=stages, edges=(*inputs, *inner, *outputs))

    def pipeline(self, raw: RawPipeline) -> tuple[list[int], list[int]]:
        entries, exits = self.element(raw.elements[0])
        for with_stderr, element in zip(raw.with_stderr, raw.elements[1:], strict=True):
            next_entries, next_exits = self.element(element)
            self.edges.extend(Edge(a, b, with_stderr) for a in exits for b in next_entries)
            exits = next_exits
        return entries, exits

    def element(self, raw: RawStage | RawGroup) -> tuple[list[int], list[int]]:
        if isinstance(raw, RawStage):
            return self.stage(raw)
        entries: list[int] = []
        exits: list[int] = []
        outer = self.branch
        group = self.new_group()
        for index, branch in enumerate(raw.branches):
            self.branch = (*outer, (group, index, len(raw.branches)))
            branch_entries, branch_exits = self.pipeline(branch)
            entries += branch_entries
            exits += branch_exits
        self.branch = outer
        return entries, exits

    def new_group(self) -> int:
        self.groups += 1
        return self.groups

    def stage(self, raw: RawStage) -> tuple[list[int], list[int]]:
        """The stage, then its substitutions' stages (drawn as a group of branches beneath it)."""
        holder = self.next_id
        self.next_id += 1
        fds = _substitution_fds(raw)
        outer = self.branch
        group = self.new_group() if raw.substitutions else 0
        for index, substitution in enumerate(raw.substitutions):
            self.branch = (*outer, (group, index, len(raw.substitutions)))
            self.substitution(holder, fds[substitution.start], substitution)
        self.branch = outer
        paths = {start: f"/dev/fd/{fd}" for start, fd in fds.items()}
        stage = _build_stage(holder, raw, self.text, self.expander, paths)
        self.stages[holder] = dataclasses.replace(stage, branch=outer)
        return [holder], [holder]

    def substitution(self, holder: int, fd: int, raw: RawSubstitution) -> None:
        entries, exits = self.pipeline(raw.pipeline)
        if raw.writes:
            self.edges.extend(Edge(holder, entry, source_fd=fd) for entry in entries)
            for exit_ in exits:
                self.stages[exit_] = dataclasses.replace(self.stages[exit_], writes_stdout_of=holder)
        else:
            self.edges.extend(Edge(exit_, holder, target_fd=fd) for exit_ in exits)
            for entry in entries:
                self.stages[entry] = dataclasses.replace(self.stages[entry], reads_stdin_of=holder)


def _substitution_fds(raw: RawStage) -> dict[int, int]:
    """Each substitution's descriptor, by where it starts: bash's order, the words' first, then the
    assignments', then the redirections' (``X=<(a) cmd <(b) < <(c)``: b 63, a 62, c 61)."""
    words = [piece.start for word in raw.words for piece in word.substitutions]
    assigned = [piece.start for word in raw.assignments for piece in word.substitutions]
    redirected = [piece.start for _, word in raw.redirects if word is not None for piece in word.substitutions]
    return {start: FIRST_SUBSTITUTION_FD - n for n, start in enumerate([*words, *assigned, *redirected])}


def _paths_filled(word: Word, paths: dict[int, str]) -> tuple[Piece, ...]:
    """The word's pieces, each process substitution replaced by its path: literal text, never split or globbed."""
    return tuple(
        Lit(paths[piece.start], quoted=True) if isinstance(piece, ProcessSubstitution) else piece
        for piece in word.pieces
    )


def _build_stage(stage_id: int, raw: RawStage, text: str, expander: Expander, paths: dict[int, str]) -> Stage:
    env: list[tuple[str, str]] = []
    for word in raw.assignments:
        pieces = _paths_filled(word, paths)
        first = pieces[0]
        assert isinstance(first, Lit)
        name, _, value_start = first.text.partition("=")
        value_pieces = ((Lit(value_start, quoted=False),) if value_start else ()) + pieces[1:]
        env.append((name, expander.assignment_value(value_pieces, assigned=dict(env))))
    argv = [field for word in raw.words for field in expander.fields(_paths_filled(word, paths))]
    redirects: list[Redirect] = []
    for op, target in raw.redirects:
        redirects.extend(_redirects(op, target, expander, paths))
    if not argv:
        word = raw.words[0]
        # bash runs nothing and succeeds here; ppipe refuses, as a stage that does nothing is a mistake
        raise PipelineSyntaxError(
            "the command expanded to nothing",
            text,
            word.start,
            word.end - word.start,
            "set the variable, or quote it to pass an empty name; a stage needs a command to run",
        )
    return Stage(
        stage_id, tuple(argv), tuple(env), tuple(redirects), raw.may_fail, source=text[raw.start : raw.end].strip()
    )


def _redirects(op: Operator, target: Word | None, expander: Expander, paths: dict[int, str]) -> list[Redirect]:
    assert target is not None
    default_fd, kind = _REDIRECTIONS[op.op]
    fd = default_fd if op.fd is None else op.fd
    if kind is RedirectOp.DUP:
        return [Redirect(fd, RedirectOp.DUP, source_fd=int(target.leading_text))]
    path, error = expander.redirect_target(_paths_filled(target, paths), target.start, target.end)
    if op.op.startswith("&"):
        return [Redirect(1, kind, path, error=error), Redirect(2, RedirectOp.DUP, source_fd=1)]
    return [Redirect(fd, kind, path, error=error)]

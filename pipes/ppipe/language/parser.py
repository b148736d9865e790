"""The pipeline language's parser: words and operators into a :class:`~ppipe.graph.Graph`.

A recursive-descent parser, one method per grammar rule: stages with their
``NAME=value`` assignments, redirections and the ``-`` opt-out marker,
``|`` / ``|&`` between stages, and ``{ a ; b }`` groups. Shard placeholders
are filled into the parsed words, never into the text, so they cannot
change how it parses. Expanding the words (variables, ``~``, globs) is
:mod:`ppipe.language.expansion`'s job; :func:`parse` ties it all together.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ppipe.errors import PipelineSyntaxError
from ppipe.graph import Boundary, Edge, Graph, Redirect, RedirectOp, Stage
from ppipe.language import reserved
from ppipe.language.expansion import Expander, Lit, fill_text
from ppipe.language.lexer import _ASSIGNMENT, _REDIRECTIONS, _SH_HINT, Lexer, Operator, Token, Word, is_brace

_PLACEHOLDER = re.compile(r"(?<!\$)\{(task_id|task_num|tasks)\}")

#: How deep groups may nest. The parser recurses once per level (four frames
#: a level), so a limit far below Python's recursion limit keeps a hostile
#: text a syntax error instead of a RecursionError; no real graph comes near.
MAX_GROUP_DEPTH = 100


@dataclass(frozen=True)
class _RawStage:
    """A stage before expansion."""

    assignments: tuple[Word, ...]
    words: tuple[Word, ...]
    redirects: tuple[tuple[Operator, Word | None], ...]
    may_fail: bool
    start: int
    end: int


@dataclass(frozen=True)
class _RawPipeline:
    """Elements joined by pipes; ``with_stderr[i]`` says whether the pipe after element ``i`` is ``|&``."""

    elements: tuple[_RawStage | _RawGroup, ...]
    with_stderr: tuple[bool, ...]


@dataclass(frozen=True)
class _RawGroup:
    """``{ a ; b | c }``: branches side by side, each reading a copy of the input, outputs merged."""

    branches: tuple[_RawPipeline, ...]
    start: int


class Parser:
    """Recursive descent over the tokens; one method per grammar rule::

        pipeline := element (('|' | '|&') element)*
        element  := group | stage
        group    := '{' pipeline (';' pipeline)* '}'
        stage    := ['-'] assignment* (word | redirection)+
        redirection := ('<' | '>' | '>>' | '&>' | '&>>' | '2>' | '2>>') word
                     | '2>&1' | '>&2'

    ``{`` and ``}`` are words of their own, as in sh; ``;`` is allowed only
    between a group's branches.
    """

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def error(self, message: str, start: int, width: int = 1, hint: str | None = None) -> PipelineSyntaxError:
        return Lexer(self.text).error(message, start, width, hint)

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def next(self) -> Token | None:
        token = self.peek()
        self.index += 1
        return token

    def pipeline(self) -> _RawPipeline:
        if not self.tokens:
            raise self.error("empty pipeline", 0, hint='give a command, e.g. ppipe "seq 3 | wc -l"')
        pipeline = self.branch()
        token = self.peek()
        if is_brace(token, "}"):
            assert token is not None
            raise self.error("'}' without a '{' to close", token.start, 1, "quote it to pass a literal brace: '}'")
        if token is not None:  # only ';' can stop a branch at the top
            raise self.error(
                "';' (a list of commands) is shell syntax ppipe does not run",
                token.start,
                1,
                f"ppipe runs one pipeline ({{ a ; b }} runs branches side by side); {_SH_HINT}",
            )
        return pipeline

    def branch(self) -> _RawPipeline:
        elements = [self.element(first=True)]
        with_stderr: list[bool] = []
        while isinstance(token := self.peek(), Operator) and token.op in ("|", "|&"):
            self.index += 1
            following = self.peek()
            if (
                following is None
                or is_brace(following, "}")
                or (isinstance(following, Operator) and following.op == ";")
            ):
                raise self.error(
                    f"'{token.op}' at the end leaves an empty stage",
                    token.start,
                    len(token.op),
                    "give the stage a command, or remove the trailing pipe",
                )
            with_stderr.append(token.op == "|&")
            elements.append(self.element())
        return _RawPipeline(tuple(elements), tuple(with_stderr))

    def element(self, first: bool = False) -> _RawStage | _RawGroup:
        return self.group() if is_brace(self.peek(), "{") else self.stage(first)

    def group(self) -> _RawGroup:
        opening = self.next()
        assert isinstance(opening, Word)
        self.depth += 1
        if self.depth > MAX_GROUP_DEPTH:
            raise self.error(f"groups nest more than {MAX_GROUP_DEPTH} deep, which is ppipe's limit", opening.start, 1)
        branches = [self.group_branch(opening)]
        while isinstance(token := self.peek(), Operator) and token.op == ";":
            self.index += 1
            branches.append(self.group_branch(opening))
        closing = self.next()
        if not is_brace(closing, "}"):
            raise self.error(
                "unclosed '{': a group ends with '}'",
                opening.start,
                1,
                "close it: { a ; b } — or quote a literal brace: '{'",
            )
        self.depth -= 1
        after = self.peek()
        if (
            after is not None
            and not (isinstance(after, Operator) and after.op in ("|", "|&", ";"))
            and not is_brace(after, "}")
        ):
            raise self.error(
                "a group is followed only by '|', '|&', ';' or '}'",
                after.start,
                max(1, after.end - after.start),
                "redirect inside the branches: { a > f ; b }",
            )
        return _RawGroup(tuple(branches), opening.start)

    def group_branch(self, opening: Word) -> _RawPipeline:
        token = self.peek()
        if token is None:
            raise self.error(
                "unclosed '{': a group ends with '}'",
                opening.start,
                1,
                "close it: { a ; b } — or quote a literal brace: '{'",
            )
        if is_brace(token, "}") or (isinstance(token, Operator) and token.op == ";"):
            what = (
                "an empty group"
                if is_brace(token, "}") and self.tokens[self.index - 1] is opening
                else "an empty branch"
            )
            raise self.error(
                f"{what}: each branch of a group needs a command", token.start, 1, "e.g. { grep a ; grep b }"
            )
        return self.branch()

    def stage(self, first_in_pipeline: bool = False) -> _RawStage:
        first = self.peek()
        start = first.start if first else len(self.text)
        may_fail = self.opt_out_marker()
        assignments: list[Word] = []
        words: list[Word] = []
        redirects: list[tuple[Operator, Word | None]] = []
        while (token := self.peek()) is not None:
            if isinstance(token, Operator) and token.op in ("|", "|&", ";"):
                break
            if is_brace(token, "}"):
                if self.depth:
                    break  # the end of the group this stage is in
                raise self.error("'}' without a '{' to close", token.start, 1, "quote it to pass a literal brace: '}'")
            if is_brace(token, "{") and words:
                raise self.error(
                    "'{' starts a group only at the start of a stage",
                    token.start,
                    1,
                    "quote it to pass a literal brace: '{'",
                )
            if is_brace(token, "{"):
                raise self.error(
                    "a group takes no NAME=value, redirection or '-' of its own",
                    token.start,
                    1,
                    "put them on the stages inside it: { -a < f ; NAME=v b }",
                )
            self.index += 1
            if isinstance(token, Operator):
                redirects.append(self.redirection(token))
            elif not words and _ASSIGNMENT.match(token.leading_text):
                assignments.append(token)
            else:
                if not words and not assignments and not redirects:
                    self.reserved_word(token, first_in_pipeline)
                words.append(token)
        end = self.tokens[self.index - 1].end if self.index else start
        if not words:
            self.empty_stage(start, redirects, assignments)
        return _RawStage(tuple(assignments), tuple(words), tuple(redirects), may_fail, start, end)

    def reserved_word(self, word: Word, first_in_pipeline: bool) -> None:
        """Refuses a shell reserved word at a command's start; see :mod:`ppipe.language.reserved`."""
        refusal = reserved.refusal(word, first_in_pipeline)
        if refusal is not None:
            message, hint = refusal
            raise self.error(message, word.start, word.end - word.start, hint)

    def opt_out_marker(self) -> bool:
        """Consumes a leading unquoted ``-`` on the stage's first word (Make's "ignore errors")."""
        token = self.peek()
        if not isinstance(token, Word) or not token.leading_text.startswith("-"):
            return False
        first = token.pieces[0]
        assert isinstance(first, Lit)
        rest = Lit(first.text[1:], quoted=False)
        pieces = ((rest,) if rest.text else ()) + token.pieces[1:]
        if pieces:
            self.tokens[self.index] = Word(pieces, token.start + 1, token.end)
        else:
            self.index += 1  # a lone '-' word: the marker stands by itself
        return True

    def empty_stage(self, start: int, redirects: list[tuple[Operator, Word | None]], assignments: list[Word]) -> None:
        token = self.peek()
        if redirects or assignments:
            raise self.error(
                "this stage has no command",
                start,
                1,
                "ppipe runs commands; a stage of only redirections or assignments does nothing",
            )
        where = token.start if token else start
        width = len(token.op) if isinstance(token, Operator) else 1
        raise self.error("empty stage: a pipe needs a command on each side", where, width)

    def redirection(self, token: Operator) -> tuple[Operator, Word | None]:
        if token.op == ">&":
            target = self.next()
            if isinstance(target, Word) and target.leading_text in ("1", "2") and len(target.pieces) == 1:
                return token, target
            where = target.start if target else token.end
            raise self.error("'>&' must be followed by 1 or 2, as in 2>&1", where)
        target = self.peek()
        if not isinstance(target, Word):
            where = target.start if target else len(self.text)
            width = len(target.op) if isinstance(target, Operator) else 1
            raise self.error(f"'{self.text[token.start : token.end]}' needs a file name after it", where, width)
        self.index += 1
        return token, target


def placeholder_values(task_id: int, tasks: int) -> dict[str, str]:
    """A shard's placeholder values, for ``parse(..., placeholders=...)``.

    ``{task_id}`` counts from 0, ``{task_num}`` from 1, ``{tasks}`` is the
    shard count: shard 2 of 8 gets ``{"task_id": "2", "task_num": "3", "tasks": "8"}``.
    """
    return {"task_id": str(task_id), "task_num": str(task_id + 1), "tasks": str(tasks)}


def substitute_placeholders(text: str, task_id: int, tasks: int) -> str:
    """The pipeline text with a shard's placeholders filled in, *for showing it* (reports, messages).

    Only ``{task_id}``, ``{task_num}`` and ``{tasks}`` are replaced, so
    ``awk '{print $1}'`` is untouched; ``${task_id}`` stays a variable
    reference. Never parse the result: text-level substitution can change
    how the text parses (``{task_id}>f`` would become ``0>f``, a redirection
    of stdin). To run a shard, use ``parse(text, placeholders=placeholder_values(task_id, tasks))``,
    which substitutes into the parsed words.
    """
    return fill_text(text, placeholder_values(task_id, tasks))


def has_placeholders(text: str) -> bool:
    """True when the text uses a placeholder that says which task of a job array this is."""
    return bool(_PLACEHOLDER.search(text))


def uses_slot(text: str) -> bool:
    """True when the text uses ``{slot}``, which only a shard running in a local slot has."""
    return bool(_SLOT.search(text))


_SLOT = re.compile(r"(?<!\$)\{slot\}")

#: Every placeholder a sharded run fills in (``{item}`` with ``--each``; ``{slot}`` in local slots).
PLACEHOLDERS = ("task_id", "task_num", "tasks", "item", "slot")
_BRACED_WORD = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def misspelt_placeholders(text: str) -> list[tuple[str, str]]:
    """``{word}`` s one edit away from a placeholder (``{task_idd}``, ``{itme}``), each with the one meant.

    Such a word passes as text, so a sharded run would quietly run every
    shard on the same literal; the CLI warns instead. One edit: a letter
    added, dropped, changed, or two neighbours swapped.
    """
    found = []
    for name in dict.fromkeys(_BRACED_WORD.findall(text)):
        meant = next((p for p in PLACEHOLDERS if p != name and _one_edit_apart(name, p)), None)
        if meant is not None:
            found.append((name, meant))
    return found


def _one_edit_apart(a: str, b: str) -> bool:
    if len(a) == len(b):
        differ = [i for i in range(len(a)) if a[i] != b[i]]
        if len(differ) != 2:
            return len(differ) == 1
        first, second = differ
        return second == first + 1 and (a[first], a[second]) == (b[second], b[first])
    if abs(len(a) - len(b)) > 1:
        return False
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def parse(
    text: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    placeholders: Mapping[str, str] | None = None,
) -> Graph:
    """Parses and expands pipeline text into a :class:`~ppipe.graph.Graph`.

    ``env`` (default: ``os.environ``) supplies ``$NAME`` values and ``~``;
    globs are matched in ``cwd`` (default: the current directory). Raises
    :class:`~ppipe.errors.PipelineSyntaxError` (with the column) for text
    that cannot be run.

    ``placeholders`` (a shard's :func:`placeholder_values`) fills ``{name}``
    for each name it holds. The text is lexed and parsed as written first,
    so the values never change how it parses; they are then put into the
    words' literal text (argv, ``NAME=value`` values, redirection targets),
    quoted or not, before globs are matched (``cat part{task_id}/*`` lists
    the shard's own directory), and never into what ``$VAR`` expanded to.
    ``Graph.text`` and each ``Stage.source`` stay as written: filled-in
    text can read differently (``{task_id}>f`` would show as ``0>f``).
    """
    tokens = Lexer(text).tokens()
    raw = Parser(text, tokens).pipeline()
    expander = Expander(text, os.environ if env is None else env, cwd, placeholders)
    return _GraphBuilder(text, expander).build(raw)


class _GraphBuilder:
    """Numbers the stages in text order and joins them with edges.

    ``a | X`` joins every stage whose output is ``a``'s (its *exits*) to
    every stage that reads ``X``'s input (its *entries*). A stage's exits
    and entries are itself; a group's are those of all its branches. So
    ``a | { b ; c } | d`` gives a→b, a→c (fan-out: each gets a full copy)
    and b→d, c→d (fan-in: lines merged whole).
    """

    def __init__(self, text: str, expander: Expander) -> None:
        self.text = text
        self.expander = expander
        self.stages: list[Stage] = []
        self.edges: list[Edge] = []
        self.branch: tuple[tuple[int, int, int], ...] = ()
        self.groups = 0

    def build(self, raw: _RawPipeline) -> Graph:
        entries, exits = self.pipeline(raw)
        inputs = [Edge(Boundary.STDIN, entry) for entry in entries]
        outputs = [Edge(exit_, Boundary.STDOUT) for exit_ in exits]
        inner = sorted(self.edges, key=lambda e: (e.source, e.target))
        return Graph(text=self.text, stages=tuple(self.stages), edges=(*inputs, *inner, *outputs))

    def pipeline(self, raw: _RawPipeline) -> tuple[list[int], list[int]]:
        entries, exits = self.element(raw.elements[0])
        for with_stderr, element in zip(raw.with_stderr, raw.elements[1:], strict=True):
            next_entries, next_exits = self.element(element)
            self.edges.extend(Edge(a, b, with_stderr) for a in exits for b in next_entries)
            exits = next_exits
        return entries, exits

    def element(self, raw: _RawStage | _RawGroup) -> tuple[list[int], list[int]]:
        if isinstance(raw, _RawStage):
            stage = dataclasses.replace(
                _build_stage(len(self.stages) + 1, raw, self.text, self.expander), branch=self.branch
            )
            self.stages.append(stage)
            return [stage.id], [stage.id]
        entries: list[int] = []
        exits: list[int] = []
        outer = self.branch
        self.groups += 1
        group = self.groups
        for index, branch in enumerate(raw.branches):
            self.branch = (*outer, (group, index, len(raw.branches)))
            branch_entries, branch_exits = self.pipeline(branch)
            entries += branch_entries
            exits += branch_exits
        self.branch = outer
        return entries, exits


def _build_stage(stage_id: int, raw: _RawStage, text: str, expander: Expander) -> Stage:
    env: list[tuple[str, str]] = []
    for word in raw.assignments:
        first = word.pieces[0]
        assert isinstance(first, Lit)
        name, _, value_start = first.text.partition("=")
        value_pieces = ((Lit(value_start, quoted=False),) if value_start else ()) + word.pieces[1:]
        env.append((name, expander.assignment_value(value_pieces, assigned=dict(env))))
    argv = [field for word in raw.words for field in expander.fields(word.pieces)]
    redirects: list[Redirect] = []
    for op, target in raw.redirects:
        redirects.extend(_redirects(op, target, expander))
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


def _redirects(op: Operator, target: Word | None, expander: Expander) -> list[Redirect]:
    assert target is not None
    default_fd, kind = _REDIRECTIONS[op.op]
    fd = default_fd if op.fd is None else op.fd
    if kind is RedirectOp.DUP:
        return [Redirect(fd, RedirectOp.DUP, source_fd=int(target.leading_text))]
    path, error = expander.redirect_target(target.pieces, target.start, target.end)
    if op.op.startswith("&"):
        return [Redirect(1, kind, path, error=error), Redirect(2, RedirectOp.DUP, source_fd=1)]
    return [Redirect(fd, kind, path, error=error)]

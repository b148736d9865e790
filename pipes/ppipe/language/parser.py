"""The pipeline language's parser: words and operators into a :class:`~ppipe.graph.Graph`.

A recursive-descent parser, one method per grammar rule: stages with their
``NAME=value`` assignments, redirections and the ``-`` opt-out marker,
``|`` / ``|&`` between stages, ``{ a ; b }`` groups, and the pipelines of
process substitutions (``<(...)``, ``>(...)``) in words. Shard placeholders
are filled into the parsed words, never into the text, so they cannot
change how it parses. Expanding the words (variables, ``~``, globs) is
:mod:`ppipe.language.expansion`'s job; :func:`parse` ties it all together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from ppipe.errors import PipelineSyntaxError
from ppipe.graph import MAX_SUBSTITUTIONS, Graph, RedirectOp
from ppipe.language import reserved
from ppipe.language.builder import GraphBuilder
from ppipe.language.expansion import Expander, Lit, fill_text
from ppipe.language.lexer import (
    _ASSIGNMENT,
    _REDIRECTIONS,
    _SH_HINT,
    Lexer,
    Operator,
    ProcessSubstitution,
    Token,
    Word,
    is_brace,
)
from ppipe.language.tree import RawGroup, RawPipeline, RawStage, RawSubstitution

_PLACEHOLDER = re.compile(r"(?<!\$)\{(task_id|task_num|tasks)\}")

#: How deep groups may nest. The parser recurses once per level (four frames
#: a level), so a limit far below Python's recursion limit keeps a hostile
#: text a syntax error instead of a RecursionError; no real graph comes near.
MAX_GROUP_DEPTH = 100


class Parser:
    """Recursive descent over the tokens; one method per grammar rule::

        pipeline := element (('|' | '|&') element)*
        element  := group | stage
        group    := '{' pipeline (';' pipeline)* '}'
        stage    := ['-'] assignment* (word | redirection)+
        redirection := ('<' | '>' | '>>' | '&>' | '&>>' | '2>' | '2>>') word
                     | '2>&1' | '>&2'
        word     := (text | substitution)+
        substitution := ('<(' | '>(') pipeline ')'

    ``{`` and ``}`` are words of their own, as in sh; ``;`` is allowed only
    between a group's branches. A substitution's tokens come from the lexer
    inside its word; a parser of their own (one level deeper) reads them.
    """

    def __init__(self, text: str, tokens: list[Token], depth: int = 0, substituted: bool = False) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        #: How deep in groups and process substitutions the tokens are: both recurse.
        self.depth = depth
        #: Whether the tokens are a process substitution's (a stage then also ends at a group's '}').
        self.substituted = substituted

    def error(self, message: str, start: int, width: int = 1, hint: str | None = None) -> PipelineSyntaxError:
        return Lexer(self.text).error(message, start, width, hint)

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def next(self) -> Token | None:
        token = self.peek()
        self.index += 1
        return token

    def pipeline(self) -> RawPipeline:
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

    def branch(self) -> RawPipeline:
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
        return RawPipeline(tuple(elements), tuple(with_stderr))

    def element(self, first: bool = False) -> RawStage | RawGroup:
        return self.group() if is_brace(self.peek(), "{") else self.stage(first)

    def group(self) -> RawGroup:
        opening = self.next()
        assert isinstance(opening, Word)
        self.depth += 1
        if self.depth > MAX_GROUP_DEPTH:
            what = "groups and process substitutions" if self.substituted else "groups"
            raise self.error(f"{what} nest more than {MAX_GROUP_DEPTH} deep, which is ppipe's limit", opening.start, 1)
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
        return RawGroup(tuple(branches), opening.start)

    def group_branch(self, opening: Word) -> RawPipeline:
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

    def stage(self, first_in_pipeline: bool = False) -> RawStage:
        first = self.peek()
        start = first.start if first else len(self.text)
        may_fail = self.opt_out_marker()
        assignments: list[Word] = []
        words: list[Word] = []
        redirects: list[tuple[Operator, Word | None]] = []
        substitutions: list[RawSubstitution] = []
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
                redirection = self.redirection(token)
                redirects.append(redirection)
                substitutions += self.substitutions(redirection[1])
            elif not words and _ASSIGNMENT.match(token.leading_text):
                assignments.append(token)
                substitutions += self.substitutions(token)
            else:
                if not words and not assignments and not redirects:
                    self.reserved_word(token, first_in_pipeline)
                if not words:
                    self.command_name(token)
                words.append(token)
                substitutions += self.substitutions(token)
        end = self.tokens[self.index - 1].end if self.index else start
        if not words:
            self.empty_stage(start, redirects, assignments)
        if len(substitutions) > MAX_SUBSTITUTIONS:
            extra = sorted(substitutions, key=lambda s: s.start)[MAX_SUBSTITUTIONS]
            raise self.error(
                f"a command takes at most {MAX_SUBSTITUTIONS} process substitutions (/dev/fd/63 down to /dev/fd/3)",
                extra.start,
                2,
            )
        ordered = tuple(sorted(substitutions, key=lambda s: s.start))
        return RawStage(tuple(assignments), tuple(words), tuple(redirects), may_fail, start, end, ordered)

    def substitutions(self, word: Word | None) -> list[RawSubstitution]:
        """The process substitutions of a word, each parsed: ``substitution := ('<(' | '>(') pipeline ')'``."""
        return [self.substitution(piece) for piece in word.substitutions] if word is not None else []

    def substitution(self, piece: ProcessSubstitution) -> RawSubstitution:
        if not piece.tokens:
            raise self.error(
                "an empty process substitution: it needs a command",
                piece.start,
                piece.end - piece.start,
                "e.g. diff <(sort a.txt) <(sort b.txt)",
            )
        inner = Parser(self.text, list(piece.tokens), self.depth + 1, substituted=True)
        return RawSubstitution(piece.writes, inner.pipeline(), piece.start)

    def command_name(self, word: Word) -> None:
        """Refuses a process substitution in a command's name: ppipe runs programs it finds before any starts."""
        if word.substitutions:
            where = word.substitutions[0]
            raise self.error(
                "a process substitution cannot be a command's name",
                where.start,
                where.end - where.start,
                "put the command first: cat <(...)",
            )

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
        self.substitution_direction(token, target)
        return token, target

    def substitution_direction(self, token: Operator, target: Word) -> None:
        """``< <(...)`` reads a substitution and ``> >(...)`` writes one; the other way round is a mistake."""
        if len(target.pieces) != 1 or not isinstance(piece := target.pieces[0], ProcessSubstitution):
            return
        reads = _REDIRECTIONS[token.op][1] is RedirectOp.READ
        if reads == piece.writes:
            wanted = "< <(...)" if reads else "> >(...)"
            what = "written into, not read" if piece.writes else "read, not written into"
            raise self.error(
                f"a '{'>(' if piece.writes else '<('}...)' is {what}", piece.start, 2, f"redirect as {wanted}"
            )


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
    return GraphBuilder(text, expander).build(raw)

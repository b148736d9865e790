"""The pipeline language: a lexer and a recursive-descent parser.

The lexer follows POSIX shell quoting (single quotes, double quotes with
backslash escapes, backslash escapes) and turns the text into words and
operators. Every piece of shell syntax that ppipe does not run — lists
(``;``, ``&&``, ``||``, ``&``), command substitution, subshells,
here-documents, process substitution — is rejected *here*, with the column,
so that no operator is ever passed on as an argument.

The parser then builds stages from words: ``NAME=value`` assignments,
redirections, the ``-`` opt-out marker, and ``|`` / ``|&`` between stages.
Expanding the words (variables, ``~``, globs) is :mod:`ppipe.expansion`'s
job; :func:`parse` ties the two together.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import PipelineSyntaxError
from .expansion import Expander, Lit, Piece, Tilde, Var, fill_text
from .graph import Boundary, Edge, Graph, Redirect, RedirectOp, Stage

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_PLACEHOLDER = re.compile(r"(?<!\$)\{(task_id|task_num|tasks)\}")
_SPECIAL_PARAMETERS = set("0123456789@*#?$!-")
_WORD_BREAK = set(" \t\n|&;<>()")
#: A run of plain word characters: nothing that breaks a word, quotes, escapes or expands.
_PLAIN = re.compile(r"[^ \t\n|&;<>()'\"\\$`]+")
_IO_NUMBER = re.compile(r"[0-9]+(?=[<>])")  # ASCII digits only: '\d' takes any script's digits
_TILDE = re.compile(r"~([A-Za-z0-9_.-]*)(?=/|$|[ \t\n|&;<>()])")
_SH_HINT = "run it as a stage: sh -c '...'"
#: How deep groups may nest. The parser recurses once per level (four frames
#: a level), so a limit far below Python's recursion limit keeps a hostile
#: text a syntax error instead of a RecursionError; no real graph comes near.
MAX_GROUP_DEPTH = 100


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Word:
    """A word before expansion: its pieces, and where it starts and ends."""

    pieces: tuple[Piece, ...]
    start: int
    end: int

    @property
    def leading_text(self) -> str:
        """The unquoted literal text the word begins with ('' if it begins quoted)."""
        first = self.pieces[0] if self.pieces else None
        return first.text if isinstance(first, Lit) and not first.quoted else ""


@dataclass(frozen=True)
class Operator:
    """``|``, ``|&`` or a redirection operator; ``fd`` is set for redirections."""

    op: str
    start: int
    end: int
    fd: int | None = None


Token = Word | Operator

#: Redirection operators → (the fd they redirect when no number is written, what they do)
_REDIRECTIONS = {
    "<": (0, RedirectOp.READ),
    ">": (1, RedirectOp.WRITE),
    ">>": (1, RedirectOp.APPEND),
    ">&": (1, RedirectOp.DUP),
    "&>": (1, RedirectOp.WRITE),
    "&>>": (1, RedirectOp.APPEND),
}


class Lexer:
    """Turns pipeline text into :class:`Word` and :class:`Operator` tokens."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str, start: int, width: int = 1, hint: str | None = None) -> PipelineSyntaxError:
        if hint:
            hint = hint.replace(_SH_HINT, f"run it as a stage: sh -c {shlex.quote(self.text.strip())}")
        return PipelineSyntaxError(message, self.text, start, width, hint)

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def tokens(self) -> list[Token]:
        result: list[Token] = []
        while True:
            newline = self.skip_blanks()
            if self.pos >= len(self.text):
                return result
            if (
                newline is not None
                and result
                and isinstance(result[-1], Word)
                and not _is_brace(result[-1], "{")
                and not re.match(r"\}(\s|$)", self.text[self.pos : self.pos + 2])
            ):
                # After a word a newline ends a command, as ';' does; after
                # '|' or a group's '{', or before its '}', it is only layout.
                raise self.error(
                    "a newline between commands is a list of commands, which ppipe does not run",
                    newline,
                    1,
                    f"end the line with '|' to continue the pipeline; {_SH_HINT}",
                )
            result.append(self.operator() or self.word())

    def skip_blanks(self) -> int | None:
        """Skips blanks, line continuations and comments; returns the column of the first newline skipped."""
        newline = None
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t":
                self.pos += 1
            elif c == "\n":
                newline = self.pos if newline is None else newline
                self.pos += 1
            elif c == "\\" and self.peek(1) == "\n":
                self.pos += 2
            elif c == "#":
                # A comment runs to the end of the line, as in a shell.
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                break
        return newline

    # -- operators

    def operator(self) -> Operator | None:
        start = self.pos
        fd = self.io_number()
        c = self.peek()
        if fd is not None and c not in "<>":
            return None
        if c == "|":
            return self.pipe(start)
        if c in "<>" or (c == "&" and self.peek(1) == ">"):
            return self.redirection(start, fd)
        if c == "&":
            if self.peek(1) == "&":
                raise self.error(
                    "'&&' (run if the previous command succeeded) is shell syntax ppipe does not run",
                    start,
                    2,
                    f"ppipe runs one pipeline; {_SH_HINT}",
                )
            raise self.error(
                "'&' (run in the background) is shell syntax ppipe does not run",
                start,
                1,
                f"ppipe runs one pipeline; {_SH_HINT}",
            )
        if c == ";":
            if self.peek(1) == ";":
                raise self.error("';;' is shell syntax ppipe does not run", start, 2, _SH_HINT)
            self.pos += 1
            return Operator(";", start, self.pos)  # separates a group's branches; the parser rejects it elsewhere
        if c in "()":
            raise self.error(f"'{c}' (a subshell) is shell syntax ppipe does not run", start, 1, _SH_HINT)
        return None

    def io_number(self) -> int | None:
        """Reads a leading ``1``/``2`` glued to ``>``/``<`` (``2>``); restores the position otherwise."""
        match = _IO_NUMBER.match(self.text, self.pos)
        if not match:
            return None
        digits = match.group()
        fd = int(digits) if len(digits.lstrip("0")) <= 1 else 3  # int() of thousands of digits would refuse
        if fd > 2:
            raise self.error(
                f"file descriptor {_shortened(digits)} cannot be redirected; ppipe handles 0, 1 and 2",
                self.pos,
                len(digits),
            )
        self.pos += len(match.group())
        return fd

    def pipe(self, start: int) -> Operator:
        if self.peek(1) == "|":
            raise self.error(
                "'||' (run if the previous command failed) is shell syntax ppipe does not run; "
                "an empty stage is not allowed either",
                start,
                2,
                f"ppipe runs one pipeline; {_SH_HINT}",
            )
        if self.peek(1) == "&":
            self.pos += 2
            return Operator("|&", start, self.pos)
        self.pos += 1
        return Operator("|", start, self.pos)

    def redirection(self, start: int, fd: int | None) -> Operator:
        rest = self.text[self.pos : self.pos + 3]  # the longest operator; never a copy of the whole rest
        if rest.startswith(("<<", "<>", "<&", "<(", ">(", ">|")):
            what = {
                "<<": "a here-document",
                "<>": "'<>' (open for reading and writing)",
                "<&": "'<&' (duplicate an input)",
                "<(": "process substitution",
                ">(": "process substitution",
                ">|": "'>|' (override noclobber)",
            }[rest[:2]]
            raise self.error(f"{what} is shell syntax ppipe does not run", start, self.pos - start + 2, _SH_HINT)
        for op in ("&>>", "&>", ">>", ">&", ">", "<"):
            if rest.startswith(op):
                if fd is not None and op.startswith("&"):
                    raise self.error(f"'{fd}{op}' is not a redirection ppipe knows", start, self.pos - start + len(op))
                self.pos += len(op)
                return Operator(op, start, self.pos, fd)
        raise AssertionError("unreachable: caller checked for < or >")  # pragma: no cover

    # -- words

    def word(self) -> Word:
        start = self.pos
        pieces: list[Piece] = []
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in _WORD_BREAK:
                break
            if c == "'":
                pieces.append(self.single_quoted())
            elif c == '"':
                pieces.extend(self.double_quoted())
            elif c == "\\":
                pieces.append(self.escaped())
            elif c == "$":
                pieces.append(self.dollar(quoted=False))
            elif c == "`":
                raise self.error(
                    "backticks (command substitution) are shell syntax ppipe does not run", self.pos, 1, _SH_HINT
                )
            elif c == "~" and self.pos == start:
                pieces.append(self.tilde())
            else:
                pieces.append(self.plain())
        return Word(tuple(_merge(pieces)), start, self.pos)

    def plain(self) -> Lit:
        start = self.pos
        match = _PLAIN.match(self.text, start)
        assert match is not None, "word() calls plain() only on a plain character"
        self.pos = match.end()
        return Lit(self.text[start : self.pos], quoted=False)

    def tilde(self) -> Piece:
        match = _TILDE.match(self.text, self.pos)
        if not match:
            return self.plain()
        self.pos += len(match.group())
        return Tilde(match.group(1))

    def single_quoted(self) -> Lit:
        start = self.pos
        end = self.text.find("'", start + 1)
        if end < 0:
            raise self.error("unclosed single quote", start)
        self.pos = end + 1
        return Lit(self.text[start + 1 : end], quoted=True)

    def double_quoted(self) -> list[Piece]:
        start = self.pos
        self.pos += 1
        pieces: list[Piece] = [Lit("", quoted=True)]  # "" is an empty word, not nothing
        buf: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.error("unclosed double quote", start)
            c = self.text[self.pos]
            if c == '"':
                self.pos += 1
                break
            if c == "\\" and self.peek(1) in '$`"\\\n':
                if self.peek(1) != "\n":
                    buf.append(self.peek(1))
                self.pos += 2
            elif c == "$":
                pieces.append(Lit("".join(buf), quoted=True))
                buf = []
                pieces.append(self.dollar(quoted=True))
            elif c == "`":
                raise self.error(
                    "backticks (command substitution) are shell syntax ppipe does not run", self.pos, 1, _SH_HINT
                )
            else:
                buf.append(c)
                self.pos += 1
        pieces.append(Lit("".join(buf), quoted=True))
        return pieces

    def escaped(self) -> Lit:
        nxt = self.peek(1)
        if nxt == "\n":  # line continuation
            self.pos += 2
            return Lit("", quoted=False)
        if nxt == "":  # a trailing backslash stays, as in bash
            self.pos += 1
            return Lit("\\", quoted=True)
        self.pos += 2
        return Lit(nxt, quoted=True)

    def dollar(self, quoted: bool) -> Piece:
        start = self.pos
        nxt = self.peek(1)
        if nxt == "(":
            what = "arithmetic expansion" if self.peek(2) == "(" else "command substitution"
            raise self.error(f"'$(' ({what}) is shell syntax ppipe does not run", start, 2, _SH_HINT)
        if nxt == "{":
            end = self.text.find("}", start)
            inner = self.text[start + 2 : end] if end >= 0 else ""
            if end < 0:
                raise self.error("unclosed '${'", start, 2)
            if not _NAME.fullmatch(inner):
                raise self.error(
                    f"'${{{_shortened(inner)}}}' is a parameter expansion ppipe does not support; "
                    "only $NAME and ${NAME}",
                    start,
                    end + 1 - start,
                    _SH_HINT,
                )
            self.pos = end + 1
            return Var(inner, quoted, start)
        match = _NAME.match(self.text, self.pos + 1)
        if match:
            self.pos = match.end()
            return Var(match.group(), quoted, start)
        if nxt and nxt in _SPECIAL_PARAMETERS:
            raise self.error(f"'${nxt}' is a shell special parameter ppipe does not support", start, 2, _SH_HINT)
        if nxt in ("'", '"') and not quoted:
            raise self.error(f"'${nxt}...' quoting is shell syntax ppipe does not support", start, 2)
        self.pos += 1
        return Lit("$", quoted=True)  # a lone $ is literal, as in bash


def _shortened(text: str, limit: int = 20) -> str:
    """``text`` for a message: cut to ``limit`` characters with '...', so a huge input makes a short line."""
    return text if len(text) <= limit else text[:limit] + "..."


def _merge(pieces: list[Piece]) -> list[Piece]:
    """Joins adjacent literals of the same quoting, so words compare simply; drops empty unquoted ones.

    Each run is joined once (not appended to piece by piece), so a word of
    a million escaped characters costs linear time.
    """
    if len(pieces) == 1 and not (isinstance(pieces[0], Lit) and not pieces[0].quoted and not pieces[0].text):
        return pieces  # the common case: a plain word
    kept = (piece for piece in pieces if not (isinstance(piece, Lit) and not piece.quoted and not piece.text))
    merged: list[Piece] = []
    for quoting, run in itertools.groupby(kept, key=lambda piece: piece.quoted if isinstance(piece, Lit) else None):
        if quoting is None:
            merged.extend(run)
        else:
            merged.append(Lit("".join(piece.text for piece in run if isinstance(piece, Lit)), quoting))
    return merged


# ---------------------------------------------------------------- parser


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


def _is_brace(token: Token | None, brace: str) -> bool:
    """An unquoted ``{`` or ``}`` standing as a word of its own (``{a,b}``, ``'{'`` and ``{}`` are not)."""
    return (
        isinstance(token, Word)
        and len(token.pieces) == 1
        and isinstance(token.pieces[0], Lit)
        and not token.pieces[0].quoted
        and token.pieces[0].text == brace
    )


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
        if _is_brace(token, "}"):
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
        elements = [self.element()]
        with_stderr: list[bool] = []
        while isinstance(token := self.peek(), Operator) and token.op in ("|", "|&"):
            self.index += 1
            following = self.peek()
            if (
                following is None
                or _is_brace(following, "}")
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

    def element(self) -> _RawStage | _RawGroup:
        return self.group() if _is_brace(self.peek(), "{") else self.stage()

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
        if not _is_brace(closing, "}"):
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
            and not _is_brace(after, "}")
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
        if _is_brace(token, "}") or (isinstance(token, Operator) and token.op == ";"):
            what = (
                "an empty group"
                if _is_brace(token, "}") and self.tokens[self.index - 1] is opening
                else "an empty branch"
            )
            raise self.error(
                f"{what}: each branch of a group needs a command", token.start, 1, "e.g. { grep a ; grep b }"
            )
        return self.branch()

    def stage(self) -> _RawStage:
        first = self.peek()
        start = first.start if first else len(self.text)
        may_fail = self.opt_out_marker()
        assignments: list[Word] = []
        words: list[Word] = []
        redirects: list[tuple[Operator, Word | None]] = []
        while (token := self.peek()) is not None:
            if isinstance(token, Operator) and token.op in ("|", "|&", ";"):
                break
            if _is_brace(token, "}"):
                if self.depth:
                    break  # the end of the group this stage is in
                raise self.error("'}' without a '{' to close", token.start, 1, "quote it to pass a literal brace: '}'")
            if _is_brace(token, "{") and words:
                raise self.error(
                    "'{' starts a group only at the start of a stage",
                    token.start,
                    1,
                    "quote it to pass a literal brace: '{'",
                )
            if _is_brace(token, "{"):
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
                words.append(token)
        end = self.tokens[self.index - 1].end if self.index else start
        if not words:
            self.empty_stage(start, redirects, assignments)
        if words and words[0].leading_text == "!":
            raise self.error(
                "'!' (negate the status) is shell syntax ppipe does not run",
                words[0].start,
                1,
                "to excuse a stage's failure, prefix it with '-', e.g. -grep x",
            )
        return _RawStage(tuple(assignments), tuple(words), tuple(redirects), may_fail, start, end)

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


# ---------------------------------------------------------------- parse()


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
    """True when the text uses a shard placeholder."""
    return bool(_PLACEHOLDER.search(text))


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
    env = []
    for word in raw.assignments:
        first = word.pieces[0]
        assert isinstance(first, Lit)
        name, _, value_start = first.text.partition("=")
        value_pieces = ((Lit(value_start, quoted=False),) if value_start else ()) + word.pieces[1:]
        env.append((name, expander.assignment_value(value_pieces)))
    argv = [field for word in raw.words for field in expander.fields(word.pieces)]
    redirects: list[Redirect] = []
    for op, target in raw.redirects:
        redirects.extend(_redirects(op, target, expander))
    if not argv:
        word = raw.words[0]
        raise PipelineSyntaxError("the command expanded to nothing", text, word.start, word.end - word.start)
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

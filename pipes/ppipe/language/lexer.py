"""The pipeline language's lexer: POSIX shell quoting into words and operators.

Single quotes, double quotes with backslash escapes, backslash escapes.
A process substitution (``<(...)``, ``>(...)``) is a piece of a word, as in
bash (``--file=<(sort a)`` is one word), holding the tokens of the pipeline
it runs, lexed by the same rules up to its ``)``. Every piece of shell syntax
that ppipe does not run (lists, command substitution, subshells,
here-documents) is rejected *here*, with the column, so that no operator is
ever passed on as an argument.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass

from ppipe.errors import PipelineSyntaxError
from ppipe.graph import RedirectOp
from ppipe.language.expansion import Lit, Piece, Tilde, Var

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]+")

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")

_SPECIAL_PARAMETERS = set("0123456789@*#?$!-")

_WORD_BREAK = set(" \t\n|&;<>()")

#: A run of plain word characters: nothing that breaks a word, quotes, escapes or expands.
_PLAIN = re.compile(r"[^ \t\n|&;<>()'\"\\$`]+")

# ASCII digits only ('\d' takes any script's digits); '2<(x)' is a word, as in bash
_IO_NUMBER = re.compile(r"[0-9]+(?=[<>](?!\())")

_TILDE = re.compile(r"~([A-Za-z0-9_.-]*)(?=/|$|[ \t\n|&;<>()])")

_SH_HINT = "run it as a stage: sh -c '...'"

#: How deep process substitutions nest (``<(a <(b ...))``): the lexer and the parser recurse once
#: a level, so a limit far below Python's recursion limit keeps a hostile text a syntax error.
MAX_SUBSTITUTION_DEPTH = 50


@dataclass(frozen=True)
class ProcessSubstitution:
    """``<(...)`` (``writes`` False: the stage holding it reads it) or ``>(...)``, as a piece of a word.

    ``tokens`` are those of the pipeline between the parentheses; ``start``
    is the column of its ``<`` or ``>``, ``end`` the one after its ``)``. The
    parser makes the pipeline, and the graph the ``/dev/fd/N`` path it
    stands for.
    """

    writes: bool
    tokens: tuple[Token, ...]
    start: int
    end: int


#: What a word is made of before expansion.
WordPiece = Piece | ProcessSubstitution


@dataclass(frozen=True)
class Word:
    """A word before expansion: its pieces, and where it starts and ends."""

    pieces: tuple[WordPiece, ...]
    start: int
    end: int

    @property
    def substitutions(self) -> tuple[ProcessSubstitution, ...]:
        """The process substitutions in the word, in order."""
        return tuple(piece for piece in self.pieces if isinstance(piece, ProcessSubstitution))

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
        #: The process substitutions being lexed, by where each starts (the innermost last).
        self.open_substitutions: list[int] = []

    def error(self, message: str, start: int, width: int = 1, hint: str | None = None) -> PipelineSyntaxError:
        if hint:
            # sh (dash, on Debian) has no process substitution: such text needs bash to run.
            shell = "bash" if "<(" in self.text or ">(" in self.text else "sh"
            hint = hint.replace(_SH_HINT, f"run it as a stage: {shell} -c {shlex.quote(self.text.strip())}")
        return PipelineSyntaxError(message, self.text, start, width, hint)

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def tokens(self) -> list[Token]:
        """The tokens up to the end of the text, or inside a process substitution up to its ``)``."""
        result: list[Token] = []
        while True:
            newline = self.skip_blanks()
            if self.pos >= len(self.text):
                if self.open_substitutions:
                    start = self.open_substitutions[-1]
                    raise self.error("unclosed process substitution: it ends with ')'", start, 2)
                return result
            closing = self.open_substitutions and self.peek() == ")"
            if closing:
                return result
            if (
                newline is not None
                and result
                and isinstance(result[-1], Word)
                and not is_brace(result[-1], "{")
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
        if c in "<>" and self.peek(1) == "(":
            return None  # a process substitution starts a word
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
        if rest.startswith(("<<", "<>", "<&", ">|")):
            what = {
                "<<": "a here-document",
                "<>": "'<>' (open for reading and writing)",
                "<&": "'<&' (duplicate an input)",
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
        pieces: list[WordPiece] = []
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in "<>" and self.peek(1) == "(":
                pieces.append(self.substitution())
                continue
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

    def substitution(self) -> ProcessSubstitution:
        """``<(...)`` or ``>(...)``: the tokens up to the matching ``)``, lexed as any pipeline's."""
        start = self.pos
        if len(self.open_substitutions) >= MAX_SUBSTITUTION_DEPTH:
            raise self.error(
                f"process substitutions nest more than {MAX_SUBSTITUTION_DEPTH} deep, which is ppipe's limit", start, 2
            )
        self.open_substitutions.append(start)
        self.pos += 2
        tokens = self.tokens()
        self.open_substitutions.pop()
        self.pos += 1  # its ')'
        return ProcessSubstitution(self.text[start] == ">", tuple(tokens), start, self.pos)

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
        after = self.past_continuations(start + 1)  # '$\<newline>?' is '$?': continuations go first, as in bash
        nxt = self.text[after : after + 1]
        if nxt in ("[", "("):
            what = {"[": "'$[' (old arithmetic expansion)", "(": "'$(' (command substitution)"}[nxt]
            if nxt == "(" and self.text[self.past_continuations(after + 1) :].startswith("("):
                what = "'$((' (arithmetic expansion)"
            raise self.error(f"{what} is shell syntax ppipe does not run", start, after + 1 - start, _SH_HINT)
        if nxt == "{":
            end = self.text.find("}", after)
            if end < 0:
                raise self.error("unclosed '${'", start, after + 1 - start)
            inner = self.text[after + 1 : end].replace("\\\n", "")
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
        name, end = self.name_at(after)
        if name:
            self.pos = end
            return Var(name, quoted, start)
        if nxt and nxt in _SPECIAL_PARAMETERS:
            raise self.error(
                f"'${nxt}' is a shell special parameter ppipe does not support", start, after + 1 - start, _SH_HINT
            )
        if nxt in ("'", '"') and not quoted:
            raise self.error(f"'${nxt}...' quoting is shell syntax ppipe does not support", start, after + 1 - start)
        self.pos += 1
        return Lit("$", quoted=True)  # a lone $ is literal, as in bash

    def past_continuations(self, i: int) -> int:
        """The first position at or after ``i`` that is not a line continuation (backslash, newline)."""
        while self.text.startswith("\\\n", i):
            i += 2
        return i

    def name_at(self, i: int) -> tuple[str, int]:
        """The variable name at ``i`` (line continuations inside it removed, as bash does) and where it ends."""
        match = _NAME.match(self.text, i)
        if not match:
            return "", i
        name, end = match.group(), match.end()
        while (resumed := self.past_continuations(end)) != end and (more := _NAME_CHARS.match(self.text, resumed)):
            name, end = name + more.group(), more.end()
        return name, end


def _shortened(text: str, limit: int = 20) -> str:
    """``text`` for a message: cut to ``limit`` characters with '...', so a huge input makes a short line."""
    return text if len(text) <= limit else text[:limit] + "..."


def _merge(pieces: list[WordPiece]) -> list[WordPiece]:
    """Joins adjacent literals of the same quoting, so words compare simply; drops empty unquoted ones.

    Each run is joined once (not appended to piece by piece), so a word of
    a million escaped characters costs linear time.
    """
    if len(pieces) == 1 and not (isinstance(pieces[0], Lit) and not pieces[0].quoted and not pieces[0].text):
        return pieces  # the common case: a plain word
    kept = (piece for piece in pieces if not (isinstance(piece, Lit) and not piece.quoted and not piece.text))
    merged: list[WordPiece] = []
    for quoting, run in itertools.groupby(kept, key=lambda piece: piece.quoted if isinstance(piece, Lit) else None):
        if quoting is None:
            merged.extend(run)
        else:
            merged.append(Lit("".join(piece.text for piece in run if isinstance(piece, Lit)), quoting))
    return merged


def is_brace(token: Token | None, brace: str) -> bool:
    """An unquoted ``{`` or ``}`` standing as a word of its own (``{a,b}``, ``'{'`` and ``{}`` are not)."""
    return (
        isinstance(token, Word)
        and len(token.pieces) == 1
        and isinstance(token.pieces[0], Lit)
        and not token.pieces[0].quoted
        and token.pieces[0].text == brace
    )

"""Word expansion: ``$NAME``/``${NAME}``, ``~``, field splitting and globs.

The rules are bash's defaults, applied in bash's order, after ppipe's own
first step:

* A shard's placeholders (``{task_id}``...) are filled into the words'
  literal text, never into what a variable expanded to; see
  :func:`fill_placeholders`.
* ``$NAME`` and ``${NAME}`` expand in unquoted and double-quoted text; an
  unset variable is empty.
* ``~`` and ``~user`` at the start of an unquoted word become the home
  directory.
* The result of an *unquoted* variable is split into fields on blanks
  (space, tab, newline), and an unquoted expansion that yields nothing
  yields no word at all.
* Unquoted ``*``, ``?`` and ``[...]`` are globs, matched against the file
  system and sorted (byte order, as bash in the C locale); a glob that
  matches nothing is left literal. ppipe matches them itself, one
  directory level at a time, in time linear in the pattern.

Assignment values (``NAME=value``) are neither split nor globbed; a
redirection target must expand to exactly one word.
"""

from __future__ import annotations

import os
import pwd
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass

from ppipe.language import globs

_BLANKS = " \t\n"
_TILDE_PREFIX = re.compile(r"~([A-Za-z0-9_.-]*)(?=/|$)")
#: The start of a word bash reads as an assignment when it comes to ``~`` (``x=~``, ``PATH+=:~/bin``).
_ASSIGNMENT_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")


@dataclass(frozen=True)
class Lit:
    """Literal text; ``quoted`` text is never split or globbed."""

    text: str
    quoted: bool


@dataclass(frozen=True)
class Var:
    """A ``$NAME`` reference at ``column``."""

    name: str
    quoted: bool
    column: int


@dataclass(frozen=True)
class Tilde:
    """``~`` (``user`` empty) or ``~user`` at the start of a word."""

    user: str


Piece = Lit | Var | Tilde

_Field = globs.Field


class Expander:
    """Expands words against one environment, one directory and the shard's placeholder values.

    Placeholders are filled first, into the words' literal text only (see
    :func:`fill_placeholders`), so globs then match the shard's own files.
    """

    def __init__(
        self, text: str, env: Mapping[str, str], cwd: str | None = None, placeholders: Mapping[str, str] | None = None
    ) -> None:
        self.text = text
        self.env = env
        self.cwd = cwd
        self.placeholders = placeholders or {}

    def fields(self, pieces: tuple[Piece, ...]) -> list[str]:
        """Expands one word into zero or more argv entries.

        A word that looks like an assignment (``x=~/a:~/b``, unquoted
        ``NAME=`` or ``NAME+=`` first) gets its ``~`` expanded after the
        ``=`` and after each unquoted ``:``, as bash does outside POSIX mode.
        """
        pieces = fill_placeholders(pieces, self.placeholders)
        first = pieces[0] if pieces else None
        if isinstance(first, Lit) and not first.quoted and (name := _ASSIGNMENT_LIKE.match(first.text)):
            value = (Lit(first.text[name.end() :], quoted=False), *pieces[1:])
            pieces = (Lit(name.group(), quoted=False), *self._assignment_tildes(value))
        return [match for field in self._split(pieces) for match in self._glob(field)]

    def assignment_value(self, pieces: tuple[Piece, ...], assigned: Mapping[str, str] | None = None) -> str:
        """Expands the value of ``NAME=value``: variables and ``~`` after ``=`` or ``:``; no splitting, no globs.

        ``assigned`` holds the stage's assignments written before this one,
        which the value sees first, as in bash (``A=1 B=$A cmd`` gives B 1;
        ``HOME=/h X=~ cmd`` gives X /h).
        """
        expander = self if not assigned else Expander(self.text, ChainMap(dict(assigned), dict(self.env)), self.cwd)
        pieces = expander._assignment_tildes(fill_placeholders(pieces, self.placeholders))
        return "".join(expander._text(piece) for piece in pieces)

    def _assignment_tildes(self, pieces: tuple[Piece, ...]) -> tuple[Piece, ...]:
        """An assignment value's ``~`` at its start and after each unquoted ``:``, made the (quoted) home.

        The tilde prefix must end at an unquoted ``/`` or ``:`` or at the
        end of the word: ``x=~"/a"`` and ``x=~$V`` keep their ``~``.
        """
        result: list[Piece] = []
        for index, piece in enumerate(pieces):
            if not (isinstance(piece, Lit) and not piece.quoted and "~" in piece.text):
                result.append(piece)
                continue
            parts = piece.text.split(":")
            for k, part in enumerate(parts):
                if k:
                    result.append(Lit(":", quoted=False))
                match = _TILDE_PREFIX.match(part) if k or not index else None
                ends_word = k < len(parts) - 1 or index == len(pieces) - 1
                if match and (match.end() < len(part) or ends_word):
                    result.append(Lit(self._home(Tilde(match.group(1))), quoted=True))
                    result.append(Lit(part[match.end() :], quoted=False))
                else:
                    result.append(Lit(part, quoted=False))
        return tuple(result)

    def redirect_target(self, pieces: tuple[Piece, ...], start: int, end: int) -> tuple[str, str | None]:
        """Expands a redirection's file name: ``(path, None)``, or ``(as written, why not)``.

        A target that expands to several words (or none) is bash's
        "ambiguous redirect": the stage fails when it runs, not the parse.
        """
        words = self.fields(pieces)
        if len(words) != 1:
            return self.text[start:end], f"ambiguous redirect (it expands to {len(words)} words)"
        return words[0], None

    def _text(self, piece: Piece) -> str:
        if isinstance(piece, Lit):
            return piece.text
        if isinstance(piece, Var):
            return self.env.get(piece.name, "")
        return self._home(piece)

    def _home(self, tilde: Tilde) -> str:
        if not tilde.user:  # HOME set but empty gives '', as in bash; only an unset one asks the password file
            home = self.env.get("HOME")
            return home if home is not None else os.path.expanduser("~")
        try:
            return pwd.getpwnam(tilde.user).pw_dir
        except KeyError:
            return "~" + tilde.user  # unknown user: left as written, as bash does

    def _split(self, pieces: tuple[Piece, ...]) -> list[_Field]:
        fields: list[_Field] = []
        current: _Field = []
        keep = False  # a quoted piece makes the field exist even when empty

        def finish() -> None:
            nonlocal current, keep
            if current or keep:
                fields.append(current)
            current, keep = [], False

        for piece in pieces:
            if isinstance(piece, Var) and not piece.quoted:
                value = self._text(piece)
                words = value.split()
                if value[:1] in tuple(_BLANKS) or (value and not words):
                    finish()
                for i, word in enumerate(words):
                    if i:
                        finish()
                    current.append((word, True))
                if value[-1:] in tuple(_BLANKS) and words:
                    finish()
            elif isinstance(piece, Lit):
                current.append((piece.text, not piece.quoted))
                keep = keep or piece.quoted
            else:
                current.append((self._text(piece), False))
                keep = True
        finish()
        return fields

    def _glob(self, field: _Field) -> list[str]:
        return globs.expand(field, self.cwd)


# ---------------------------------------------------------------- placeholders

#: ``{name}``; which names are placeholders is the caller's mapping's say.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: The same in raw text, where ``${name}`` is a variable, not a placeholder.
_PLACEHOLDER_IN_TEXT = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_placeholders(pieces: tuple[Piece, ...], values: Mapping[str, str]) -> tuple[Piece, ...]:
    """Replaces ``{name}`` (for each name in ``values``) in a word's literal text.

    The word was lexed and parsed as written, so a value can never change
    how the text parses (``{task_id}>f`` stays a word and a redirection).
    A placeholder is found in the literal text after quote removal, so
    quoting neither hides nor splits it (``'{task_id}'``, ``\\{task_id}``);
    text that came from ``$VAR`` or ``~`` is never searched. A value is
    literal text: it is not split, and its characters are not globbed.
    """
    if not values:
        return pieces
    filled: list[Piece] = []
    run: list[Lit] = []
    for piece in pieces:
        if isinstance(piece, Lit):
            run.append(piece)
            continue
        filled += _fill_run(run, values)
        filled.append(piece)
        run = []
    filled += _fill_run(run, values)
    return tuple(filled)


def _fill_run(run: list[Lit], values: Mapping[str, str]) -> list[Lit]:
    """Fills the placeholders of consecutive literals; text around them keeps its quoting."""
    text = "".join(lit.text for lit in run)
    found = [match for match in _PLACEHOLDER.finditer(text) if match.group(1) in values] if "{" in text else []
    if not found:
        return run
    quoted = [lit.quoted for lit in run for _ in lit.text]
    filled: list[Lit] = []
    position = 0
    for match in found:
        filled += _uniform_runs(text, quoted, position, match.start())
        filled.append(Lit(values[match.group(1)], quoted=True))
        position = match.end()
    return filled + _uniform_runs(text, quoted, position, len(text))


def _uniform_runs(text: str, quoted: list[bool], start: int, end: int) -> list[Lit]:
    """``text[start:end]`` as literals, each of one quoting."""
    lits = []
    while start < end:
        stop = start
        while stop < end and quoted[stop] == quoted[start]:
            stop += 1
        lits.append(Lit(text[start:stop], quoted[start]))
        start = stop
    return lits


def fill_text(text: str, values: Mapping[str, str]) -> str:
    """Fills placeholders in raw pipeline text, for showing it; never parse the result (see ``fill_placeholders``)."""
    if not values:
        return text
    return _PLACEHOLDER_IN_TEXT.sub(lambda m: values.get(m.group(1), m.group()), text)

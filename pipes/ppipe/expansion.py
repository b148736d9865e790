"""Word expansion: ``$NAME``/``${NAME}``, ``~``, field splitting and globs.

The rules are bash's defaults, applied in bash's order:

* ``$NAME`` and ``${NAME}`` expand in unquoted and double-quoted text; an
  unset variable is empty.
* ``~`` and ``~user`` at the start of an unquoted word become the home
  directory.
* The result of an *unquoted* variable is split into fields on blanks
  (space, tab, newline), and an unquoted expansion that yields nothing
  yields no word at all.
* Unquoted ``*``, ``?`` and ``[...]`` are globs, matched against the file
  system and sorted (byte order, as bash in the C locale); a glob that
  matches nothing is left literal.

Assignment values (``NAME=value``) are neither split nor globbed; a
redirection target must expand to exactly one word.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass

_BLANKS = " \t\n"
_GLOB_CHARS = set("*?[")
_TILDE_PREFIX = re.compile(r"~([A-Za-z0-9_.-]*)(?=/|$)")
#: POSIX bracket classes, as they mean in the C locale; Python's glob has none.
_POSIX_CLASSES = {
    "alpha": "A-Za-z", "digit": "0-9", "alnum": "A-Za-z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \t\n\r\f\v", "blank": " \t", "xdigit": "0-9A-Fa-f",
}
_POSIX_CLASS = re.compile(r"\[:(" + "|".join(_POSIX_CLASSES) + r"):\]")


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

#: One field being built: (text, globbing allowed) segments.
_Field = list[tuple[str, bool]]


class Expander:
    """Expands words against one environment and one directory."""

    def __init__(self, text: str, env: Mapping[str, str], cwd: str | None = None) -> None:
        self.text = text
        self.env = env
        self.cwd = cwd

    def fields(self, pieces: tuple[Piece, ...]) -> list[str]:
        """Expands one word into zero or more argv entries."""
        return [match for field in self._split(pieces) for match in self._glob(field)]

    def assignment_value(self, pieces: tuple[Piece, ...]) -> str:
        """Expands the value of ``NAME=value``: variables and ``~`` after ``=`` or ``:``; no splitting, no globs."""
        first = pieces[0] if pieces else None
        if isinstance(first, Lit) and not first.quoted and "~" in first.text:
            head = ":".join(self._tilde_prefix(part) for part in first.text.split(":"))
            pieces = (Lit(head, quoted=True), *pieces[1:])
        return "".join(self._text(piece) for piece in pieces)

    def _tilde_prefix(self, text: str) -> str:
        match = _TILDE_PREFIX.match(text)
        return self._home(Tilde(match.group(1))) + text[match.end():] if match else text

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
        if not tilde.user:
            return self.env.get("HOME") or os.path.expanduser("~")
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
        literal = "".join(text for text, _ in field)
        if not any(active and _GLOB_CHARS & set(text) for text, active in field):
            return [literal]
        pattern = "".join(_bash_brackets(text) if active else glob.escape(text) for text, active in field)
        matches = sorted(glob.glob(pattern, root_dir=self.cwd))
        return matches or [literal]


def _bash_brackets(pattern: str) -> str:
    """Rewrites bash-only bracket syntax for Python's glob: ``[^...]`` negation and ``[:class:]``."""
    return _POSIX_CLASS.sub(lambda m: _POSIX_CLASSES[m.group(1)], pattern.replace("[^", "[!"))

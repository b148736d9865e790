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
from collections.abc import Mapping
from dataclasses import dataclass

_BLANKS = " \t\n"
_GLOB_CHARS = set("*?[")
_TILDE_PREFIX = re.compile(r"~([A-Za-z0-9_.-]*)(?=/|$)")
#: POSIX bracket classes, as they mean in the C locale; Python's glob has none.
_POSIX_CLASSES = {
    "alpha": "A-Za-z",
    "digit": "0-9",
    "alnum": "A-Za-z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": " \t\n\r\f\v",
    "blank": " \t",
    "xdigit": "0-9A-Fa-f",
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
        """Expands one word into zero or more argv entries."""
        pieces = fill_placeholders(pieces, self.placeholders)
        return [match for field in self._split(pieces) for match in self._glob(field)]

    def assignment_value(self, pieces: tuple[Piece, ...]) -> str:
        """Expands the value of ``NAME=value``: variables and ``~`` after ``=`` or ``:``; no splitting, no globs."""
        pieces = fill_placeholders(pieces, self.placeholders)
        first = pieces[0] if pieces else None
        if isinstance(first, Lit) and not first.quoted and "~" in first.text:
            head = ":".join(self._tilde_prefix(part) for part in first.text.split(":"))
            pieces = (Lit(head, quoted=True), *pieces[1:])
        return "".join(self._text(piece) for piece in pieces)

    def _tilde_prefix(self, text: str) -> str:
        match = _TILDE_PREFIX.match(text)
        return self._home(Tilde(match.group(1))) + text[match.end() :] if match else text

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
        return sorted(_match_path(_components(field), self.cwd)) or [literal]


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


# ---------------------------------------------------------------- globs
#
# Python's glob recurses once per directory level with a wildcard (a glob of
# a thousand '*/' is a RecursionError) and its fnmatch scans to the end of the
# pattern for every '[' that has no ']' (a hundred thousand '[' took minutes).
# So ppipe matches paths itself: level by level in a loop, each level's
# pattern translated in one pass.


@dataclass(frozen=True)
class _Char:
    """One character of a pattern; ``active`` when it may act as a wildcard (it was not quoted)."""

    char: str
    active: bool


def _components(field: _Field) -> list[list[_Char]]:
    """Splits a field into path components at every '/' (quoted or not: a path separator is one anyway)."""
    components: list[list[_Char]] = [[]]
    for text, active in field:
        for char in _POSIX_CLASS.sub(lambda m: _POSIX_CLASSES[m.group(1)], text) if active else text:
            if char == "/":
                components.append([])
            else:
                components[-1].append(_Char(char, active))
    return components


def _match_path(components: list[list[_Char]], cwd: str | None) -> list[str]:
    """The existing paths the components match, as written relative to ``cwd`` (or absolute).

    Literal components are joined without looking, wildcard components list
    the directories reached so far; every level but the last must be a
    directory, and the last must exist. A trailing '/' keeps directories only.
    """
    absolute = not components[0]
    paths = ["/" if absolute else ""]
    levels = components[1:] if absolute else components
    for index, component in enumerate(levels):
        last = index == len(levels) - 1
        if not component:  # 'a//b' is 'a/b'; a trailing '/' asks for a directory
            paths = [_join(path, "") for path in paths if _isdir(path, cwd)] if last else paths
        else:
            paths = _step(paths, _Component(component), last, cwd)
        if not paths:
            break
    return paths


def _step(paths: list[str], component: _Component, last: bool, cwd: str | None) -> list[str]:
    """Extends each path by the names in it that ``component`` matches."""
    if component.literal is not None:  # joined without looking: a missing directory shows at the next listing
        joined = [_join(path, component.literal) for path in paths]
        return [path for path in joined if _lexists(path, cwd)] if last else joined
    return [
        _join(path, name) for path in paths for name in _names(path, cwd, dirs_only=not last) if component.matches(name)
    ]


def _join(path: str, name: str) -> str:
    return path + name if not path or path.endswith("/") else f"{path}/{name}"


def _on_disk(path: str, cwd: str | None) -> str:
    return os.path.join(cwd or ".", path) if path else (cwd or ".")


def _isdir(path: str, cwd: str | None) -> bool:
    return os.path.isdir(_on_disk(path, cwd))


def _lexists(path: str, cwd: str | None) -> bool:
    return os.path.lexists(_on_disk(path, cwd))


def _names(path: str, cwd: str | None, dirs_only: bool) -> list[str]:
    """The names in a directory (directories only, following symlinks, if asked); none if it cannot be read."""
    names = []
    try:
        with os.scandir(_on_disk(path, cwd)) as entries:
            for entry in entries:
                try:
                    if not dirs_only or entry.is_dir():
                        names.append(entry.name)
                except OSError:
                    continue
    except (OSError, ValueError):  # not a directory, no permission, a NUL in the name
        return []
    return names


class _Component:
    """One path component's pattern: bash's ``*``, ``?`` and ``[...]`` over active characters.

    A ``[`` with no active ``]`` after it is a literal, as in bash (a quoted
    ``]`` never closes a bracket). ``[!...]`` and ``[^...]`` negate; a ``]``
    right after ``[`` or ``[!`` is a member. A name starting with ``.``
    matches only a pattern starting with ``.``. The pattern is translated in
    one pass, and matched as the fixed-length pieces between its stars, each
    found once, left to right: no backtracking however many stars there are.
    """

    def __init__(self, chars: list[_Char]) -> None:
        self.hidden_ok = chars[0].char == "."
        tokens, wild = _tokens(chars)
        self.literal = None if wild else "".join(c.char for c in chars)
        self.pieces: list[list[str]] = [[]]  # per piece, a regex for each character it matches
        for token in tokens:
            if token is None:
                self.pieces.append([])
            else:
                self.pieces[-1].append(token)
        self.length = sum(len(piece) for piece in self.pieces)
        self._compiled: list[re.Pattern[str]] | None = None

    def matches(self, name: str) -> bool:
        if len(name) < self.length or (name.startswith(".") and not self.hidden_ok):
            return False
        if len(self.pieces) == 1:
            return len(name) == self.length and self.compiled[0].fullmatch(name) is not None
        first, *middle, final = self.compiled
        end = len(name) - len(self.pieces[-1])
        if first.match(name) is None or final.fullmatch(name, end) is None:
            return False
        position = len(self.pieces[0])
        for piece in middle:  # the leftmost place is always right for a fixed-length piece between stars
            found = piece.search(name, position, end)
            if found is None:
                return False
            position = found.end()
        return True

    @property
    def compiled(self) -> list[re.Pattern[str]]:
        """The pieces' regexes, compiled only once a name is long enough to need them."""
        if self._compiled is None:
            self._compiled = [re.compile("".join(piece), re.DOTALL) for piece in self.pieces]
        return self._compiled


def _tokens(chars: list[_Char]) -> tuple[list[str | None], bool]:
    """The pattern as tokens (None for a ``*``, else a regex for one character), and whether any is a wildcard."""
    closers = _next_closers(chars)
    tokens: list[str | None] = []
    wild = False
    i = 0
    while i < len(chars):
        char = chars[i]
        if char.active and char.char in "*?":
            if char.char == "?":
                tokens.append(".")
            elif not tokens or tokens[-1] is not None:  # '**' is '*'
                tokens.append(None)
            wild = True
            i += 1
            continue
        bracket = _bracket(chars, i, closers) if char.active and char.char == "[" else None
        if bracket is None:
            tokens.append(re.escape(char.char))
            i += 1
        else:
            regex, i = bracket
            tokens.append(regex)
            wild = True
    return tokens, wild


def _next_closers(chars: list[_Char]) -> list[int]:
    """For each position, where the next active ']' at or after it is (``len(chars)`` for none)."""
    closers = [len(chars)] * (len(chars) + 1)
    for i in range(len(chars) - 1, -1, -1):
        closers[i] = i if chars[i].active and chars[i].char == "]" else closers[i + 1]
    return closers


def _bracket(chars: list[_Char], start: int, closers: list[int]) -> tuple[str, int] | None:
    """The ``[...]`` at ``start`` as a regex and the position after it; None when it never closes."""
    i = start + 1
    negate = i < len(chars) and chars[i].active and chars[i].char in "!^"
    i += negate
    first = i + 1 if i < len(chars) and chars[i].char == "]" else i  # a leading ']' is a member
    close = closers[min(first, len(chars))]
    if close >= len(chars):
        return None
    members = []
    j = i
    while j < close:
        if j + 2 < close and chars[j + 1].active and chars[j + 1].char == "-":
            low, high = chars[j].char, chars[j + 2].char
            if low <= high:  # a reversed range matches nothing, as in bash
                members.append(f"{re.escape(low)}-{re.escape(high)}")
            j += 3
        else:
            members.append(re.escape(chars[j].char))
            j += 1
    if not members:
        return ("[^\\s\\S]" if not negate else "."), close + 1
    return f"[{'^' if negate else ''}{''.join(members)}]", close + 1

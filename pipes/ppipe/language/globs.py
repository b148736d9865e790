"""Pathname expansion: bash's ``*``, ``?`` and ``[...]``, matched against the file system.

A field reaches here as (text, active) segments: ``active`` text came
unquoted (written so, or from an unquoted ``$NAME``) and its ``*``, ``?``,
``[`` may act as wildcards; quoted text is always literal. As in bash 5,
a backslash in active text (it can only come from a variable: a written
``\\`` is quoting) escapes the character after it, so ``v='*\\*.txt'``
matches names ending in ``*.txt``; a word whose only wildcards are so
escaped is no glob and keeps its backslashes; a trailing backslash
matches nothing.

Brackets take ``[!...]``/``[^...]``, ranges, a leading ``]`` as a member,
and the twelve POSIX classes as the C locale defines them (``[:punct:]``,
alone or mixed: ``[[:punct:]E]``); an unknown class matches no character
but leaves the bracket a bracket, as in bash. ``[=c=]`` and ``[.c.]``
stand for ``c``.

Python's glob recurses once per directory level with a wildcard (a glob of
a thousand '*/' is a RecursionError) and its fnmatch scans to the end of the
pattern for every '[' that has no ']' (a hundred thousand '[' took minutes).
So ppipe matches paths itself: level by level in a loop, each level's
pattern translated in one pass.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

#: One field: (text, globbing allowed) segments.
Field = list[tuple[str, bool]]

#: The POSIX classes in the C locale, as regex class contents (code points are the C locale's bytes in ASCII).
POSIX_CLASSES = {
    "alnum": "A-Za-z0-9",
    "alpha": "A-Za-z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": "\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


@dataclass(frozen=True)
class _Char:
    """One character of a pattern; ``active`` when it may act as a wildcard (not quoted, not escaped)."""

    char: str
    active: bool


def expand(field: Field, cwd: str | None) -> list[str]:
    """The sorted paths ``field`` matches in ``cwd``; ``[the field as written]`` when it is no glob or matches none."""
    literal = "".join(text for text, _ in field)
    components = _components(field)
    if components is None or not any(c.active and c.char in "*?[" for part in components for c in part):
        return [literal]
    return sorted(_match_path(components, cwd)) or [literal]


def _components(field: Field) -> list[list[_Char]] | None:
    """The field split into path components at every '/', escapes applied; None if it ends in an active '\\'.

    A '/' is a separator quoted, escaped or not: a path separator is one anyway.
    """
    components: list[list[_Char]] = [[]]
    escaped = False
    for text, active in field:
        for char in text:
            if active and not escaped and char == "\\":
                escaped = True
                continue
            wild = active and not escaped
            if escaped and not active:
                # bash quotes a quoted character with a backslash of its own, which this one escapes:
                # the backslash stays, and the character is a wildcard again (v='a\\'; $v"*" matches a\b)
                components[-1].append(_Char("\\", False))
                wild = True
            if char == "/":
                components.append([])
            else:
                components[-1].append(_Char(char, wild))
            escaped = False
    return None if escaped else components


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

    A ``[`` with no active ``]`` to close it is a literal, as in bash (a
    quoted or escaped ``]`` never closes a bracket). A name starting with
    ``.`` matches only a pattern starting with ``.``. The pattern is
    translated in one pass, and matched as the fixed-length pieces between
    its stars, each found once, left to right: no backtracking however many
    stars there are.
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
    brackets = _Brackets(chars)
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
        bracket = brackets.parse(i) if char.active and char.char == "[" else None
        if bracket is None:
            tokens.append(re.escape(char.char))
            i += 1
        else:
            regex, i = bracket
            tokens.append(regex)
            wild = True
    return tokens, wild


class _Brackets:
    """Reads the ``[...]`` expressions of one pattern, in time linear in the pattern however many fail.

    From any position inside a bracket, where the bracket ends (or that it
    never does) does not depend on where it began: each position's answer
    is found once and remembered, so a thousand ``[[:`` cost no more than one.
    """

    def __init__(self, chars: list[_Char]) -> None:
        self.chars = chars
        # For each position, where the next active ']' at or after it is (len(chars) for none): a '['
        # with none after it is a literal at once.
        closers = [len(chars)] * (len(chars) + 1)
        for i in range(len(chars) - 1, -1, -1):
            closers[i] = i if self.is_active(i, "]") else closers[i + 1]
        self.closers = closers
        self.ends: dict[int, int | None] = {}

    def is_active(self, i: int, char: str) -> bool:
        return i < len(self.chars) and self.chars[i].active and self.chars[i].char == char

    def parse(self, start: int) -> tuple[str, int] | None:
        """The ``[...]`` at ``start`` as a regex and the position after it; None when it never closes."""
        chars = self.chars
        i = start + 1
        negate = i < len(chars) and chars[i].active and chars[i].char in "!^"
        i += negate
        if self.closers[min(i + 1, len(chars))] >= len(chars):
            return None
        close = self.end(self.member(i)[1] if self.is_active(i, "]") else i)  # a leading ']' is a member
        if close is None:
            return None
        members = []
        while i < close:
            member, i = self.member(i)
            members.append(member)
        if not "".join(members):  # '[[:nosuch:]]' matches no character, its negation any
            return ("[^\\s\\S]" if not negate else "."), close + 1
        return f"[{'^' if negate else ''}{''.join(members)}]", close + 1

    def end(self, i: int) -> int | None:
        """The closing ']' of a bracket whose members go on at ``i``; None if it never closes."""
        path = []
        while i < len(self.chars) and not self.is_active(i, "]"):
            if i in self.ends:
                close = self.ends[i]
                break
            path.append(i)
            i = self.member(i)[1]
        else:
            close = i if i < len(self.chars) else None
        for position in path:
            self.ends[position] = close
        return close

    def member(self, i: int) -> tuple[str, int]:
        """The member at ``i`` (a class, a range or one character) as regex class text, and the position after it."""
        chars = self.chars
        named = self.named(i)
        if named is not None:
            return named
        if i + 2 < len(chars) and self.is_active(i + 1, "-") and not self.is_active(i + 2, "]"):
            low, high = chars[i].char, chars[i + 2].char
            # a reversed range matches nothing, as in bash
            return (f"{re.escape(low)}-{re.escape(high)}" if low <= high else ""), i + 3
        return re.escape(chars[i].char), i + 1

    def named(self, i: int) -> tuple[str, int] | None:
        """``[:class:]``, ``[=c=]`` or ``[.c.]`` at ``i``: its members (maybe none) and the position after it."""
        chars = self.chars
        if not (self.is_active(i, "[") and i + 1 < len(chars) and chars[i + 1].char in ":=."):
            return None
        kind = chars[i + 1].char
        end = i + 2
        # a class name is short: look no further than the longest, so a '[:' with no end costs little
        while end + 1 < len(chars) and end - i < 12 and not (chars[end].char == kind and self.is_active(end + 1, "]")):
            end += 1
        if not (end + 1 < len(chars) and chars[end].char == kind and self.is_active(end + 1, "]")):
            return None
        name = "".join(c.char for c in chars[i + 2 : end])
        if kind == ":":
            return POSIX_CLASSES.get(name, ""), end + 2  # an unknown class matches no character
        return (re.escape(name) if len(name) == 1 else ""), end + 2

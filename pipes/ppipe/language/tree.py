"""The parsed pipeline before expansion: what the parser reads from the tokens, and the graph is built from."""

from __future__ import annotations

from dataclasses import dataclass

from ppipe.language.lexer import Operator, Word


@dataclass(frozen=True)
class RawStage:
    """A stage before expansion; ``substitutions`` are those in its words, assignments and redirections, in
    text order."""

    assignments: tuple[Word, ...]
    words: tuple[Word, ...]
    redirects: tuple[tuple[Operator, Word | None], ...]
    may_fail: bool
    start: int
    end: int
    substitutions: tuple[RawSubstitution, ...] = ()


@dataclass(frozen=True)
class RawPipeline:
    """Elements joined by pipes; ``with_stderr[i]`` says whether the pipe after element ``i`` is ``|&``."""

    elements: tuple[RawStage | RawGroup, ...]
    with_stderr: tuple[bool, ...]


@dataclass(frozen=True)
class RawSubstitution:
    """``<(...)`` (``writes`` False) or ``>(...)``: the pipeline it runs, and the column it starts at."""

    writes: bool
    pipeline: RawPipeline
    start: int


@dataclass(frozen=True)
class RawGroup:
    """``{ a ; b | c }``: branches side by side, each reading a copy of the input, outputs merged."""

    branches: tuple[RawPipeline, ...]
    start: int

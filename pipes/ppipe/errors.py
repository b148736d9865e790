"""Every error ppipe reports to a user, and the exit status that goes with it.

Each error knows the text the CLI prints and the status ppipe exits with, so
the CLI never decides either: it prints ``str(error)`` and returns
``error.status``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class ExitStatus(enum.IntEnum):
    """The statuses ppipe itself chooses; a failed stage's own status passes through."""

    #: Every stage succeeded (or its failure was excused).
    OK = 0
    #: A stage failed in a way that has no status of its own (a redirection
    #: that could not be opened, as bash reports it).
    FAILURE = 1
    #: Bad command line or pipeline syntax; nothing was run.
    USAGE = 2
    #: ``--timeout`` expired and the run was stopped.
    TIMEOUT = 124
    #: A command was found but cannot be executed; nothing was run.
    NOT_EXECUTABLE = 126
    #: A command was not found; nothing was run.
    NOT_FOUND = 127
    # A run stopped by signal N says 128 + N, as a shell does: 130 for SIGINT, 143 for SIGTERM.


class PpipeError(Exception):
    """Base of every error ppipe raises on purpose.

    ``str(error)`` is the complete message for the user (possibly several
    lines, without the ``ppipe:`` prefix); ``status`` is the exit status.
    """

    status: int = ExitStatus.FAILURE


class UsageError(PpipeError):
    """The command line itself is wrong (bad option value, missing argument)."""

    status = ExitStatus.USAGE


class PipelineSyntaxError(UsageError):
    """The pipeline text cannot be run; carries where, so the CLI can point at it.

    ``column`` is 0-based into ``text``; ``width`` is how many characters the
    caret underlines. ``hint`` is an optional second line telling the user
    what to do instead.
    """

    def __init__(self, message: str, text: str, column: int, width: int = 1, hint: str | None = None) -> None:
        self.message = message
        self.text = text
        self.column = column
        self.width = max(1, width)
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        # Tabs and newlines in the input would shift the caret; show them as
        # single spaces so the caret stays under the right character.
        shown, column = _window(self.text.replace("\t", " ").replace("\n", " "), self.column)
        width = min(self.width, _WINDOW)
        lines = [
            f"syntax error at column {self.column + 1}: {self.message}",
            f"  {shown}",
            "  " + " " * column + "^" * width,
        ]
        if self.hint:
            lines.append(f"hint: {_shortened(self.hint)}")
        return "\n".join(lines)


#: How much of a long pipeline a syntax error quotes around the column, each side.
_WINDOW = 60


def _window(text: str, column: int) -> tuple[str, int]:
    """The part of ``text`` around ``column`` (``…`` where cut), and where the column falls in it."""
    start = max(0, column - _WINDOW)
    end = min(len(text), column + _WINDOW)
    head = "…" if start > 0 else ""
    tail = "…" if end < len(text) else ""
    return head + text[start:end] + tail, column - start + len(head)


def _shortened(hint: str) -> str:
    return hint if len(hint) <= 4 * _WINDOW else hint[: 4 * _WINDOW - 1] + "…"


@dataclass(frozen=True)
class CommandProblem:
    """Why one stage's command cannot be started."""

    stage: int
    command: str
    reason: str
    status: int


class CommandError(PpipeError):
    """One or more commands cannot be started; raised before any stage starts.

    The status is that of the rightmost problem, 127 (not found) or 126
    (found but not executable), following the pipefail rule.
    """

    def __init__(self, problems: Sequence[CommandProblem]) -> None:
        self.problems = tuple(problems)
        self.status = self.problems[-1].status
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"stage {p.stage}: {p.command}: {p.reason}" for p in self.problems)


class Checked(Protocol):
    """What a failed check carries: a :class:`ppipe.RunResult` or :class:`ppipe.PipelineResult`. A protocol
    here, so that the errors, which the results use, need not know the results."""

    @property
    def exit_status(self) -> int: ...


_Result = TypeVar("_Result", bound=Checked)


class PipelineFailed(PpipeError, Generic[_Result]):
    """Raised by ``ppipe.run(..., check=True)`` when the run's exit status is not 0.

    ``result`` is the full :class:`ppipe.RunResult`, so nothing that ran is lost
    (a :class:`ppipe.PipelineResult` where one pipeline's result was checked).
    Generic in it, so that ``except PipelineFailed as e: e.result.stages``
    type-checks.
    """

    def __init__(self, result: _Result) -> None:
        self.result = result
        self.status = result.exit_status
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"pipeline failed with exit status {self.status}"


class RunNotFinished(PpipeError):
    """A streamed run's result was asked for before the run had ended (``ppipe.stream``'s ``run.result``).

    Inside the block, the result is there once every line has been read;
    after it, always, unless the block was left by ``KeyboardInterrupt``
    or a cancellation, which stopped the run before it had one.
    """

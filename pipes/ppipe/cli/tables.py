"""The view's and the summary's building blocks: figures as text, tables that fit the terminal, failure panels.

Shared by the live view's row layouts (:mod:`ppipe.cli.rows`) and
``--progress plain``; importing this module imports rich.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ppipe.cli.units import count_text
from ppipe.flow import StageFlow
from ppipe.results import Verdict

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
MARKS = {
    Verdict.OK: ("✓", "green"),
    Verdict.FAILED: ("✗", "red"),
    Verdict.IGNORED: ("!", "yellow"),
    Verdict.BROKEN_PIPE: ("✓", "green"),
    Verdict.TERMINATED: ("✗", "red"),
    Verdict.SKIPPED: ("-", "dim"),
}


def line_cells(flow: StageFlow, show: Callable[[int], str] = str) -> tuple[str, str]:
    """The stage's lines in and out as its row shows them: exact, or ``-`` where not counted."""
    return count_text(flow.lines_in, show), count_text(flow.lines_out, show)


@dataclass(frozen=True)
class Column:
    """A column of a view's table.

    ``width`` is the least it takes, so that the table does not shift as
    figures grow; a wider cell widens it. ``keep`` ranks the columns for a
    narrow terminal: those with the lowest go first, whole. The ``fill``
    column (the command) takes the width the others leave and is the only
    one ever shortened, with an ellipsis.
    """

    name: str
    width: int
    keep: int = 0
    fill: bool = False
    left: bool = False


#: The command column keeps at least this many cells (or its whole text, if shorter) before others go.
COMMAND_MIN = 16
Cell = str | Text


def fitted_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> Table:
    """A borderless table of ``rows`` that fits ``width`` cells without cutting a figure.

    Every column is as wide as its widest cell; when that leaves the command
    less than ``COMMAND_MIN``, whole columns are dropped, least kept first.
    """
    widths = [
        max(column.width, cell_len(column.name), *(_cell_width(row[i]) for row in rows))
        for i, column in enumerate(columns)
    ]
    kept = _columns_that_fit(columns, widths, width)
    others = sum(widths[i] for i in kept if not columns[i].fill) + len(kept) - 1  # a space between columns
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    for i in kept:
        column = columns[i]
        table.add_column(
            column.name,
            justify="left" if column.left else "right",
            no_wrap=True,
            overflow="ellipsis",
            width=max(1, width - others) if column.fill else widths[i],
        )
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table


def _columns_that_fit(columns: Sequence[Column], widths: list[int], width: int) -> list[int]:
    """The indexes of the columns to show: all of them, less the least kept until the rest fit."""
    kept = list(range(len(columns)))

    def needed() -> int:
        return sum(min(widths[i], COMMAND_MIN) if columns[i].fill else widths[i] for i in kept) + len(kept) - 1

    for index in sorted((i for i, c in enumerate(columns) if not c.fill), key=lambda i: columns[i].keep):
        if needed() <= width:
            break
        kept.remove(index)
    return kept


def _cell_width(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(cell)


def footer_lines(parts: Sequence[Text], width: int) -> Text:
    """``parts`` joined by `` · ``, a new line instead where the next part would not fit, never inside one."""
    footer = Text(style="dim")
    line = 0
    for part in parts:
        if line and line + 3 + part.cell_len > width:
            footer.append("\n")
            line = 0
        elif line:
            footer.append(" · ")
            line += 3
        footer.append_text(part)
        line += part.cell_len
    return footer


def height_of(text: Text) -> int:
    """The rows ``text`` takes (its lines never wrap: :func:`footer_lines` breaks them to fit)."""
    return text.plain.count("\n") + 1


def more_row(columns: Sequence[Column], hidden: int, what: str = "more") -> list[Cell]:
    """A row saying ``… 4 more`` in the command column, for what a short terminal has no room to show."""
    return [Text(f"… {hidden} {what}", style="dim") if column.fill else "" for column in columns]


def failure_panel(title: str, end: str, body: str, command: str, width: int) -> Panel:
    """A red panel for one failure, its title never cut: ``stage 2 failed: exit status 3`` on the
    border where the terminal is wide enough, else the border says ``title`` and the first line of
    the panel, which wraps, says how it ended (``end``; empty: nothing to add). ``body`` (a stage's
    stderr, say) is shown with its control characters made :func:`visible`."""
    end, text = visible(end), Text(visible(body))
    headline = f"{title}: {end}" if end else title
    if cell_len(headline) + 6 <= width:  # the border's corners, dashes and spaces around the title
        return Panel(text, title=headline, subtitle=Text(command), border_style="red", expand=False)
    return Panel(
        Text.assemble((end, "bold"), "\n", text), title=title, subtitle=Text(command), border_style="red", expand=False
    )


def one_line(command: str) -> str:
    """A command as one line: a multi-line script argument must not break the row, nor an escape sequence in it
    (a report's, which anyone may have written) reach the terminal."""
    return visible(" ".join(command.split()))


#: Control characters but the newline and the tab, which text on a terminal may hold; C1's too.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with its control characters shown as ``cat -v`` shows them (``^[`` for escape), never sent:
    an escape sequence in a stage's stderr or in a report read back would move or clear the terminal."""
    return _CONTROL.sub(_caret, text)


def _caret(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"^{chr(code ^ 0x40)}" if code < 0x80 else f"M-^{chr((code - 0x80) ^ 0x40)}"

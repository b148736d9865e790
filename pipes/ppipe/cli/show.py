"""``ppipe report show FILE``: a run's ``--report`` file shown as the screen the run ended on, or as a timeline.

The library reads the report back into its run (:func:`ppipe.load_report`);
the view's own layouts draw it (:mod:`ppipe.cli.final`,
:mod:`ppipe.cli.timeline`). This reads the command line, sizes the picture
to the terminal (or ``COLUMNS``), and prints it, coloured only where rich
would colour (a terminal, no ``NO_COLOR``), or writes it as an SVG image.
Like ``report merge``, it is recognised only as the first two arguments
(see :mod:`ppipe.cli.merge`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ppipe.cli import destinations
from ppipe.cli.printing import print_error, print_out
from ppipe.cli.subcommand import HELP, Option, Reading, Subcommand
from ppipe.errors import ExitStatus, UsageError

if TYPE_CHECKING:
    from rich.console import RenderableType

SHOW = Subcommand(
    "show",
    "REPORT",
    "Show a saved run as its screen ended, or its timeline",
    """
Show a run's --report file (REPORT; '-' reads stdin) as the run's live view
ended it: a row per stage, or per shard, with their figures, the tally, and a
panel for each failure; above them, the pipeline, how it ended, when and where.

Exit status: 0 when shown; 2 for a report that cannot be read (missing, not
JSON, not a ppipe report, or of another report schema) or a bad command line;
1 when the SVG cannot be written.
""",
    (
        Option(
            ("--timeline",),
            "Draw the attempts over time instead: a row per slot (per host for a job array's tasks, per stage "
            "for a plain run), each attempt a bar, failures and restarts marked.",
        ),
        Option(("--svg",), "Write the picture as an SVG image to FILE instead of printing it ('-': stdout).", "FILE"),
        HELP,
    ),
)


def main(argv: Sequence[str]) -> int:
    """``ppipe report show`` with ``argv`` (the words after ``show``); returns the exit status."""
    return SHOW.answer(argv, _show)


def _show(reading: Reading) -> int:
    from rich.console import Console

    from ppipe.cli.final import saved_screen, saved_timeline
    from ppipe.cli.tables import visible
    from ppipe.report import load_report

    if len(reading.arguments) != 1:
        raise UsageError("ppipe report show takes one report file (see ppipe report show -h)")
    source, svg = reading.arguments[0], reading.values.get("svg")
    assert not isinstance(svg, bool), "a valued option"
    if svg not in (None, "-"):
        destinations.check(svg, "SVG")  # before the work: a typo in a directory wastes nothing
    result = load_report(source)
    terminal = Console(highlight=False)  # stdout's width (COLUMNS first) and colours, by rich's rules
    picture = (saved_timeline if reading.values.get("timeline") else saved_screen)(result, terminal.width)
    if svg is None:
        with terminal.capture() as captured:
            terminal.print(picture, crop=True)
        return print_out(captured.get())
    image = _svg(picture, terminal.width, title=f"ppipe report show {visible(os.path.basename(source))}")
    return print_out(image) if svg == "-" else _write(image, svg)


def _svg(picture: RenderableType, width: int, *, title: str) -> str:
    """``picture`` as an SVG image ``width`` columns wide, in colour wherever it is made (it is not a terminal's)."""
    from rich.console import Console

    recorder = Console(
        file=io.StringIO(), record=True, width=width, color_system="truecolor", no_color=False, highlight=False
    )
    recorder.print(picture, crop=True)
    return recorder.export_svg(title=title)


def _write(image: str, destination: str) -> int:
    """Writes the image, replacing the file whole; 1 and a line saying why when it cannot (a full disk)."""
    try:
        destinations.write_text(destination, image)
    except OSError as error:
        print_error([f"cannot write the SVG to {destination}: {error.strerror}"])
        return ExitStatus.FAILURE
    return ExitStatus.OK

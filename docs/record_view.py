"""Records the live view of a real run as an SVG for the README: ``python docs/record_view.py``.

Runs a pipeline whose middle stage is slow, draws one frame of the live view
half-way through and the summary at the end on a recording console, and
writes ``docs/view.svg``. Nothing is mocked: the figures are the run's own.
"""

from __future__ import annotations

import asyncio
import io
import os
import shlex
import sys
from collections.abc import Callable

from rich.console import Console

import ppipe
from ppipe.cli.display import LiveView

SLOW = shlex.join(
    [
        sys.executable,
        "-c",
        (
            "import sys, time\n"
            "while chunk := sys.stdin.buffer.read(1 << 16):\n"
            "    sys.stdout.buffer.write(chunk); time.sleep(0.004)\n"
        ),
    ]
)
PIPELINE = f"head -c 200M /dev/urandom | {SLOW} | gzip -1 | wc -c"


def main() -> None:
    console = Console(file=io.StringIO(), width=100, record=True, force_terminal=True, color_system="truecolor")
    # The view draws on a console of its own, so its refreshes are not recorded.
    screen = Console(file=io.StringIO(), width=100, force_terminal=True)
    view = LiveView(screen.file, console=screen)

    def frame() -> None:
        if view.execution is not None:
            console.print(f"$ ppipe '{PIPELINE.replace(SLOW, 'slow-filter')}'   (while it runs)")
            snapshot = view.execution.snapshot()
            console.print(view.render(snapshot))

    with view:
        result = _run_with_frame(view, frame)
    console.print("(when it ends)")
    console.print(view.render_summary(result))
    path = os.path.join(os.path.dirname(__file__), "view.svg")
    console.save_svg(path, title="ppipe")
    print(path)


def _run_with_frame(view: LiveView, frame: Callable[[], None]) -> ppipe.RunResult:
    """Runs the pipeline on a fresh loop that draws ``frame`` three seconds in."""

    async def run() -> ppipe.RunResult:
        asyncio.get_running_loop().call_later(3.0, frame)
        return await ppipe.run_async(PIPELINE, observer=view, count_lines=True, stdout=os.open(os.devnull, os.O_WRONLY))

    return asyncio.run(run())


if __name__ == "__main__":
    main()

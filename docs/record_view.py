"""Records the live view of a real run, as a terminal showed it, as an SVG for the README.

    python docs/record_view.py            # writes docs/view.svg (needs tmux and the installed ppipe)

Runs a real pipeline in a 100x24 tmux pane: a generated log, a slow filter,
sort and uniq. It reads the pane (with its colours) once while the run goes
on and once when it has ended, and writes both screens into ``docs/view.svg``
through rich's SVG export. Nothing is drawn by hand: the screens are what
tmux showed.
"""

from __future__ import annotations

import io
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from rich.console import Console
from rich.text import Text

COLUMNS, ROWS = 100, 24
#: A filter slower than the rest, so that the view has a bottleneck to show.
SLOW_FILTER = (
    f"#!{sys.executable}\n"
    "import sys, time\n"
    "for line in sys.stdin.buffer:\n"
    "    sys.stdout.buffer.write(line)\n"
    "    time.sleep(0.00002)\n"
)


def write_log(path: str, lines: int) -> None:
    """An application log: timestamps, levels, a few dozen messages."""
    levels = ["INFO"] * 8 + ["WARN"] * 2 + ["ERROR"]
    messages = [f"request {name} took {{}} ms" for name in ("GET /", "GET /api", "POST /login", "GET /static")]
    messages += ["cache miss for key {}", "retrying upstream {}", "disk usage at {}%"]
    rng = random.Random(7)
    with open(path, "w") as handle:
        for i in range(lines):
            message = rng.choice(messages).format(rng.randint(1, 99))
            handle.write(f"2026-12-07T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d} {rng.choice(levels)} {message}\n")


def pane(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True).stdout


def main() -> None:
    if shutil.which("tmux") is None or shutil.which("ppipe") is None:
        sys.exit("needs tmux and ppipe on PATH")
    socket = f"ppipe-record-{os.getpid()}"
    with tempfile.TemporaryDirectory() as scratch:
        log = os.path.join(scratch, "app.log")
        write_log(log, 400_000)
        slow = os.path.join(scratch, "slow-filter")
        with open(slow, "w") as handle:
            handle.write(SLOW_FILTER)
        os.chmod(slow, 0o755)
        pipeline = 'grep -v INFO app.log | ./slow-filter | cut -d" " -f2- | sort | uniq -c | sort -rn | head -4'
        ppipe = shutil.which("ppipe") or "ppipe"
        signal_end = f"tmux -L {socket} wait-for -S done"
        command = f"cd {shlex.quote(scratch)} && clear && {ppipe} {shlex.quote(pipeline)}; {signal_end}"
        subprocess.run(
            ["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-x", str(COLUMNS), "-y", str(ROWS), "sh"],
            env={**os.environ, "TERM": "xterm-256color", "PS1": "$ "},
            check=True,
        )
        try:
            pane(socket, "send-keys", command, "Enter")
            time.sleep(2.5)
            running = pane(socket, "capture-pane", "-e", "-p")
            pane(socket, "wait-for", "done")
            ended = pane(socket, "capture-pane", "-e", "-p")
        finally:
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
    console = Console(record=True, width=COLUMNS, file=io.StringIO(), force_terminal=True)
    console.print(Text(f"$ ppipe {shlex.quote(pipeline)}   # while it runs", style="bold"))
    console.print(Text.from_ansi(_screen_text(running)))
    console.print(Text("# when it has ended", style="bold"))
    console.print(Text.from_ansi(_screen_text(ended)))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "view.svg")
    console.save_svg(path, title="ppipe")
    print(path)


def _screen_text(captured: str) -> str:
    """The pane's lines without the shell's own (the command line, the prompt) and without trailing blanks."""
    lines = [line for line in captured.rstrip("\n").split("\n") if Text.from_ansi(line).plain.strip() not in ("$", "#")]
    while lines and not Text.from_ansi(lines[-1]).plain.strip():
        lines.pop()
    return "\n".join(lines)


if __name__ == "__main__":
    main()

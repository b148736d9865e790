#!/usr/bin/env python3
"""Runs a command on a real terminal and exits with its status: what ``run.py``'s terminal workloads time.

    python benchmarks/terminal.py pty COLUMNS ROWS -- COMMAND...
    python benchmarks/terminal.py tmux COLUMNS ROWS -- COMMAND...

``pty``: the command's stdout and stderr are a pseudo-terminal of that size,
read as fast as it writes (a terminal that costs nothing: what is measured
is the command's own cost of writing to a terminal). ``tmux``: the command
runs in a detached tmux pane of that size, which parses and draws every
byte, as a person's terminal does. Either way the last 4 KiB the terminal
received (pty) or showed (tmux) are printed on stdout, for the output check.

Only the standard library (and, for ``tmux``, tmux itself).
"""

from __future__ import annotations

import fcntl
import os
import pty
import shlex
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import uuid


def on_pty(columns: int, rows: int, argv: list[str]) -> int:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    tail = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: every writer closed the slave
                return
            if not chunk:
                return
            tail.extend(chunk)
            del tail[:-4096]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    status = process.wait()
    reader.join(timeout=10)
    sys.stdout.buffer.write(bytes(tail))
    return status


def in_tmux(columns: int, rows: int, argv: list[str]) -> int:
    socket = f"ppipe-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as scratch:
        status_file = os.path.join(scratch, "status")
        script = f"{shlex.join(argv)}; echo $? > {status_file}; tmux -L {socket} wait-for -S done; sleep 60"
        tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
        subprocess.run(
            [*tmux, "new-session", "-d", "-x", str(columns), "-y", str(rows), "sh", "-c", script], check=True
        )
        try:
            subprocess.run([*tmux, "wait-for", "done"], check=True)
            shown = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, check=True).stdout
        finally:
            subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)
        sys.stdout.buffer.write(shown[-4096:])
        with open(status_file) as handle:
            return int(handle.read())


def main(argv: list[str]) -> int:
    kind, columns, rows, separator, *command = argv
    if separator != "--" or kind not in ("pty", "tmux") or not command:
        print(__doc__, file=sys.stderr)
        return 2
    run = on_pty if kind == "pty" else in_tmux
    return run(int(columns), int(rows), command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

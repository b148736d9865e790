"""A real terminal for the tests: a tmux pane of a chosen size, driven and read back as a person would see it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pexpect
import pyte
import pytest

from helpers import ENV, PPIPE

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")


def in_pty(
    argv: list[str], env: dict[str, str], *, columns: int = 80, rows: int = 24, cwd: str | None = None
) -> tuple[int, bytes]:
    """Runs ``argv`` with a pseudo-terminal of that size as its stdin, stdout and stderr, to its end.

    Returns its exit status (128+N when a signal ended it) and every byte it wrote to the terminal.
    """
    child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=cwd, dimensions=(rows, columns), timeout=120)
    raw = b""
    while True:
        try:
            raw += child.read_nonblocking(65536, timeout=120)
        except pexpect.EOF:
            break
    child.close()
    status = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return status, raw


def screen_of(raw: bytes, columns: int, rows: int) -> pyte.Screen:
    """What a terminal of that size shows after it was sent ``raw``."""
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(raw)
    return screen


class Pane:
    """One tmux pane on a server of its own; :meth:`run` types a command line into it and waits for its end."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    def start(self, command: str) -> str:
        """Types ``command`` into the pane's shell; returns the channel :meth:`wait` waits on."""
        channel = f"done-{uuid.uuid4().hex[:8]}"
        line = f'{command}; echo "rc=$?" > {shlex.quote(self.status_file)}; tmux -L {self.socket} wait-for -S {channel}'
        self.tmux("send-keys", "-t", "t", line, "Enter")
        return channel

    def wait(self, channel: str, timeout: float = 60) -> int:
        """The command's exit status once it ended."""
        subprocess.run(["tmux", "-L", self.socket, "wait-for", channel], timeout=timeout, check=True)
        with open(self.status_file) as handle:
            return int(handle.read().strip().removeprefix("rc="))

    def run(self, command: str, timeout: float = 60) -> int:
        return self.wait(self.start(command), timeout)

    @property
    def status_file(self) -> str:
        return f"/tmp/{self.socket}.status"

    def screen(self) -> list[str]:
        """What the pane shows now, a line per row, trailing blanks cut."""
        return [line.rstrip() for line in self.tmux("capture-pane", "-p", "-t", "t").split("\n")]

    def everything(self) -> list[str]:
        """The scrollback and the screen, as the terminal holds them, blank lines left out."""
        text = self.tmux("capture-pane", "-p", "-t", "t", "-S", "-", "-E", "-")
        return [line.rstrip() for line in text.split("\n") if line.strip()]

    def resize(self, columns: int, rows: int) -> None:
        self.tmux("resize-window", "-t", "t", "-x", str(columns), "-y", str(rows))

    def wait_for_screen(self, found: str, timeout: float = 20, *, whole: bool = False) -> list[str]:
        """The screen once a line of it holds ``found`` (is ``found``, if ``whole``)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if any(found == line if whole else found in line for line in screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{found!r} never shown; the screen:\n" + "\n".join(screen))
            time.sleep(0.05)


@contextmanager
def tmux_pane(columns: int = 100, rows: int = 30, env: dict[str, str] | None = None) -> Iterator[Pane]:
    """A fresh tmux server with one ``columns`` x ``rows`` pane running ``sh``, ``ppipe`` on its PATH; always killed."""
    socket = f"ppipe-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    environment = {**(env or ENV), "TERM": "screen-256color", "PS1": "$ "}
    environment["PATH"] = os.path.dirname(PPIPE) + os.pathsep + environment.get("PATH", "")
    environment.pop("TMUX", None)
    config = f"/tmp/{socket}.conf"
    with open(config, "w") as handle:  # read before the pane exists: a pane keeps the history limit it was made with
        handle.write("set-option -g history-limit 100000\n")
    subprocess.run(
        ["tmux", "-L", socket, "-f", config, "new-session", "-d", "-s", "t", "-x", str(columns), "-y", str(rows), "sh"],
        env=environment,
        check=True,
        timeout=30,
    )
    pane = Pane(socket)
    try:
        pane.tmux("set-option", "-g", "window-size", "manual")  # resize-window sizes it, not a client
        yield pane
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)
        for path in (pane.status_file, config):
            if os.path.exists(path):
                os.unlink(path)

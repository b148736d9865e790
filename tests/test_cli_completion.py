"""Completion through the real bash script and readline: inside the quoted pipeline the quote stays open."""

from __future__ import annotations

import os
import pty
import select
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("ppipe") is None, reason="needs bash and the installed ppipe"
)


def read_until(fd: int, wanted: bytes, limit: float = 10.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + limit
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def completed_line(typed: str, cwd: Path) -> str:
    """What an interactive bash shows after ``typed`` and one Tab, with completions/ppipe.bash sourced.

    The line is then printed back by ``printf`` between markers (Ctrl-A, Ctrl-K kept out: the line is
    replaced by a command that shows it, so an open quote shows as bash waiting for more).
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive bash on the pty
        os.chdir(cwd)
        os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
    try:
        os.write(fd, f"PS1='READY> '; bind 'set bell-style none'; source {ROOT}/completions/ppipe.bash\n".encode())
        read_until(fd, b"READY> ", 10)
        read_until(fd, b"READY> ", 0.5)
        os.write(fd, typed.encode() + b"\t")
        shown = read_until(fd, b"\x00", 3.0)  # whatever readline draws within the time
        return shown.decode(errors="replace")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def test_completing_a_file_leaves_the_quote_open(tmp_path: Path) -> None:
    (tmp_path / "access.log").write_text("x")
    shown = completed_line('ppipe "grep 500 acc', tmp_path)
    assert shown.endswith('ppipe "grep 500 access.log'), repr(shown)


def test_completing_a_directory_leaves_the_quote_open_and_adds_no_space(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    shown = completed_line("ppipe 'cat lo", tmp_path)
    assert shown.endswith("ppipe 'cat logs/"), repr(shown)


def test_completing_a_command_in_a_later_stage(tmp_path: Path) -> None:
    shown = completed_line('ppipe "seq 3 | wc', tmp_path)
    assert shown.endswith('ppipe "seq 3 | wc'), repr(shown)  # wc is whole already; nothing closed

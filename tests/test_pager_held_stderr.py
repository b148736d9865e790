"""Other stages' stderr, held while a pager owns the terminal, is shown once it has gone."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pexpect
import pytest

from helpers import ENV, PPIPE

PAGER = shlex.join([sys.executable, str(Path(__file__).with_name("pager.py"))])


def run_paged(command: str, prompt: str) -> tuple[int, str]:
    """Runs ``ppipe --pager COMMAND`` in a pty, types ``q`` at the pager's prompt; the status and all output."""
    child = pexpect.spawn(
        PPIPE, ["--pager", command], env={**ENV, "TERM": "xterm-256color"}, dimensions=(24, 80), timeout=20
    )
    child.expect(prompt)
    seen = child.before + child.after
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    seen += child.before
    return child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus, seen.decode(errors="replace")


@pytest.mark.parametrize("status", [0, 3])
def test_held_stderr_is_shown_after_the_pager_and_before_the_failure_lines(status: int) -> None:
    code, out = run_paged(f"sh -c 'echo warn >&2; seq 100; exit {status}' | {PAGER}", "q to quit")
    assert code == status
    assert "warn\r\n" in out  # on a line of its own, not only inside the failure line's command
    assert out.index("bye") < out.index("warn\r\n")  # held until the pager left
    if status:
        assert out.index("warn\r\n") < out.index("failed: exit status 3")


@pytest.mark.skipif(shutil.which("less") is None, reason="less is not installed")
def test_held_stderr_reaches_the_terminal_after_less_quits() -> None:
    code, out = run_paged("sh -c 'echo warn >&2; seq 100; exit 3' | less", ":")
    assert code == 3
    assert "warn\r\n" in out
    assert out.index("warn\r\n") < out.index("failed: exit status 3")

"""Handing the terminal to a pager at the end of the pipeline, in a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import sys
import tempfile
import termios
from pathlib import Path

import pexpect
import pytest

from ppipe.cli.command import is_pager
from ppipe.engine.sinks import FdSink, HeldSink
from ppipe.graph import Stage

from helpers import ENV, PPIPE, children, ppipe, wait_until

PAGER = shlex.join([sys.executable, str(Path(__file__).with_name("pager.py"))])


def spawn(*args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    return pexpect.spawn(
        PPIPE, list(args), env={**ENV, "TERM": "xterm-256color", **(env or {})}, dimensions=(24, 80), timeout=20
    )


def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Reads to the end; returns the exit status and what was left on the screen's stream."""
    child.expect(pexpect.EOF)
    child.close()
    rest = child.before.decode(errors="replace")
    return (child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus), rest


def finish_keeping_terminal(child: pexpect.spawn) -> tuple[int, str]:
    """Like :func:`finish`, but the pseudo-terminal stays open to be looked at."""
    child.expect(pexpect.EOF)
    child.wait()
    rest = child.before.decode(errors="replace")
    return (child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus), rest


def test_a_pager_named_by_PAGER_gets_the_terminal_and_no_view_is_drawn() -> None:
    child = spawn(f"seq 3 | {PAGER}", env={"PAGER": PAGER})
    child.expect("pager: stdout is a terminal: True")
    child.expect("first line: 1")
    child.expect("q to quit")
    child.send("q")
    status, rest = finish(child)
    assert status == 0
    assert "bye" in rest
    assert "stages ·" not in rest and "✓" not in rest  # no view, no summary table


def test_ctrl_c_is_left_to_the_pager_and_other_stderr_waits_for_it() -> None:
    child = spawn("--pager", "--kill-after", "0.2", f"sh -c 'echo oops >&2; seq 5; sleep 30' | {PAGER}")
    child.expect("q to quit")
    child.sendintr()  # the producer dies of it; the pager ignores it, as less does
    with pytest.raises(pexpect.TIMEOUT):
        child.expect(["oops", pexpect.EOF], timeout=1.5)  # well past --kill-after: nobody killed the pager
    child.send("q")
    status, rest = finish(child)
    assert status == 130  # the producer was killed by SIGINT, as bash -o pipefail says
    assert rest.index("bye") < rest.index("oops")  # stage 1's stderr was held until the pager left
    assert "killed by SIGINT" in rest


@pytest.mark.parametrize(
    ("command", "paged"),
    [
        ("{ppipe} 'seq 3 | tr 1 x'", True),
        ("{ppipe} 'seq 3 | tr 1 x' | cat", False),  # its output is not the terminal: just a stage
        ("{ppipe} --no-pager 'seq 3 | tr 1 x'", False),
    ],
)
def test_a_pager_is_detected_only_when_its_output_is_the_terminal(command: str, paged: bool) -> None:
    # With stderr on the terminal the view is drawn, unless the last stage is
    # taken for a pager ($PAGER names it here).
    child = pexpect.spawn(
        "sh",
        ["-c", command.format(ppipe=shlex.quote(PPIPE))],
        env={**ENV, "TERM": "xterm-256color", "PAGER": "tr 1 x"},
        dimensions=(24, 80),
        timeout=20,
    )
    status, rest = finish(child)
    assert status == 0
    assert "x\r\n2\r\n3" in rest
    assert ("✓" in rest) is not paged  # the view's summary rows


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{ seq 1 ; seq 2 }"], "has none"),
        (["--fork", "2", "seq 1"], "sharded run"),
    ],
)
def test_pager_refused_where_no_one_stage_writes_the_output(args: list[str], expected: str) -> None:
    result = ppipe("--pager", *args)
    assert result.returncode == 2
    assert expected in result.stderr.decode()


@pytest.mark.skipif(shutil.which("less") is None, reason="less is not installed")
def test_less_pages_a_long_output_and_quits() -> None:
    child = spawn("seq 100000 | less")
    child.expect(r"\r1\r\n2\r\n3\r\n")  # less drew the first page itself
    child.expect(":")  # and waits at its prompt
    child.send("q")
    status, rest = finish(child)
    assert status == 0
    assert "100000" not in rest  # paged, not dumped


def test_a_pager_killed_by_a_signal_does_not_leave_the_terminal_without_echo() -> None:
    # The stand-in dies of SIGTERM (--timeout) in cbreak mode, without
    # restoring the terminal, as more(1) does: ppipe puts the modes back.
    child = spawn("--pager", "--timeout", "1", "--kill-after", "0.3", f"seq 5 | {PAGER}")
    child.expect("q to quit")
    assert not termios.tcgetattr(child.child_fd)[3] & termios.ECHO  # the pager's mode, while it runs
    status, _ = finish_keeping_terminal(child)
    assert status == 124
    assert termios.tcgetattr(child.child_fd)[3] & termios.ECHO


def test_ctrl_c_stops_the_run_again_once_the_pager_has_gone() -> None:
    child = spawn("--pager", "--kill-after", "0.3", f"sh -c 'trap \"\" INT; seq 5; sleep 30' | {PAGER}")
    child.expect("q to quit")
    child.send("q")
    child.expect("bye")
    # ppipe has seen the pager exit: it reaped it, and only the producer's shell is left among its children.
    wait_until(lambda: len(children(child.pid)) == 1, "ppipe reaped the pager")
    child.sendintr()  # the producer ignores it and lives on: ppipe must stop it now
    status, rest = finish(child)
    assert status == 128 + signal.SIGINT
    assert "interrupted by SIGINT" in rest


@pytest.mark.parametrize(
    ("pager", "argv", "expected"),
    [
        ("", ["less", "-R"], True),
        ("", ["/usr/bin/more"], True),
        ("", ["cat"], False),
        ("cat", ["cat"], False),  # PAGER=cat turns paging off, it names no pager
        ("bat --paging=always", ["bat", "--paging=always", "-l", "log"], True),
        ("bat --paging=always", ["bat"], False),
        ("python3 -m mypager", ["python3", "other.py"], False),
        ("'unbalanced", ["less"], True),
    ],
)
def test_which_last_stages_are_pagers(pager: str, argv: list[str], expected: bool) -> None:
    assert is_pager(Stage(1, tuple(argv)), {"PAGER": pager}) is expected


def test_held_stderr_goes_straight_through_when_it_cannot_be_kept(
    small_tmpdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real full TMPDIR: what was kept goes out first, then the rest, nothing lost, nothing torn."""
    monkeypatch.setattr(tempfile, "tempdir", str(small_tmpdir))
    out = tmp_path / "stderr"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    held = HeldSink(FdSink(fd), fall_through=True)
    lines = [b"%07d" % i + b"x" * 1000 + b"\n" for i in range(4000)]  # 4 MB: twice what TMPDIR holds

    async def scenario() -> None:
        for line in lines:
            assert await held.write(line, None)
        await held.release()

    try:
        asyncio.run(scenario())
    finally:
        os.close(fd)
    assert out.read_bytes() == b"".join(lines)

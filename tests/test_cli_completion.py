"""Completion through the real scripts in real interactive shells (bash, zsh, fish) on a pty: inside the quoted
pipeline the quote stays open and no space is added."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("ppipe") is None, reason="needs the installed ppipe")
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


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


@needs_bash
def test_completing_a_file_leaves_the_quote_open(tmp_path: Path) -> None:
    (tmp_path / "access.log").write_text("x")
    shown = completed_line('ppipe "grep 500 acc', tmp_path)
    assert shown.endswith('ppipe "grep 500 access.log'), repr(shown)


@needs_bash
def test_completing_a_directory_leaves_the_quote_open_and_adds_no_space(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    shown = completed_line("ppipe 'cat lo", tmp_path)
    assert shown.endswith("ppipe 'cat logs/"), repr(shown)


@needs_bash
def test_completing_a_command_in_a_later_stage(tmp_path: Path) -> None:
    shown = completed_line('ppipe "seq 3 | wc', tmp_path)
    assert shown.endswith('ppipe "seq 3 | wc'), repr(shown)  # wc is whole already; nothing closed


# ---------------------------------------------------------------- zsh and fish

SHELLS = [
    pytest.param(shell, marks=pytest.mark.skipif(shutil.which(shell) is None, reason=f"needs {shell}"))
    for shell in ("zsh", "fish")
]


def shell_buffer(shell: str, typed: str, cwd: Path, path: str | None = None) -> str:
    """The command line of an interactive zsh or fish after ``typed`` and one Tab, with ppipe's script loaded.

    Ctrl-T is bound to write the line to a file; the shell reads it after the completion is done, so the
    test waits for that file, not for a time. zsh loads ``_ppipe`` from ``fpath`` through compinit, as
    installed, so this is the first Tab after compinit.
    """
    dump = cwd / f".{shell}-line"
    dump.unlink(missing_ok=True)
    env = {
        **os.environ,
        "HOME": str(cwd),
        "XDG_CONFIG_HOME": str(cwd / ".config"),
        "XDG_DATA_HOME": str(cwd / ".data"),
        "XDG_CACHE_HOME": str(cwd / ".cache"),
        "TERM": "xterm",
        "PATH": path or os.environ.get("PATH", os.defpath),
    }
    if shell == "zsh":
        argv = ["zsh", "-f", "-i"]
        setup = (
            f"PS1='RE''ADY> '; fpath=({ROOT}/completions $fpath); autoload -U compinit; compinit -u -D; "
            f"ppipe-line() {{ print -r -- \"$BUFFER\" > '{dump}' }}; zle -N ppipe-line; bindkey '^T' ppipe-line\n"
        )
    else:
        argv = ["fish", "--no-config", "-i"]
        setup = (
            f"function fish_prompt; echo -n RE; echo -n 'ADY> '; end; source {ROOT}/completions/ppipe.fish; "
            f"bind \\ct \"commandline > '{dump}'\"\n"
        )
    pid, fd = pty.fork()
    if pid == 0:  # the child: the shell on the pty
        os.chdir(cwd)
        os.execvpe(argv[0], argv, env)
    try:
        _set_size(fd, 24, 200)
        os.write(fd, setup.encode())
        shown = read_until(fd, b"READY> ", 15)
        assert b"READY> " in shown, shown.decode(errors="replace")
        os.write(fd, typed.encode() + b"\t\x14")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            shown += read_until(fd, b"\x00", 0.05)  # keeps the pty drained
            if dump.exists() and dump.read_text().endswith("\n"):
                return dump.read_text()[:-1]
        raise AssertionError(f"{shell} did not show its line: {shown.decode(errors='replace')!r}")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def _set_size(fd: int, rows: int, columns: int) -> None:
    """A wide pty, so that zsh lists candidates without asking first."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


@pytest.mark.parametrize("shell", SHELLS)
def test_zsh_fish_completing_a_file_leaves_the_quote_open(shell: str, tmp_path: Path) -> None:
    (tmp_path / "access.log").write_text("x")
    assert shell_buffer(shell, 'ppipe "grep 500 acc', tmp_path) == 'ppipe "grep 500 access.log'


@pytest.mark.parametrize("shell", SHELLS)
def test_zsh_fish_completing_a_directory_leaves_the_quote_open(shell: str, tmp_path: Path) -> None:
    (tmp_path / "subdir").mkdir()
    assert shell_buffer(shell, "ppipe 'cat sub", tmp_path) == "ppipe 'cat subdir/"


@pytest.mark.parametrize("shell", SHELLS)
def test_zsh_fish_completing_a_command_at_a_stage_start(shell: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ppipe-test-cmd").write_text("#!/bin/sh\n")
    (bin_dir / "ppipe-test-cmd").chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    assert shell_buffer(shell, 'ppipe "ppipe-test-c', tmp_path, path) == 'ppipe "ppipe-test-cmd'
    assert shell_buffer(shell, 'ppipe "seq 3 | ppipe-test-c', tmp_path, path) == 'ppipe "seq 3 | ppipe-test-cmd'


@pytest.mark.parametrize("shell", SHELLS)
def test_zsh_fish_completing_an_option(shell: str, tmp_path: Path) -> None:
    assert shell_buffer(shell, "ppipe --di", tmp_path) == "ppipe --display "


# ---------------------------------------------------------------- ppipe report merge|show


@needs_bash
def test_report_completes_its_subcommands_their_options_and_files(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{}")
    assert completed_line("ppipe report sh", tmp_path).endswith("ppipe report show ")
    assert completed_line("ppipe report show --tim", tmp_path).endswith("ppipe report show --timeline ")
    assert completed_line("ppipe report merge --ta", tmp_path).endswith("ppipe report merge --tasks ")
    assert completed_line("ppipe report show ru", tmp_path).endswith("ppipe report show run.json ")
    assert completed_line("ppipe report show --svg ru", tmp_path).endswith("ppipe report show --svg run.json ")


@pytest.mark.parametrize("shell", SHELLS)
def test_zsh_fish_report_completes_its_subcommands_their_options_and_files(shell: str, tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{}")
    assert shell_buffer(shell, "ppipe report sh", tmp_path) == "ppipe report show "
    assert shell_buffer(shell, "ppipe report show --tim", tmp_path) == "ppipe report show --timeline "
    assert shell_buffer(shell, "ppipe report merge --ta", tmp_path) == "ppipe report merge --tasks "
    assert shell_buffer(shell, "ppipe report show ru", tmp_path) == "ppipe report show run.json "

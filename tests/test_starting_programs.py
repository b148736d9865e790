"""Starting a stage's program as bash would, and never more: a binary for another machine is refused, not run by sh;
a script without ``#!`` runs with sh; a missing interpreter is 127; what cannot start is reported once, cleanly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import ppipe as ppipe_module

from helpers import ENV, PPIPE, bash, ppipe

#: An aarch64 ELF header, then shell text that must never run.
FOREIGN_BINARY = (
    b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\xb7\x00\nPATH=/bin:/usr/bin; echo INJECTED > injected.txt\n"
)


def test_a_binary_for_another_machine_is_refused_not_run_by_sh(tmp_path: Path) -> None:
    program = tmp_path / "arm"
    program.write_bytes(FOREIGN_BINARY)
    program.chmod(0o755)
    result = ppipe("./arm", cwd=str(tmp_path))
    assert result.returncode == 126 == bash("./arm", cwd=str(tmp_path)).returncode
    assert not (tmp_path / "injected.txt").exists()
    assert b"cannot execute binary file" in result.stderr


@pytest.mark.parametrize(
    "content", [b"ab\0cd\necho INJECTED > injected.txt\n", b"#!/bin/sh\n\0echo INJECTED > injected.txt\n"]
)
def test_a_nul_where_bash_looks_for_one_is_a_binary(tmp_path: Path, content: bytes) -> None:
    """bash checks the first line, or the whole first 128 bytes after a #! (here a #! the kernel runs)."""
    program = tmp_path / "prog"
    program.write_bytes(content)
    program.chmod(0o755)
    expected = bash("./prog", cwd=str(tmp_path))
    (tmp_path / "injected.txt").unlink(missing_ok=True)
    result = ppipe("./prog", cwd=str(tmp_path))
    assert result.returncode == expected.returncode
    if not content.startswith(b"#!"):
        assert result.returncode == 126
        assert not (tmp_path / "injected.txt").exists()


def test_a_text_script_without_a_hash_bang_still_runs_with_sh(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("echo from sh\n")
    script.chmod(0o755)
    result = ppipe("./script", cwd=str(tmp_path))
    assert (result.returncode, result.stdout) == (0, b"from sh\n")


def test_a_missing_interpreter_is_127_as_bash_says(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/nonexistent/interpreter\necho hi\n")
    script.chmod(0o755)
    result = ppipe("./script", cwd=str(tmp_path))
    assert result.returncode == 127 == bash("./script", cwd=str(tmp_path)).returncode
    assert b"/nonexistent/interpreter: bad interpreter" in result.stderr


def test_a_stage_that_cannot_start_is_reported_once(tmp_path: Path) -> None:
    result = ppipe("ls > missing/dir/out", cwd=str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count(b"No such file or directory") == 1
    assert result.stderr.startswith(b"ppipe: stage 1 (ls) failed: not started: missing/dir/out")


@pytest.mark.parametrize("builtin", ["cd /tmp", "export X=1", "source x"])
def test_a_shell_builtin_is_named_as_one(builtin: str) -> None:
    result = ppipe(builtin)
    assert result.returncode == 127
    assert b"a shell builtin, which cannot be a stage" in result.stderr
    assert b"sh -c" in result.stderr


def test_non_utf8_file_name_is_reported_not_crashed() -> None:
    result = subprocess.run([PPIPE, b"cat < /nonexistent/nof\xff | wc -l"], capture_output=True, timeout=30, env=ENV)
    assert result.returncode == 1
    assert result.stdout.strip() == b"0"
    assert b"internal error" not in result.stderr


def test_nul_byte_in_a_variable_fails_the_stage_cleanly() -> None:
    result = ppipe_module.run(
        "cat",
        env={"PATH": os.environ["PATH"], "X": "a\0b"},
        input=b"",
        stdout=ppipe_module.CAPTURE,
        stderr=os.open(os.devnull, os.O_WRONLY),
    )
    assert result.exit_status == 1
    assert result.stages[0].error is not None

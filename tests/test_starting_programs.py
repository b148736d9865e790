"""What ppipe must never do on a user's behalf: write through a planted symlink, run a binary's text as a script."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import ENV, PPIPE, bash, ppipe

#: An aarch64 ELF header, then shell text that must never run.
FOREIGN_BINARY = (
    b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\xb7\x00\nPATH=/bin:/usr/bin; echo INJECTED > injected.txt\n"
)


def test_report_never_writes_through_a_symlink_planted_at_the_old_temporary_name(tmp_path: Path) -> None:
    """`exec` keeps the shell's pid, so the symlink sits where ppipe once put `report.json.tmp<pid>`."""
    target = tmp_path / "precious"
    target.write_text("precious\n")
    script = (
        f"ln -s precious report.json.tmp$$; ln -s precious .report.json.tmp$$; exec '{PPIPE}' --report report.json true"
    )
    result = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, timeout=30, env=ENV)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "precious\n"
    report = tmp_path / "report.json"
    assert not report.is_symlink()
    assert json.loads(report.read_text())["exit_status"] == 0


def test_report_leaves_no_temporary_file_and_gets_the_usual_mode(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        assert ppipe("--report", "r.json", "true", cwd=str(tmp_path)).returncode == 0
    finally:
        os.umask(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_report_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    report.write_text("{}")
    report.chmod(0o600)
    assert ppipe("--report", "r.json", "true", cwd=str(tmp_path)).returncode == 0
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert json.loads(report.read_text())["exit_status"] == 0


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

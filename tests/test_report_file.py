"""How ``--report`` writes its file: whole or not at all, never through a planted symlink, with the usual mode or
the mode of the file it replaces, and into a fifo as into a file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from helpers import ENV, PPIPE, ppipe


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


def test_report_into_a_fifo_keeps_the_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert ppipe("--report", str(fifo), "true").returncode == 0
    out, _ = reader.communicate(timeout=20)
    assert b'"schema": "ppipe-report/2"' in out
    assert stat.S_ISFIFO(fifo.stat().st_mode)

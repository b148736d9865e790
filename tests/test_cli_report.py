"""``--report``: refused before anything runs when it cannot be written; ``-`` is the last line on stderr."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from helpers import ENV, PPIPE, ppipe, python_stage


@pytest.mark.parametrize("destination", ["{tmp}", "/sys/r.json", "{tmp}/missing/r.json"])
def test_a_report_that_cannot_be_written_is_refused_before_anything_runs(destination: str, tmp_path: Path) -> None:
    """A directory, and a directory that refuses new files whatever its mode bits say (``/sys``, even to root)."""
    target = destination.format(tmp=tmp_path)
    for line in (["--report", target], ["-qq", "--report", target]):  # the fast path, and typer's
        result = ppipe(*line, f"touch {tmp_path}/ran")
        assert result.returncode == 2
        assert result.stderr.decode().startswith(f"ppipe: cannot write the report to {target}: ")
        assert result.stderr.count(b"\n") == 1
        assert not (tmp_path / "ran").exists()


def test_report_on_stderr_is_its_last_line_after_stderr_without_a_newline() -> None:
    stage = python_stage("import sys; sys.stderr.write('no newline at the end'); sys.exit(3)")
    result = ppipe("--report", "-", f"seq 3 | {stage}")
    assert result.returncode == 3
    last = result.stderr.decode().splitlines()[-1]
    report = json.loads(last)
    assert report["exit_status"] == 3
    assert "no newline at the end\n" in result.stderr.decode()  # the report started a line of its own


def test_a_script_takes_the_report_with_tail() -> None:
    script = (
        f"{PPIPE} --report - 'seq 3 | sh -c \"cat; echo warn >&2\"' 2>&1 >/dev/null | tail -n 1 | python3 -m json.tool"
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, timeout=60, env=ENV)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["exit_status"] == 0


def test_a_report_names_its_host_and_the_array_task_it_was(tmp_path: Path) -> None:
    """The reports of a job array's tasks say which task each was, so they can be merged into one."""
    report = tmp_path / "r.json"
    env = {**ENV, "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}
    env["SLURM_JOB_ID"] = "77"
    result = ppipe("--report", str(report), "echo {task_id}", env=env)
    assert (result.returncode, result.stdout) == (0, b"2\n")
    data = json.loads(report.read_text())
    assert data["host"] == socket.gethostname()
    assert data["task"] == {"task_id": 2, "tasks": 4, "source": "Slurm", "job_id": "77"}
    plain = tmp_path / "plain.json"
    assert ppipe("--report", str(plain), "true").returncode == 0
    assert json.loads(plain.read_text())["task"] is None

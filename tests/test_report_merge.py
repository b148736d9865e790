"""``ppipe report merge``: the reports of a job array's tasks, read as the report of one ``--fork`` run.

Every report here is written by the real command line, one ``--task-id I
--tasks N`` run per task, as a cluster would run them.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from helpers import ENV, ppipe

#: Task 0 passes, task 1 outlives its --timeout, task 2 fails in its second stage (saying why on stderr).
ARRAY = (
    'seq 1 {task_num} 20 | sh -c "case {task_id} in 1) sleep 30;; 2) echo bad input >&2; exit 3;; esac; cat" | wc -l'
)


def task(tmp: Path, task_id: int | None, tasks: int, pipeline: str, *options: str, name: str = "", **env: str) -> Path:
    """Runs one task of the array for real and returns its report; ``task_id`` None: ``env`` says which."""
    report = tmp / (name or f"r{task_id}.json")
    identity = [] if task_id is None else ["--task-id", str(task_id), "--tasks", str(tasks)]
    result = ppipe("-q", *identity, "--report", str(report), *options, pipeline, env={**ENV, **env}, cwd=str(tmp))
    assert report.exists(), result.stderr
    return report


def merge(*args: str | Path, cwd: Path | None = None) -> tuple[int, dict[str, Any] | None, list[str]]:
    """``ppipe report merge ARGS``: its status, the merged report it printed (if any) and its stderr lines."""
    result = ppipe("report", "merge", *map(str, args), cwd=str(cwd) if cwd else None)
    merged = json.loads(result.stdout) if result.stdout else None
    return result.returncode, merged, result.stderr.decode().splitlines()


def test_the_tasks_of_an_array_read_as_one_sharded_run(tmp_path: Path) -> None:
    """A pass, a timeout, a failure and a task that never reported: one report, the failures' lines, 124."""
    slurm = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"}
    reports = [
        task(tmp_path, None, 4, ARRAY, name="r0.json", **slurm, SLURM_JOB_ID="501"),  # the task from Slurm's variables
        task(tmp_path, 1, 4, ARRAY, "--timeout", "0.5"),
        task(tmp_path, 2, 4, ARRAY),
    ]
    status, merged, lines = merge(*reports)
    assert status == 124  # the lowest failed task's status: task 1 timed out
    assert merged is not None
    assert merged["schema"] == "ppipe-report/2"
    assert merged["pipeline"] == ARRAY
    assert (merged["error"], merged["stages"], merged["edges"], merged["bottleneck"]) == (None, [], [], None)
    assert (merged["timed_out"], merged["interrupted_by"], merged["exit_status"]) == (False, None, 124)
    starts = [json.loads(r.read_text())["started_at"] for r in reports]
    ends = [json.loads(r.read_text())["ended_at"] for r in reports]
    assert (merged["started_at"], merged["ended_at"]) == (min(starts), max(ends))
    shards = merged["shards"]
    assert [s["task_id"] for s in shards] == [0, 1, 2, 3]
    assert [s["tasks"] for s in shards] == [4] * 4
    assert [s["verdict"] for s in shards] == ["ok", "failed", "failed", "failed"]
    assert [s["exit_status"] for s in shards] == [0, 124, 3, None]
    assert [len(s["attempts"]) for s in shards] == [1, 1, 1, 0]
    assert shards[2]["pipeline"].startswith('seq 1 3 20 | sh -c "case 2 in')
    assert [s["host"] for s in shards] == [socket.gethostname()] * 3 + [None]
    assert [s["job_id"] for s in shards] == ["501", None, None, None]
    assert shards[0]["attempts"][0]["job_id"] == "501"
    assert shards[0]["attempts"][0]["host"] == socket.gethostname()
    assert shards[1]["attempts"][0]["timed_out"] is True
    assert shards[3]["error"] == "no report came from task 3"
    failed_stage = shards[2]["attempts"][0]["stages"][1]
    assert (failed_stage["verdict"], failed_stage["status"]) == ("failed", 3)
    assert [t["verdict"] for t in merged["array_tasks"]] == ["ok", "failed", "failed", "failed"]
    assert lines[0].startswith("ppipe: shard 1 failed after 1 attempt (#1 exit status 124): seq 1 2 20 |")
    assert re.fullmatch(r"  timed out after [0-9.]+s; every stage was stopped", lines[1])  # the time it ran
    assert lines[2].startswith("ppipe: shard 2 failed after 1 attempt (#1 exit status 3): seq 1 3 20 |")
    assert lines[3].startswith("  stage 2 (sh -c 'case 2 in") and lines[3].endswith(" failed: exit status 3")
    assert lines[4] == "    | bad input"
    assert lines[5].startswith("ppipe: shard 3 failed after 0 attempts (no report came from task 3): seq 1 4 20 |")
    assert lines[6] == (
        "ppipe: 4 tasks: 1 ok, 3 failed (task 1: exit status 124, timed out; task 2: exit status 3; task 3: no report)"
    )
    assert len(lines) == 7


def test_a_missing_task_fails_a_merge_whose_every_report_passed(tmp_path: Path) -> None:
    status, merged, lines = merge(task(tmp_path, 0, 2, ARRAY))
    assert status == 1
    assert merged is not None and merged["exit_status"] == 1
    assert lines[-1] == "ppipe: 2 tasks: 1 ok, 1 failed (task 1: no report)"


def test_every_task_passing_passes(tmp_path: Path) -> None:
    pipeline = "seq {task_num} | wc -l"
    status, merged, lines = merge(*(task(tmp_path, i, 3, pipeline) for i in range(3)))
    assert status == 0
    assert merged is not None and [s["verdict"] for s in merged["shards"]] == ["ok"] * 3
    assert lines == ["ppipe: 3 tasks: 3 ok"]


def test_a_resubmitted_task_is_one_shard_with_an_attempt_per_report_in_the_order_they_ran(tmp_path: Path) -> None:
    """The first submission could not start (its command missing there), the second passed."""
    pipeline = "seq 3 | $TOOL"
    first = task(tmp_path, 0, 1, pipeline, name="first.json", TOOL="no-such-tool")
    second = task(tmp_path, 0, 1, pipeline, name="second.json", TOOL="cat")
    status, merged, lines = merge(second, first)  # given out of order
    assert status == 0
    assert merged is not None
    (shard,) = merged["shards"]
    assert (shard["verdict"], shard["exit_status"], shard["restarts"]) == ("ok", 0, 1)
    attempts = shard["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0]["exit_status"] == 127
    assert "no-such-tool: command not found" in attempts[0]["error"]
    assert (attempts[1]["exit_status"], attempts[1]["error"]) == (0, None)
    assert [s["restarts"] for s in attempts[1]["stages"]] == [1, 1]
    assert merged["array_tasks"][0]["reports"] == 2
    assert lines == ["ppipe: 1 task: 1 ok"]
    # The other way round, the task's verdict is its last report's.
    later = task(tmp_path, 0, 1, pipeline, name="third.json", TOOL="no-such-tool")
    status, merged, lines = merge(first, second, later)
    assert status == 127
    assert merged is not None and merged["shards"][0]["restarts"] == 2
    assert lines[0].startswith("ppipe: shard 0 failed after 3 attempts (#1 stage 2: no-such-tool: command not found")
    assert lines[-1] == "ppipe: 1 task: 0 ok, 1 failed (task 0: exit status 127, never started)"


def test_forked_tasks_give_their_shards_with_the_arrays_ids(tmp_path: Path) -> None:
    """``--fork 2`` in each of 3 tasks: 6 shards; the missing task's two are there, failed."""
    pipeline = "seq {task_num} | sh -c 'cat; exit $(( {task_id} == 3 ))'"
    reports = [task(tmp_path, i, 3, pipeline, "--fork", "2") for i in (0, 1)]
    status, merged, lines = merge(*reports)
    assert status == 1
    assert merged is not None
    shards = merged["shards"]
    assert [s["task_id"] for s in shards] == [0, 1, 2, 3, 4, 5]
    assert [s["tasks"] for s in shards] == [6] * 6
    assert [s["verdict"] for s in shards] == ["ok", "ok", "ok", "failed", "failed", "failed"]
    assert [s["exit_status"] for s in shards] == [0, 0, 0, 1, None, None]
    assert [s["bytes_out"] for s in shards[:4]] == [2, 4, 6, 8]  # the task pumped its shards' output: counted
    assert [s["error"] for s in shards[4:]] == ["no report came from task 2"] * 2
    assert shards[4]["pipeline"] == "seq 5 | sh -c 'cat; exit $(( 4 == 3 ))'"
    assert all(a["host"] == socket.gethostname() for s in shards for a in s["attempts"])
    assert lines[-1] == "ppipe: 3 tasks: 1 ok, 2 failed (task 1: exit status 1; task 2: no report)"


def test_the_merge_of_n_tasks_reads_as_the_local_fork_n_run(tmp_path: Path) -> None:
    """The same pipeline as 3 array tasks and as ``ppipe --fork 3``: the shards say the same, field by field.

    What may differ: times, pids and wait statuses (a task's attempt has no shard process), hosts, and a plain task's
    ``bytes_out``/``lines_out``: the task handed its stdout to its last stage, so ppipe did not count it
    (null), where a local ``--fork`` pumps every shard's output (0 here: it goes to files).
    """
    pipeline = 'seq 1 {task_num} 30 | sh -c "cat; echo oops >&2; exit {task_id}" > out{task_id}.txt'
    local_report = tmp_path / "local.json"
    local_run = ppipe("-q", "--fork", "3", "--report", str(local_report), pipeline, cwd=str(tmp_path))
    local = json.loads(local_report.read_text())
    status, merged, _ = merge(*(task(tmp_path, i, 3, pipeline) for i in range(3)))
    assert merged is not None
    assert status == local_run.returncode == local["exit_status"] == merged["exit_status"] == 1
    assert set(merged) == set(local)
    timing = {
        "pid",
        "started_at",
        "ended_at",
        "duration",
        "held",
        "bottleneck",
        "waited_on_producer",
        "waited_on_consumer",
    }
    for ours, theirs in zip(merged["shards"], local["shards"], strict=True):
        assert set(ours) == set(theirs)
        for field in theirs.keys() - {"attempts", "bytes_out", "lines_out", "host", "job_id"}:
            assert ours[field] == theirs[field], field
        assert (ours["bytes_out"], ours["lines_out"], theirs["bytes_out"], theirs["lines_out"]) == (None, None, 0, 0)
        (attempt,), (their_attempt,) = ours["attempts"], theirs["attempts"]
        assert set(attempt) == set(their_attempt)
        # A local slot's number is the local run's alone: an array task runs in no slot of ppipe's.
        unshared = {"stages", "edges", "host", "job_id", "result", "wait_status", "slot"}
        for field in their_attempt.keys() - timing - unshared:
            assert attempt[field] == their_attempt[field], field
        for kind in ("stages", "edges"):
            for mine, other in zip(attempt[kind], their_attempt[kind], strict=True):
                assert {k: v for k, v in mine.items() if k not in timing} == {
                    k: v for k, v in other.items() if k not in timing
                }


def test_the_merged_report_goes_to_a_file_and_q_silences_the_summary(tmp_path: Path) -> None:
    report = task(tmp_path, 0, 2, ARRAY)
    out = tmp_path / "merged.json"
    result = ppipe("report", "merge", "-q", "--report", str(out), str(report))
    assert (result.returncode, result.stdout, result.stderr) == (1, b"", b"")
    assert json.loads(out.read_text())["shards"][1]["error"] == "no report came from task 1"
    refused = ppipe("report", "merge", "--report", str(tmp_path), str(report))
    assert refused.returncode == 2
    assert refused.stderr.decode() == f"ppipe: cannot write the report to {tmp_path}: it is a directory\n"


def test_tasks_gives_the_count_reports_without_a_task_lack(tmp_path: Path) -> None:
    """A run that was no array task says no count: ``--tasks 1`` takes its reports as one task's attempts."""
    report = tmp_path / "plain.json"
    assert ppipe("--report", str(report), "true").returncode == 0
    status, _, lines = merge(report)
    assert status == 2
    assert "does not say which task of a job array it was" in lines[0]
    status, merged, lines = merge("--tasks", "1", report)
    assert status == 0 and merged is not None and len(merged["shards"]) == 1
    status, merged, lines = merge("--tasks", "3", task(tmp_path, 0, 3, ARRAY))
    assert status == 1 and merged is not None and len(merged["shards"]) == 3
    status, _, lines = merge("--tasks", "2", task(tmp_path, 0, 3, ARRAY))
    assert status == 2
    assert len(lines) == 1
    assert lines[0].startswith("ppipe: the reports are not of one job array: their task counts differ (--tasks 2) (")
    assert lines[0].endswith("r0.json: 3)")


# ---------------------------------------------------------------- what cannot be merged


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.hostile_reports  # they are not of the schema's shape, on purpose
@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda tmp, good: _write(tmp / "x.json", "not json at all\n"), "x.json is not a JSON report (at line 1"),
        (lambda tmp, good: _write(tmp / "x.json", good.read_text()[:200]), "x.json is not a JSON report (at line"),
        (lambda tmp, good: _write(tmp / "x.json", ""), "x.json is not a JSON report"),
        (lambda tmp, good: _write(tmp / "x.json", "[1, 2]"), "x.json is not a report: it holds a JSON list"),
        (lambda tmp, good: tmp, "cannot read the report {tmp}: Is a directory"),
        (
            lambda tmp, good: tmp / "missing.json",
            "cannot read the report missing.json: No such file or directory",
        ),
        (
            lambda tmp, good: _write(tmp / "x.json", good.read_text().replace("ppipe-report/2", "ppipe-report/9")),
            "x.json is not a ppipe-report/2 report: it is a ppipe-report/9 report, from a newer ppipe than this one",
        ),
        (lambda tmp, good: _write(tmp / "x.json", '{"schema": "ppipe-report/2"}'), "x.json is not a ppipe-report/2"),
        (lambda tmp, good: good, "are the same report (task 0) given twice"),
        (
            lambda tmp, good: task(tmp, 1, 2, "seq 2", name="other.json"),
            'the reports are of different pipelines: r0.json ran "seq {task_num}", other.json ran "seq 2"',
        ),
        (lambda tmp, good: task(tmp, 1, 3, "seq {task_num}", name="x.json"), "their task counts differ"),
        (
            lambda tmp, good: task(tmp, 1, 2, "seq {task_num}", "--fork", "2", name="x.json"),
            "the reports are of tasks of different shapes: r0.json ran one pipeline, x.json ran --fork 2",
        ),
    ],
)
def test_reports_that_cannot_be_merged_are_refused_in_one_line(tmp_path: Path, make: Any, said: str) -> None:
    good = task(tmp_path, 0, 2, "seq {task_num}")
    bad = make(tmp_path, good)
    result = ppipe("report", "merge", good.name, os.path.relpath(bad, tmp_path) if bad != tmp_path else str(tmp_path),
                   cwd=str(tmp_path))  # fmt: skip
    message = result.stderr.decode()
    assert result.returncode == 2, message
    assert result.stdout == b""
    assert message.count("\n") == 1 and "Traceback" not in message
    assert said.replace("{tmp}", str(tmp_path)) in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_report_is_refused(tmp_path: Path) -> None:
    report = task(tmp_path, 0, 1, "true")
    report.chmod(0)
    status, _, lines = merge(report)
    assert (status, lines) == (2, [f"ppipe: cannot read the report {report}: Permission denied"])


def test_the_command_line_of_report_merge(tmp_path: Path) -> None:
    """``report merge`` only as two words of their own; ``ppipe report`` still runs a program called report."""
    assert ppipe("report", "merge").stderr.decode().startswith("ppipe: ppipe report merge takes the report files")
    assert ppipe("report", "merge", "--frobnicate", "x").stderr.decode() == (
        "ppipe: no such option: --frobnicate (see ppipe report merge -h)\n"
    )
    assert ppipe("report", "merge", "--tasks", "0", "x").returncode == 2
    helped = ppipe("report", "merge", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith(b"Usage: ppipe report merge")
    program = tmp_path / "report"
    program.write_text('#!/bin/sh\necho ran report "$@"\n')
    program.chmod(0o755)
    env = {**ENV, "PATH": f"{tmp_path}:{ENV['PATH']}"}
    assert ppipe("report", env=env).stdout == b"ran report\n"
    assert ppipe("report merge a.json", env=env).stdout == b"ran report merge a.json\n"
    assert ppipe("--", "report", "merge", env=env).returncode == 2  # still a pipeline split over words


def test_the_library_merges_and_summarizes(tmp_path: Path) -> None:
    """The API the command uses: reports in, the merged report out; its summary and status from it alone."""
    from ppipe.merging import MergeError, merge_reports, merge_summary, read_reports

    reports = read_reports([str(task(tmp_path, i, 3, "seq {task_num}")) for i in (0, 2)])
    merged = merge_reports(reports)
    assert [s["verdict"] for s in merged["shards"]] == ["ok", "failed", "ok"]
    summary = merge_summary(merged)
    assert summary.exit_status == merged["exit_status"] == 1
    assert summary.lines[-1] == "ppipe: 3 tasks: 2 ok, 1 failed (task 1: no report)"
    with pytest.raises(MergeError, match="task counts differ"):
        merge_reports(reports, tasks=4)
    with pytest.raises(MergeError, match="no report to merge"):
        merge_reports([])

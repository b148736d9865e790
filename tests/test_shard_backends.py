"""The shard lifecycle's cases against both backends: local slots and a real Slurm array give the same verdicts.

Restarts, ``--halt``, ``--shard-timeout``, the job log and stopping are
decided once, by :class:`ppipe.shards.lifecycle.Scheduler`, whatever runs
the attempts; these run each case both ways through the same call and
compare what the result (and the job log) says.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ppipe
from ppipe.stops import HALT, StopReason
from slurm_cluster import SlurmCluster

# The Slurm half shares the session's one cluster with the other Slurm modules (see slurm_cluster.py).
pytestmark = pytest.mark.xdist_group("slurm")

Run = Callable[..., ppipe.RunResult]


@pytest.fixture(params=["local", "slurm"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Run:
    """``ppipe.run`` with the shards in local slots, or as the tasks of a Slurm array."""
    if request.param == "local":
        return ppipe.run
    slurm: SlurmCluster = request.getfixturevalue("slurm")

    def on_slurm(text: str, **keywords: Any) -> ppipe.RunResult:
        return ppipe.run(text, on="slurm", env=slurm.env, run_directory=str(tmp_path / "run"), **keywords)

    return on_slurm


def shape(result: ppipe.RunResult) -> list[tuple[int, str, int | None, int]]:
    return [(s.task_id, s.verdict.value, s.exit_status, len(s.attempts)) for s in result.shards]


def test_each_shard_s_status_and_the_lowest_failed_one_for_the_run(run: Run) -> None:
    result = run("sh -c 'exit {task_id}'", fork=3)
    assert shape(result) == [(0, "ok", 0, 1), (1, "failed", 1, 1), (2, "failed", 2, 1)]
    assert result.exit_status == 1 and result.stopped_by is None


def test_a_failed_attempt_runs_again_while_restarts_are_left(run: Run, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    once = f"sh -c 'test -e {marks}/{{task_id}} || {{ touch {marks}/{{task_id}}; exit 3; }}'"
    result = run(once, fork=2, max_restarts=1)
    assert shape(result) == [(0, "ok", 0, 2), (1, "ok", 0, 2)]
    assert result.exit_status == 0


def test_halt_starts_no_more_and_the_failure_decides_the_status(run: Run) -> None:
    result = run("sh -c 'exit {task_id}'", fork=4, jobs=1, halt="soon,fail=1")
    verdicts = [(s.task_id, s.verdict.value) for s in result.shards]
    assert verdicts[:2] == [(0, "ok"), (1, "failed")]
    assert {verdict for _, verdict in verdicts[2:]} <= {"terminated"}  # never started, or cancelled while queued
    assert result.stopped_by == HALT and result.exit_status == 1


def test_shard_timeout_stops_each_shard_with_124(run: Run) -> None:
    result = run("sleep 60", fork=2, shard_timeout=1.0, kill_after=1.0)
    assert [(s.verdict.value, s.exit_status) for s in result.shards] == [("failed", 124)] * 2
    assert result.exit_status == 124
    assert all(s.last_result is None or s.last_result.stopped_by == StopReason.timeout(1.0) for s in result.shards)


def test_a_run_ppipe_stops_logs_its_attempts_as_not_final_so_resume_runs_them(run: Run, tmp_path: Path) -> None:
    joblog = tmp_path / "jobs.log"
    result = run("sh -c 'test {task_id} = 0 || exec sleep 60'", fork=2, timeout=4.0, joblog=str(joblog))
    assert result.exit_status == 124 and result.stopped_by == StopReason.timeout(4.0)
    lines = [json.loads(line) for line in joblog.read_text().splitlines()[1:]]
    assert sorted((line["task_id"], line["status"] == 0, line["final"]) for line in lines) == [
        (0, True, True),
        (1, False, False),
    ]


def test_shards_halt_kept_from_running_are_run_by_resume(run: Run, tmp_path: Path) -> None:
    """Local slots never start them; a Slurm array cancels them (queued, or just started: Slurm may start the
    next task before the cancel lands): either way no final line, so ``--resume`` runs every shard that did
    not end by itself, and skips the shard that decided the halt."""
    joblog, marks = tmp_path / "jobs.log", tmp_path / "ran"
    marks.mkdir()
    text = f"sh -c 'touch {marks}/{{task_id}}; test {{task_id}} != 0'"
    first = run(text, fork=3, jobs=1, halt="now,fail=1", joblog=str(joblog))
    assert first.exit_status == 1 and "0" in {p.name for p in marks.iterdir()}
    done_first = {s.task_id for s in first.shards if s.verdict.value == "ok"}
    for mark in marks.iterdir():
        mark.unlink()
    again = run(text, fork=3, jobs=1, joblog=str(joblog), resume=ppipe.Resume.ALL)
    ran_again = {int(p.name) for p in marks.iterdir()}
    assert ran_again.isdisjoint(done_first | {0}) and ran_again | done_first == {1, 2}
    assert again.shards[0].verdict.value == "skipped" and again.exit_status == 0

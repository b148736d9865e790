"""The lines ppipe prints about a finished run when no view is up (logs, Makefiles, scripts)."""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ppipe
from ppipe.launch import run_of
from ppipe.results import RunResult, StageResult
from ppipe.summary import failure_lines

from helpers import ppipe as run_ppipe


def stderr_lines(*args: str) -> tuple[int, list[str]]:
    result = run_ppipe(*args)
    return result.returncode, result.stderr.decode().splitlines()


# -- failures excused by --no-fail or the - marker are still reported


def test_no_fail_reports_each_excused_failure() -> None:
    status, lines = stderr_lines("--no-fail", "false | sh -c 'exit 3'")
    assert status == 0
    assert lines == [
        "ppipe: stage 1 (false) exit status 1, ignored (--no-fail)",
        "ppipe: stage 2 (sh -c 'exit 3') exit status 3, ignored (--no-fail)",
    ]


def test_the_marker_reports_its_excused_failure() -> None:
    status, lines = stderr_lines("printf 'a\\n' | -grep zzz | wc -l")
    assert status == 0
    assert lines == ["ppipe: stage 2 (grep zzz) exit status 1, ignored (marked with -)"]


def test_quiet_prints_no_excused_failure() -> None:
    assert stderr_lines("-q", "--no-fail", "false | true") == (0, [])


def test_an_excused_failure_beside_a_real_one_is_reported_in_stage_order() -> None:
    status, lines = stderr_lines("--", "-false | sh -c 'exit 2'")
    assert status == 2
    assert lines == [
        "ppipe: stage 1 (false) exit status 1, ignored (marked with -)",
        "ppipe: stage 2 (sh -c 'exit 2') failed: exit status 2",
    ]


def test_sharded_runs_report_excused_failures_per_shard() -> None:
    status, lines = stderr_lines("--fork", "2", "--no-fail", "sh -c 'exit {task_num}'")
    assert status == 0
    assert sorted(lines) == [
        f"ppipe: shard {i}: stage 1 (sh -c 'exit {i + 1}') exit status {i + 1}, ignored (--no-fail)" for i in range(2)
    ]


# -- a stderr tail already seen above is not quoted again


def with_stages(result: RunResult, stages: list[StageResult]) -> RunResult:
    """The plain run ``result`` had its stages been ``stages``."""
    assert result.local is not None
    return run_of(dataclasses.replace(result.local, stages=tuple(stages)))


@pytest.fixture(scope="module")
def failed_with_stderr() -> RunResult:
    result = ppipe.run("sh -c 'echo oops >&2; echo again >&2; exit 3' | cat", stdout=ppipe.CAPTURE)
    assert isinstance(result, RunResult) and result.exit_status == 3
    return result


def test_a_tail_seen_as_it_was_written_is_not_quoted(failed_with_stderr: RunResult) -> None:
    seen = with_stages(
        failed_with_stderr, [dataclasses.replace(s, stderr_seen=True) for s in failed_with_stderr.stages]
    )
    assert failure_lines(seen) == [
        "ppipe: stage 1 (sh -c 'echo oops >&2; echo again >&2; exit 3') failed: exit status 3"
    ]


def test_a_tail_not_seen_is_quoted(failed_with_stderr: RunResult) -> None:
    unseen = with_stages(
        failed_with_stderr, [dataclasses.replace(s, stderr_seen=False) for s in failed_with_stderr.stages]
    )
    assert failure_lines(unseen)[1:] == ["  | oops", "  | again"]


def test_a_log_shows_a_failed_stage_stderr_once() -> None:
    status, lines = stderr_lines("sh -c 'echo oops >&2; exit 3' | cat")
    assert status == 3
    assert lines == ["oops", "ppipe: stage 1 (sh -c 'echo oops >&2; exit 3') failed: exit status 3"]


# -- a timeout is reported as the one given


@pytest.fixture(scope="module")
def timed_out() -> RunResult:
    result = ppipe.run("sleep 10", timeout=0.2, kill_after=0.3)
    assert isinstance(result, RunResult) and result.timed_out
    return result


@given(st.sampled_from([1, 1.0, 2, 0.5, 0.25, 90]) | st.floats(0.001, 10**6))
def test_the_timeout_given_is_the_one_said(timed_out: RunResult, seconds: float) -> None:
    line = failure_lines(dataclasses.replace(timed_out, timeout=seconds))[0]
    said = line.removeprefix("ppipe: timed out after ").split("s;")[0]
    assert not said.endswith(".0") and "e" not in said
    assert abs(float(said) - seconds) <= 0.0005
    if float(seconds).is_integer():
        assert said == str(int(seconds))


def test_an_unknown_timeout_falls_back_to_the_elapsed_time(timed_out: RunResult) -> None:
    line = failure_lines(timed_out)[0]
    assert line.startswith("ppipe: timed out after 0.") and line.endswith("s; every stage was stopped")


def test_a_sharded_timeout_is_the_one_given() -> None:
    result = ppipe.run("sleep 10", fork=1, timeout=0.3)
    assert result.sharded and result.timed_out
    assert (
        failure_lines(dataclasses.replace(result, timeout=1.0))[0]
        == "ppipe: timed out after 1s; every shard was stopped"
    )


def test_a_timeout_is_not_lengthened_by_the_grace() -> None:
    status, lines = stderr_lines("--timeout", "1", "--kill-after", "1", "sh -c 'trap \"\" TERM; sleep 10'")
    assert status == 124
    assert lines[0] == "ppipe: timed out after 1s; every stage was stopped"


def test_a_tail_that_went_to_dev_null_is_quoted() -> None:
    """Through the API with stderr=/dev/null nobody saw what the stage said: the failure line quotes it."""
    result = ppipe.run("sh -c 'echo oops >&2; exit 3'", stderr=os.open(os.devnull, os.O_WRONLY))
    assert isinstance(result, RunResult)
    assert failure_lines(result) == ["ppipe: stage 1 (sh -c 'echo oops >&2; exit 3') failed: exit status 3", "  | oops"]

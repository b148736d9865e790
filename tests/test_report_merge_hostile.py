"""``ppipe report merge`` given reports that are not as ppipe wrote them: refused with one line and 2, never a bug.

The reports mutated here are written by the real command line
(``ppipe --task-id I --tasks N --report F``), once per module; each test
changes one field of one of them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppipe.cli import merge as merge_command
from report_edits import DELETE, NESTED_JSON, FieldPath, mutated, paths

from helpers import ENV, ppipe

# The module's reports are made once (``reports``): on one xdist worker, or each worker would make them again.
pytestmark = pytest.mark.xdist_group("report_merge_hostile")

pytestmark = pytest.mark.hostile_reports  # the reports made here are refused, and are not of the schema's shape

#: Task 0 passes, task 1 fails with 3 saying why on stderr.
PIPELINE = "seq 3 | sh -c 'cat; if [ {task_id} = 1 ]; then echo bad >&2; exit 3; fi'"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Real task reports: a plain array of two tasks, the same run with --fork 2 in each task, a task that never ran."""
    tmp = tmp_path_factory.mktemp("reports")
    runs = {
        "plain0": ["--task-id", "0", "--tasks", "2", PIPELINE],
        "plain1": ["--task-id", "1", "--tasks", "2", PIPELINE],
        "fork0": ["--task-id", "0", "--tasks", "2", "--fork", "2", PIPELINE],
        "fork1": ["--task-id", "1", "--tasks", "2", "--fork", "2", PIPELINE],
        "never": ["--task-id", "1", "--tasks", "2", PIPELINE],  # with no PATH: seq is not found
    }
    found = {}
    for name, args in runs.items():
        path = tmp / f"{name}.json"
        ppipe("-q", "--report", str(path), *args, env={**ENV, "PATH": "/nonexistent"} if name == "never" else None)
        found[name] = json.loads(path.read_text())
    return found


#: Each report mutated, and the report it is merged with (the other task of its array).
PAIRS = {"plain0": "plain1", "plain1": "plain0", "fork0": "fork1", "fork1": "fork0", "never": "plain0"}


def merge_texts(tmp: Path, *texts: str) -> tuple[int, str, str]:
    """``ppipe report merge`` on reports given as text, in this process; its status, stdout and stderr."""
    files = []
    for i, text in enumerate(texts):
        files.append(str(tmp / f"r{i}.json"))
        Path(files[-1]).write_text(text)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = merge_command.main(files)  # an exception here is what the CLI would call an internal error
    return status, out.getvalue(), err.getvalue()


def strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} written out: not JSON")

    return json.loads(text, parse_constant=refuse)


def assert_refused(status: int, out: str, err: str, *words: str) -> None:
    assert status == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppipe: "), err
    assert "internal error" not in err
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    ("report", "at", "value", "said"),
    [
        ("plain0", ("ended_at",), {}, "ended_at is {}, not a number"),
        ("plain0", ("stages", 0, "command"), DELETE, "stages[0].command is missing"),
        ("plain0", ("stages",), 5, "stages is 5, not a list"),
        ("fork0", ("shards", 0, "attempts", 0), {}, "shards[0].attempts[0].attempt is missing"),
        ("plain1", ("exit_status",), 256, "exit_status is 256, not an exit status (0 to 255)"),
        ("plain0", ("exit_status",), -1, "not an exit status"),
        ("fork1", ("shards", 1, "exit_status"), 300, "shards[1].exit_status is 300"),
        ("never", ("error", "status"), 1000, "error.status is 1000"),
        ("plain0", ("started_at",), 10**400, "not a number up to"),
        ("plain0", ("started_at",), -1e300, "not a number up to"),
    ],
    ids=["ended_at", "command", "stages", "attempt", "256", "-1", "shard", "error", "huge-int", "huge-float"],
)
def test_a_report_of_the_wrong_shape_is_refused_naming_the_field(
    reports: dict[str, dict[str, Any]], tmp_path: Path, report: str, at: FieldPath, value: object, said: str
) -> None:
    bad = json.dumps(mutated(reports[report], at, value))
    status, out, err = merge_texts(tmp_path, bad, json.dumps(reports[PAIRS[report]]))
    assert_refused(status, out, err, "r0.json is not a ppipe-report/2 report: ", said)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_and_are_refused(
    reports: dict[str, dict[str, Any]], tmp_path: Path, constant: str
) -> None:
    text = json.dumps(reports["plain0"]).replace('"duration": ', f'"duration": {constant}, "was": ', 1)
    status, out, err = merge_texts(tmp_path, text, json.dumps(reports["plain1"]))
    assert_refused(status, out, err, f"r0.json is not a JSON report: it holds {constant}")


def test_a_number_too_large_for_a_float_is_refused(reports: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    text = json.dumps(reports["plain0"]).replace('"duration": ', '"duration": 1e999, "was": ', 1)
    status, out, err = merge_texts(tmp_path, text, json.dumps(reports["plain1"]))
    assert_refused(status, out, err, "duration is inf, which JSON does not allow")


def test_the_library_refuses_nan_given_as_data(reports: dict[str, dict[str, Any]]) -> None:
    from ppipe.merging import MergeError, merge_reports

    with pytest.raises(MergeError, match=r"stages\[1\]\.held is nan"):
        merge_reports([mutated(reports["plain0"], ("stages", 1, "held"), math.nan), reports["plain1"]])


def test_the_command_line_refuses_a_status_of_256_with_2(reports: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """Through the real command line: before, 256 counted the task failed and the merge exited 0."""
    (tmp_path / "a.json").write_text(json.dumps(mutated(reports["plain1"], ("exit_status",), 256)))
    (tmp_path / "b.json").write_text(json.dumps(reports["plain0"]))
    result = ppipe("report", "merge", "a.json", "b.json", cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        "ppipe: a.json is not a ppipe-report/2 report: exit_status is 256, not an exit status (0 to 255)"
    ]


def test_the_unchanged_reports_merge(reports: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """The reports mutated below are valid as they are: 3 for the failed task, a report that is JSON."""
    for first, second in (("plain0", "plain1"), ("fork0", "fork1"), ("plain0", "never")):
        status, out, _ = merge_texts(tmp_path, json.dumps(reports[first]), json.dumps(reports[second]))
        assert status == (127 if second == "never" else 3)
        assert strict_json(out)["schema"] == "ppipe-report/2"


GARBAGE = st.one_of(
    st.just(DELETE),
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=10**500),
    st.floats(),  # NaN and the infinities among them
    st.text(max_size=5),
    NESTED_JSON,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_field_changed_anyhow_merges_or_is_refused_never_a_bug(
    reports: dict[str, dict[str, Any]], tmp_path: Path, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(PAIRS)))
    at = data.draw(st.sampled_from(list(paths(reports[name]))))
    value = data.draw(GARBAGE)
    if value is DELETE and isinstance(at[-1], int):
        value = None  # a list item is replaced, not removed: removing one leaves a valid, shorter list
    bad = json.dumps(mutated(reports[name], at, value))  # NaN and Infinity written as Python writes them
    status, out, err = merge_texts(tmp_path, bad, json.dumps(reports[PAIRS[name]]))
    assert "internal error" not in err
    if status == 2 and not out:
        assert len(err.splitlines()) == 1 and err.startswith("ppipe: "), err
        return
    merged = strict_json(out)  # merged: valid JSON, and its status one a task could have had
    assert 0 <= status <= 255
    assert status == merged["exit_status"]
    assert (status == 0) == all(t["exit_status"] == 0 for t in merged["array_tasks"])

"""The report and the result are one: ``load_report(to_report(r)) == r``, and a real report read back writes itself.

Results are generated (plain and sharded runs, failures, signals, restarts,
None wherever a field allows it), including the fields the report does not
carry, which come back as their defaults (:func:`carried`: the list
``docs/report.md`` gives). Reports are also made by running ppipe.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ppipe
from ppipe import policy
from ppipe.graph import Boundary, Edge, Graph, Redirect, RedirectOp, Stage
from ppipe.identity import TaskIdentity
from ppipe.report import BadReport, load_report, to_report
from ppipe.results import (
    ArrayTask,
    EdgeResult,
    PipelineResult,
    RunResult,
    ShardAttempt,
    ShardResult,
    StageResult,
    Verdict,
)
from ppipe.stops import HALT, READER_GONE, StopReason

from conftest import assert_valid_report
from helpers import ENV
from helpers import ppipe as run_ppipe

TEXT = st.text(max_size=6)
OPTIONAL_TEXT = st.none() | TEXT
TIMES = st.floats(min_value=0, max_value=2e9)
SECONDS = st.none() | st.floats(min_value=0, max_value=1e6)
COUNTS = st.integers(min_value=0, max_value=2**40)
OPTIONAL_COUNTS = st.none() | COUNTS
STATUSES = st.integers(min_value=0, max_value=255)
SIGNALS = st.sampled_from(["SIGINT", "SIGTERM", "SIGHUP"])


def stops(timeout: float | None, *, halts: bool) -> st.SearchStrategy[StopReason | None]:
    """Why a run stopped: a timeout is its own ``timeout``'s; only a sharded run halts or loses its reader."""
    causes = st.none() | SIGNALS.map(StopReason.by_name) | st.just(StopReason.timeout(timeout))
    return causes | st.sampled_from([HALT, READER_GONE]) if halts else causes


@st.composite
def redirects(draw: st.DrawFn) -> Redirect:
    fd = draw(st.integers(min_value=0, max_value=9))
    op = draw(st.sampled_from(list(RedirectOp)))
    if op is RedirectOp.DUP:
        return Redirect(fd, op, source_fd=draw(st.integers(min_value=0, max_value=9)))
    return Redirect(fd, op, target=draw(st.text(min_size=0, max_size=8)), error=draw(OPTIONAL_TEXT))


@st.composite
def stage_results(draw: st.DrawFn, stage_id: int) -> StageResult:
    stage = Stage(
        id=stage_id,
        argv=tuple(draw(st.lists(TEXT, min_size=1, max_size=3))),
        env=tuple(draw(st.dictionaries(st.text(min_size=1, max_size=4), TEXT, max_size=2)).items()),
        redirects=tuple(draw(st.lists(redirects(), max_size=2))),
        may_fail=draw(st.booleans()),
        reads_stdin_of=draw(OPTIONAL_COUNTS),
        writes_stdout_of=draw(OPTIONAL_COUNTS),
        source=draw(TEXT),  # not carried
        branch=tuple(draw(st.lists(st.tuples(COUNTS, COUNTS, COUNTS), max_size=2))),  # not carried
    )
    error = draw(st.none() | st.text(min_size=1, max_size=6))  # why it never started: never empty
    returncode = None if error is not None else draw(st.none() | st.integers(min_value=-64, max_value=255))
    return StageResult(
        stage,
        pid=draw(OPTIONAL_COUNTS),
        started_at=draw(st.none() | TIMES),
        ended_at=draw(st.none() | TIMES),
        returncode=returncode,
        error=error,
        error_status=draw(st.sampled_from([1, 126, 127])) if error is not None else 1,
        stderr_tail=tuple(draw(st.lists(TEXT, max_size=3))),
        verdict=draw(st.sampled_from(list(Verdict))),
        # not carried:
        output_closed_early=draw(st.booleans()),
        consumer_left=draw(st.booleans()),
        signalled_by_ppipe=draw(st.booleans()),
        stderr_seen=draw(st.booleans()),
    )


@st.composite
def pipelines(draw: st.DrawFn, text: str) -> PipelineResult:
    count = draw(st.integers(min_value=0, max_value=3))
    stages = tuple(draw(stage_results(i)) for i in range(1, count + 1))
    nodes = [*range(1, count + 1)]
    edges = tuple(
        EdgeResult(
            Edge(draw(st.sampled_from([Boundary.STDIN, *nodes])), draw(st.sampled_from([Boundary.STDOUT, *nodes]))),
            bytes=draw(COUNTS),
            lines=draw(OPTIONAL_COUNTS),
            counted=draw(st.booleans()),
            closed_early=draw(st.booleans()),
            waited_on_producer=draw(SECONDS),
            waited_on_consumer=draw(SECONDS),
        )
        for _ in range(draw(st.integers(min_value=0, max_value=3)))
    )
    descriptors = st.sampled_from([0, 1, 2, 62, 63])
    edges = tuple(
        dataclasses.replace(
            e,
            edge=dataclasses.replace(
                e.edge, with_stderr=draw(st.booleans()), source_fd=draw(descriptors), target_fd=draw(descriptors)
            ),
        )
        for e in edges
    )
    timeout = draw(SECONDS)
    return PipelineResult(
        graph=Graph(text, tuple(s.stage for s in stages), tuple(e.edge for e in edges)),
        stages=stages,
        edges=edges,
        exit_status=draw(STATUSES),
        started_at=draw(TIMES),
        ended_at=draw(TIMES),
        stopped_by=draw(stops(timeout, halts=False)),
        stdout=draw(st.none() | st.binary(max_size=4)),  # not carried
        io_error=draw(OPTIONAL_TEXT),
        timeout=timeout,
    )


@st.composite
def attempts(draw: st.DrawFn, number: int, text: str) -> ShardAttempt:
    result = draw(st.none() | pipelines(text))
    return ShardAttempt(
        number=number,
        pid=draw(OPTIONAL_COUNTS),
        started_at=draw(TIMES),
        ended_at=draw(st.none() | TIMES),
        result=result,
        error=draw(OPTIONAL_TEXT),
        error_status=draw(st.none() | STATUSES),
        wait_status=draw(st.none() | st.integers(min_value=0, max_value=65535).filter(_a_wait_status)),
        host=draw(OPTIONAL_TEXT),
        job_id=draw(OPTIONAL_TEXT),
        slot=draw(st.none() | st.integers(min_value=0, max_value=10_000)),
    )


def _a_wait_status(status: int) -> bool:
    """What ``os.wait`` can give: an exit (status << 8) or a signal (1 to 127, maybe with a core dump)."""
    return status & 0xFF == 0 or (0 < status & 0x7F < 0x7F and status >> 8 == 0)


@st.composite
def shards(draw: st.DrawFn, task_id: int, tasks: int, text: str) -> ShardResult:
    count = draw(st.integers(min_value=0, max_value=3))
    return ShardResult(
        task_id=task_id,
        tasks=tasks,
        pipeline=draw(TEXT),
        attempts=tuple(draw(attempts(n, text)) for n in range(1, count + 1)),
        bytes_in=draw(OPTIONAL_COUNTS),
        bytes_out=draw(OPTIONAL_COUNTS),
        lines_out=draw(OPTIONAL_COUNTS),
        verdict=draw(st.sampled_from(list(Verdict))),
        error=draw(OPTIONAL_TEXT),
    )


@st.composite
def run_fields(draw: st.DrawFn) -> dict[str, Any]:
    task = draw(st.none() | st.builds(TaskIdentity, COUNTS, COUNTS, TEXT, OPTIONAL_TEXT, TEXT, st.booleans()))
    array_tasks = st.builds(ArrayTask, COUNTS, st.sampled_from(list(Verdict)), st.none() | STATUSES, COUNTS, TEXT)
    return {
        "host": draw(OPTIONAL_TEXT),
        "task": task,
        "error": draw(OPTIONAL_TEXT),
        "array_tasks": tuple(draw(st.lists(array_tasks, max_size=2))),
        "run_directory": draw(OPTIONAL_TEXT),
    }


@st.composite
def plain_runs(draw: st.DrawFn) -> RunResult:
    """A plain run: its pipeline's result as the one attempt of its one shard, as the engine gives it."""
    pipeline = draw(pipelines(draw(TEXT)))
    pipeline = dataclasses.replace(pipeline, exit_status=policy.plain_run(pipeline).exit_status)  # the policy's
    return dataclasses.replace(policy.plain_run(pipeline), **draw(run_fields()))


@st.composite
def sharded_runs(draw: st.DrawFn) -> RunResult:
    text = draw(TEXT)
    tasks = draw(st.integers(min_value=0, max_value=3))
    timeout = draw(SECONDS)
    return RunResult(
        pipeline=text,
        shards=tuple(draw(shards(i, tasks, text)) for i in range(tasks)),
        exit_status=draw(STATUSES),
        started_at=draw(TIMES),
        ended_at=draw(TIMES),
        sharded=True,
        stopped_by=draw(stops(timeout, halts=True)),
        stdout=draw(st.none() | st.binary(max_size=4)),  # not carried
        timeout=timeout,
        input_undelivered=draw(COUNTS),
        output_error=draw(OPTIONAL_TEXT),
        input_error=draw(OPTIONAL_TEXT),
        **draw(run_fields()),
    )


def carried(result: RunResult) -> RunResult:
    """``result`` with what the report does not carry set to its default (the list in docs/report.md)."""

    def stage(s: StageResult) -> StageResult:
        redirects = tuple(dataclasses.replace(r, error=None) for r in s.stage.redirects)
        plain = dataclasses.replace(s.stage, source="", branch=(), redirects=redirects)
        return StageResult(plain, s.pid, s.started_at, s.ended_at, s.returncode, s.error, s.error_status,
                           stderr_tail=s.stderr_tail, verdict=s.verdict)  # fmt: skip

    def pipeline(p: PipelineResult | None) -> PipelineResult | None:
        if p is None:
            return None
        stages = tuple(stage(s) for s in p.stages)
        graph = dataclasses.replace(p.graph, stages=tuple(s.stage for s in stages))
        return dataclasses.replace(p, graph=graph, stages=stages, stdout=None)

    shards = tuple(
        dataclasses.replace(s, attempts=tuple(dataclasses.replace(a, result=pipeline(a.result)) for a in s.attempts))
        for s in result.shards
    )
    task = result.task and dataclasses.replace(result.task, detail="", step=False)
    return dataclasses.replace(result, shards=shards, stdout=None, task=task)


def through_json(result: RunResult) -> dict[str, Any]:
    report = to_report(result)
    assert_valid_report(report)
    data: dict[str, Any] = json.loads(json.dumps(report, allow_nan=False))
    return data


@settings(max_examples=300, deadline=None)
@given(st.one_of(plain_runs(), sharded_runs()))
def test_a_result_read_back_from_its_report_is_the_result(result: RunResult) -> None:
    assert load_report(through_json(result)) == carried(result)


@settings(max_examples=100, deadline=None)
@given(st.one_of(plain_runs(), sharded_runs()))
def test_a_report_read_back_writes_itself(result: RunResult) -> None:
    report = through_json(result)
    assert to_report(load_report(report)) == report


@pytest.fixture(scope="module")
def real_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Reports written by the command line, of runs of every kind."""
    tmp = tmp_path_factory.mktemp("real")
    runs = {
        "ok": ["seq 3 | wc -l"],
        "failed": ["printf 'a\\nb\\n' | sh -c 'cat; echo bad >&2; exit 3' | cat > /dev/null"],
        "killed": ["yes | head -1 | sh -c 'kill -TERM $$'"],
        "excused": ["--no-fail", "false | true"],
        "redirects": ["echo a 2>&1 > out.txt | cat"],
        "substitutions": ["diff <(seq 3) <(seq 4) | tee >(wc -l) | cat"],
        "unknown": ["seq 3 | no-such-command-here"],
        "syntax": ["seq 3 |"],
        "timeout": ["--timeout", "0.3", "sleep 5"],
        "task": ["--task-id", "1", "--tasks", "2", "seq {task_id} | cat"],
        "fork": ["--fork", "3", "--max-restarts", "1", "sh -c 'echo {task_id}; exit {task_id}'"],
        "fork-input": ["--fork", "2", "--block", "2", "cat"],
    }
    found = {}
    for name, args in runs.items():
        path = tmp / f"{name}.json"
        run_ppipe("-q", "--report", str(path), *args, cwd=str(tmp), input=b"1\n2\n3\n", env=ENV)
        found[name] = json.loads(path.read_text())
    merged = run_ppipe("report", "merge", "--tasks", "2", str(tmp / "task.json"), cwd=str(tmp))
    found["merged"] = json.loads(merged.stdout)
    return found


@pytest.mark.parametrize(
    "name",
    ["ok", "failed", "killed", "excused", "redirects", "substitutions", "unknown", "syntax", "timeout", "task",
     "fork", "fork-input", "merged"],
)  # fmt: skip
def test_a_real_report_read_back_writes_itself(real_reports: dict[str, dict[str, Any]], name: str) -> None:
    report = real_reports[name]
    result = load_report(report)
    assert to_report(result) == report
    assert result.exit_status == report["exit_status"] and result.sharded == bool(report["shards"])


def test_a_result_of_the_library_is_its_report(tmp_path: Path) -> None:
    result = ppipe.run("seq 5 | sh -c 'cat; exit 2' | wc -l", stdout=ppipe.CAPTURE, count_lines=True)
    back = load_report(json.loads(json.dumps(ppipe.to_report(result))))
    assert back == carried(result)
    assert [s.status for s in back.stages] == [0, 2, 0] and back.exit_status == 2


def test_a_report_written_before_the_fields_added_in_version_2_still_reads(
    real_reports: dict[str, dict[str, Any]],
) -> None:
    """Fields added since a report was written are read as their defaults; what it has is read as it says."""
    added = {"timeout", "sharded", "io_error", "array_tasks", "run_directory"}
    added_to_attempts = {"result", "error_status", "wait_status", "host", "job_id", "slot"}
    for name in ("failed", "fork", "merged"):
        old = {k: v for k, v in real_reports[name].items() if k not in added}
        for shard in old["shards"]:
            shard["attempts"] = [{k: v for k, v in a.items() if k not in added_to_attempts} for a in shard["attempts"]]
        result = load_report(old)
        assert result.exit_status == old["exit_status"] and result.sharded == (name != "failed")
        assert [s.exit_status for s in result.shards] == [s["exit_status"] for s in old["shards"]] or name == "failed"
        written = to_report(result)
        assert {k: v for k, v in written.items() if k in old and k != "shards"} == {
            k: v for k, v in old.items() if k != "shards"
        }


@pytest.mark.hostile_reports  # it leaves a bad one behind
def test_a_file_is_read_by_its_path_and_a_bad_one_refused_in_one_line(
    real_reports: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(real_reports["ok"]))
    assert load_report(path) == load_report(real_reports["ok"])
    path.write_text(json.dumps({**real_reports["ok"], "exit_status": "0"}))
    with pytest.raises(BadReport, match=r"r\.json is not a ppipe-report/2 report: exit_status is \"0\", not an exit"):
        load_report(str(path))


def test_every_field_of_the_schema_is_documented() -> None:
    """docs/report.md names each field the schema gives (and the schema number it says)."""
    from conftest import REPORT_SCHEMA

    doc = (Path(__file__).parent.parent / "docs" / "report.md").read_text()
    fields = {name for rule in REPORT_SCHEMA["$defs"].values() for name in rule.get("properties", {})}
    assert sorted(name for name in fields if not re.search(rf"`([\w\[\].]+\.)?{name}`", doc)) == []
    assert f"`{REPORT_SCHEMA['$defs']['report']['properties']['schema']['enum'][0]}`" in doc


GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=300),
    st.integers(min_value=2**62, max_value=2**70),
    st.floats(min_value=-1e20, max_value=1e20).filter(lambda x: not x.is_integer()),  # 3.0: see report_shape
    st.sampled_from(["", "x", "stdin", "ok", "SIGINT", "2>&1", "<x"]),
    st.just([]),
    st.just({}),
)


@pytest.mark.hostile_reports
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_check_ppipe_runs_agrees_with_json_schema(real_reports: dict[str, dict[str, Any]], data: Any) -> None:
    """The check run before a report is read (ppipe.report_shape) and the jsonschema package refuse the same
    reports: one field of a real report changed, or removed (but ``schema``, which the reader checks first)."""
    import jsonschema

    from ppipe.report_shape import ReportShapeError, check_report

    from conftest import REPORT_SCHEMA

    report = copy.deepcopy(real_reports[data.draw(st.sampled_from(sorted(real_reports)))])
    at = data.draw(st.sampled_from([path for path in _paths(report) if path != ("schema",)]))
    parent = report
    for key in at[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()) and isinstance(at[-1], str):
        del parent[at[-1]]
    else:
        parent[at[-1]] = data.draw(GARBAGE)
    try:
        check_report(report)
    except ReportShapeError:
        ours = False
    else:
        ours = True
    assert ours == jsonschema.Draft202012Validator(REPORT_SCHEMA).is_valid(report), at


def _paths(value: object, at: tuple[str | int, ...] = ()) -> Any:
    if at:
        yield at
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*at, key))

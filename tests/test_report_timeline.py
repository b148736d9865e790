"""``ppipe report show --timeline``: a saved run's attempts over time, a row per slot, host or stage.

Every report is written by a real run (``--report``) or merged from real
task reports by ``ppipe report merge``; where a test needs a report to say
what no run here can make (hosts other than this one, a report without slots), it
edits the report's data and says so. The rows a picture has are checked
against :func:`ppipe.timeline_of` of the same report, which says which
attempts each row holds.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

import ppipe
from ppipe import BarEnd, RowKind
from ppipe.cli.timeline import timeline_view
from test_report_round_trip import plain_runs, sharded_runs

from helpers import ENV, write_report
from helpers import ppipe as run_ppipe

pytestmark = pytest.mark.xdist_group("report_timeline")

WIDTH = 100
#: Shard 1 fails each time and is run again once; the others pass.
FORKED = "sh -c 'sleep 0.2; if [ {task_id} = 1 ]; then exit 4; fi'"


def timeline_lines(report: Path, columns: int = WIDTH) -> list[str]:
    """``ppipe report show --timeline REPORT`` with no terminal: its lines, after the two of the headline."""
    result = run_ppipe("report", "show", "--timeline", str(report), env={**ENV, "COLUMNS": str(columns)})
    assert (result.returncode, result.stderr) == (0, b"")
    lines = result.stdout.decode().splitlines()
    assert all(cell_len(line) <= columns for line in lines)
    assert "\x1b" not in result.stdout.decode()
    return [line.rstrip() for line in lines[2:]]


def bars_of(line: str) -> str:
    """A row's bars: what follows its label's ``│``."""
    return line.split("│", 1)[1]


def test_the_restart_and_the_failure_are_marked_in_the_rows_they_ran_in(tmp_path: Path) -> None:
    report = write_report(tmp_path, "fork", "--fork", "3", "--max-restarts", "1", FORKED)
    timeline = ppipe.timeline_of(ppipe.load_report(report))
    lines = timeline_lines(report)
    rows, axis, times, legend = lines[:-3], lines[-3], lines[-2], lines[-1]
    assert len(rows) == len(timeline.rows)
    for row, line in zip(timeline.rows, rows, strict=True):
        assert line.startswith(row.label)
        ends = {(bar.shard, bar.attempt): bar.how for bar in row.bars}
        assert ("↺" in line) == ((1, 1) in ends)  # shard 1's first attempt: failed and ran again
        assert ("✗" in line) == ((1, 2) in ends)  # its second: failed for good
    assert sorted(bar.how.value for row in timeline.rows for bar in row.bars) == ["failed", "ok", "ok", "restarted"]
    assert axis.lstrip().startswith("└┬") and times.lstrip().startswith("0s")
    assert legend == "━ ran · ↺ failed, ran again · ✗ failed"


def test_one_slot_runs_every_attempt_in_one_row(tmp_path: Path) -> None:
    report = write_report(tmp_path, "one", "--fork", "3", "-j", "1", "--max-restarts", "1", FORKED)
    rows = timeline_lines(report)[:-3]
    assert len(rows) == 1
    bars = bars_of(rows[0])
    assert bars.index("0━") < bars.index("1━") < bars.index("↺") < bars.index("✗")  # the shards in the order they ran
    assert bars.index("✗") < bars.index("2━")  # a restart goes before a shard not started yet


def test_one_shard_restarted_twice(tmp_path: Path) -> None:
    report = write_report(tmp_path, "single", "--fork", "1", "--max-restarts", "2", "sh -c 'sleep 0.2; exit 1'")
    rows = timeline_lines(report)[:-3]
    assert len(rows) == 1
    bars = bars_of(rows[0])
    assert bars.count("↺") == 2 and bars.count("✗") == 1 and bars.index("↺") < bars.rindex("↺") < bars.index("✗")
    assert bars.lstrip().startswith("0━")  # (it starts as soon as its slot says hello: a column in, maybe)


def test_a_plain_run_has_a_row_per_stage(tmp_path: Path) -> None:
    report = write_report(tmp_path, "plain", "seq 100000 | sh -c 'cat; exit 3' | -grep nothing | wc -l")
    lines = timeline_lines(report)
    assert [line.split("│")[0].split()[:2] for line in lines[:4]] == [["stage", str(n)] for n in (1, 2, 3, 4)]
    assert bars_of(lines[1]).rstrip().endswith("✗")  # sh failed
    assert bars_of(lines[2]).rstrip().endswith("!")  # grep found nothing: failed, ignored
    assert lines[-1] == "━ ran · ! failed, ignored · ✗ failed"


def test_five_hundred_shards_read_as_a_row_per_slot(tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_text("".join(f"{n}\n" for n in range(500)))
    failing = "sh -c 'test $(($1 % 97)) -ne 0' x {item}"  # items 0, 97, 194, 291, 388, 485 fail
    report = write_report(tmp_path, "batch", "--each", str(items), "-j", "4", "--max-restarts", "1", failing)
    timeline = ppipe.timeline_of(ppipe.load_report(report))
    lines = timeline_lines(report)
    assert len(timeline.rows) == len(lines) - 3 <= 4  # never more rows than slots
    assert timeline.bars == 506  # every attempt: 500, and the restarts of the 6 that failed
    failed_rows = {i for i, row in enumerate(timeline.rows) for bar in row.bars if bar.how is BarEnd.FAILED}
    assert {i for i, line in enumerate(lines[:-3]) if "✗" in line} == failed_rows  # no failure lost in the crowd


#: Each shard waits until all 30 have started, so that no slot is free to run a second one: 30 slots.
BARRIER = (
    "sh -c 'touch started/{task_id}; until [ $(ls started | wc -l) -ge 30 ]; do sleep 0.01; done;"
    " exit $(({task_id} == 17))'"
)


def test_many_slots_are_grouped_into_rows_that_fit(tmp_path: Path) -> None:
    (tmp_path / "started").mkdir()
    report = write_report(tmp_path, "wide", "--fork", "30", "--timeout", "60", BARRIER)
    result = ppipe.load_report(report)
    assert result.exit_status == 1  # shard 17, not the timeout
    timeline = ppipe.timeline_of(result)
    assert timeline.places == 30 and len(timeline.rows) == 15 and timeline.bars == 30
    assert all(row.places == 2 for row in timeline.rows)
    lines = timeline_lines(report)
    assert len(lines) == 15 + 3
    assert sum("✗" in line for line in lines[:-3]) == 1
    assert lines[-1].endswith(" · 30 slots, up to 2 a row")
    assert len(ppipe.timeline_of(result, most_rows=4).rows) == 4


def test_recorded_slots_name_the_rows(tmp_path: Path) -> None:
    """Each attempt's report says the slot it ran in, numbered as its ``{slot}``."""
    report = write_report(tmp_path, "slots", "--fork", "4", "-j", "2", "sh -c 'echo {slot} >> slots; sleep 0.1'")
    data = json.loads(report.read_text())
    recorded = sorted(str(a["slot"]) for s in data["shards"] for a in s["attempts"])
    assert recorded == sorted((tmp_path / "slots").read_text().split())  # what {slot} said is what the report says
    timeline = ppipe.timeline_of(ppipe.load_report(report))
    assert [(row.kind, row.label) for row in timeline.rows] == [(RowKind.SLOT, "slot 1"), (RowKind.SLOT, "slot 2")]
    assert [line.split("│")[0].strip() for line in timeline_lines(report)[:2]] == ["slot 1", "slot 2"]


def test_an_earlier_report_without_slots_has_a_row_per_slot_process(tmp_path: Path) -> None:
    """A report of an earlier ppipe has no slots (here taken out): a slot's process, known by its pid, is a row."""
    report = write_report(tmp_path, "pids", "--fork", "4", "-j", "2", "sh -c 'sleep 0.1'")
    data = json.loads(report.read_text())
    for shard in data["shards"]:
        for attempt in shard["attempts"]:
            attempt["slot"] = None
    report.write_text(json.dumps(data))
    pids = {a["pid"] for s in data["shards"] for a in s["attempts"]}
    labels = [line.split("│")[0].strip() for line in timeline_lines(report)[:-3]]
    assert sorted(labels) == sorted(f"pid {pid}" for pid in pids) and len(labels) == 2


def test_a_job_arrays_tasks_are_drawn_a_row_per_host(tmp_path: Path) -> None:
    """Four task reports merged; their hosts (edited in: these tasks all ran here) are node1 for tasks 0-2 and
    node2 for task 3, and tasks 0 and 1 overlap on node1, as two tasks side by side on one node do."""
    reports = [write_report(tmp_path, f"t{i}", "--task-id", str(i), "--tasks", "4", "seq {task_num}") for i in range(4)]
    datas: list[dict[str, Any]] = [json.loads(r.read_text()) for r in reports]
    for data, host in zip(datas, ["node1", "node1", "node1", "node2"], strict=True):
        data["host"] = host
    datas[1]["started_at"] = datas[0]["started_at"]  # starts as task 0 does, so they overlap
    datas[1]["ended_at"] = max(datas[1]["ended_at"], datas[0]["ended_at"])
    for report, data in zip(reports, datas, strict=True):
        report.write_text(json.dumps(data))
    merged = tmp_path / "merged.json"
    result = run_ppipe("report", "merge", "-q", "--report", str(merged), *map(str, reports))
    assert result.returncode == 0, result.stderr
    timeline = ppipe.timeline_of(ppipe.load_report(merged))
    assert [row.label for row in timeline.rows] == ["host node1 (1)", "host node1 (2)", "host node2"]
    assert sorted(bar.shard for bar in timeline.rows[0].bars + timeline.rows[1].bars) == [0, 1, 2]
    lines = timeline_lines(merged)
    assert [line.split("│")[0].strip() for line in lines[:3]] == ["host node1 (1)", "host node1 (2)", "host node2"]


def test_a_run_that_never_started_has_nothing_to_draw(tmp_path: Path) -> None:
    report = write_report(tmp_path, "never", "no-such-command-here")
    assert timeline_lines(report)[-1] == "nothing ran: no attempt to draw"
    assert ppipe.timeline_of(ppipe.load_report(report)).rows == ()


def test_the_axis_is_labelled_in_round_times_that_fit(tmp_path: Path) -> None:
    report = write_report(tmp_path, "axis", "--fork", "2", "sh -c 'sleep 0.3'")
    for columns in (40, 100, 200):
        *_, axis, times, _ = timeline_lines(report, columns)
        ticks = [i for i, c in enumerate(axis) if c == "┬"]
        labels = times.split()
        assert len(labels) >= 2 and labels[0] == "0s"
        assert all(times[i] != " " for i in ticks[: len(labels)])  # each time stands under its tick
        steps = {round(float(b[:-1]) - float(a[:-1]), 6) for a, b in itertools.pairwise(labels)}
        assert len(steps) == 1  # evenly spaced


@settings(max_examples=150, deadline=None)
@given(result=plain_runs() | sharded_runs(), width=st.integers(min_value=20, max_value=200), most=st.integers(1, 30))
def test_any_result_is_drawn_within_its_width_and_rows(result: ppipe.RunResult, width: int, most: int) -> None:
    """Results of every shape (from the report's round-trip strategies: times anywhere, attempts that never
    ended, runs that never started): every attempt is a bar, the rows never pass ``most``, no line passes the
    width (where the width leaves the bars their fewest columns), and the legend names every mark drawn."""
    timeline = ppipe.timeline_of(result, most_rows=most)
    attempts = sum(len(shard.attempts) for shard in result.shards)
    started = sum(stage.started_at is not None for stage in result.local.stages) if result.local is not None else 0
    assert timeline.bars == (started if result.local is not None else attempts)
    assert len(timeline.rows) <= most and sum(row.places for row in timeline.rows) == timeline.places
    console = Console(width=width, file=io.StringIO(), color_system=None, highlight=False)
    with console.capture() as captured:
        console.print(timeline_view(timeline, width), crop=True)
    lines = captured.get().splitlines()
    assert all(cell_len(line) <= width for line in lines)
    drawn = "".join(line.split("│", 1)[1] for line in lines if "│" in line)
    axis = next((i for i, line in enumerate(lines) if "└" in line), len(lines))
    legend = "\n".join(lines[axis + 2 :])
    for mark in set(drawn) & {"↺", "✗", "■", "!"}:
        assert f"{mark} " in legend

"""Why a run stopped is one value, StopReason, whatever stopped it: a signal, --timeout, --halt, its reader."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import ppipe
from ppipe import stops
from ppipe.stops import HALT, READER_GONE, StopKind, StopReason

from helpers import ENV, PPIPE


@pytest.mark.parametrize(
    ("reason", "status", "text"),
    [
        (StopReason.by_signal(2), 130, "SIGINT"),
        (StopReason.by_name("SIGTERM"), 143, "SIGTERM"),
        (StopReason.timeout(2.5), 124, "--timeout 2.5s"),
        (HALT, None, "--halt"),
        (READER_GONE, None, "nobody reads the output"),
    ],
)
def test_each_stop_gives_its_status_and_says_itself(reason: StopReason, status: int | None, text: str) -> None:
    assert reason.exit_status == status and str(reason) == text


def test_a_name_that_is_no_signal_is_refused() -> None:
    with pytest.raises(ValueError, match="no signal named 'SIGNOPE'"):
        StopReason.by_name("SIGNOPE")


def test_a_timed_out_run_says_its_limit() -> None:
    result = ppipe.run("sleep 5 | cat", timeout=0.3, kill_after=0.5)
    assert result.stopped_by == StopReason.timeout(0.3)
    assert result.timed_out and result.interrupted_by is None and result.exit_status == 124
    assert result.shards[0].attempts[0].result is not None
    assert result.shards[0].attempts[0].result.stopped_by == StopReason.timeout(0.3)


def test_a_halted_sharded_run_says_so_and_its_shards_decide_its_status() -> None:
    result = ppipe.run("sh -c 'exit {task_id}'", fork=3, jobs=1, halt="soon,fail=1")
    assert result.stopped_by == HALT
    assert result.exit_status == 1  # shard 1's own status: the halt has none of its own


def test_a_batch_whose_reader_left_says_so_in_its_report(tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_text("".join(f"{i}\n" for i in range(200)))
    report = tmp_path / "run.json"
    command = [PPIPE, "--each", str(items), "-j", "1", "--report", str(report), "seq 1 {item}"]
    shell = f"{subprocess.list2cmdline(command)} | head -c 10 > /dev/null"
    subprocess.run(["bash", "-c", shell], env=ENV, timeout=60, check=False)
    data = json.loads(report.read_text())
    assert data["stopped_by"] == StopKind.READER_GONE.value
    assert data["interrupted_by"] is None and data["timed_out"] is False
    loaded = ppipe.load_report(data)
    assert loaded.stopped_by == READER_GONE


def test_the_first_cause_stands_but_a_halt_gives_way_to_a_status() -> None:
    sigint, sigterm, timeout = StopReason.by_signal(2), StopReason.by_signal(15), StopReason.timeout(1.0)
    assert stops.after(None, HALT) == HALT
    assert stops.after(HALT, sigint) == sigint and stops.after(READER_GONE, timeout) == timeout
    assert stops.after(timeout, sigint) == timeout  # GNU timeout's 124 stands
    assert stops.after(sigint, sigterm) == sigint and stops.after(sigint, HALT) == sigint
    assert stops.timed_out(timeout) and not stops.timed_out(sigint) and not stops.timed_out(None)

"""Slots: one process runs attempt after attempt, leaves nothing to the next, and its stages never outlive it.

Real forks and real processes: each stage reports on its parent, the slot,
through ``/proc/$PPID``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import pids_alive, wait_gone
from helpers import ppipe as run_ppipe

#: What a stage sees of its slot: its pid, its open descriptors, its environment and its directory.
SLOT_STATE = (
    "sh -c 'echo {item} $PPID $(ls /proc/$PPID/fd | wc -l) "
    '$(tr "\\0" "\\n" < /proc/$PPID/environ | sort | cksum) $(readlink /proc/$PPID/cwd)\''
)


def items(directory: Path, count: int) -> Path:
    path = directory / "items"
    path.write_text("".join(f"{i}\n" for i in range(count)))
    return path


def test_one_slot_runs_every_attempt_in_the_same_process(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = run_ppipe("--each", str(items(tmp_path, 5)), "-j", "1", "--report", str(report), "sh -c 'echo $PPID'")
    assert done.returncode == 0, done.stderr
    parents = set(done.stdout.split())
    assert len(parents) == 1
    shards = json.loads(report.read_text())["shards"]
    assert {s["attempts"][0]["pid"] for s in shards} == {int(parents.pop())}


def test_an_attempt_leaves_no_descriptor_variable_or_directory_to_the_next_in_its_slot(tmp_path: Path) -> None:
    """Forty attempts in one slot: a descriptor kept by each would show as forty more by the last; the slot's
    environment and directory stay exactly as they were. (A few descriptors may be mid-close as a stage looks.)"""
    done = run_ppipe("--each", str(items(tmp_path, 40)), "-j", "1", "--keep-order", SLOT_STATE)
    assert done.returncode == 0, done.stderr
    lines = [line.split(maxsplit=3) for line in done.stdout.decode().splitlines()]
    assert [item for item, *_ in lines] == [str(i) for i in range(40)]
    assert len({(slot, rest) for _, slot, _, rest in lines}) == 1  # one slot, one environment, one directory
    descriptors = [int(count) for _, _, count, _ in lines]
    assert max(descriptors) - min(descriptors) < 8


def test_a_slot_killed_mid_run_is_replaced_and_its_stages_die_with_it(tmp_path: Path) -> None:
    # Item 1's stage kills its slot, then lingers as a `sleep` the slot no longer ties to anything.
    stage = (
        "sh -c 'if [ {item} = 1 ]; then echo $$ > lingering.pid; kill -9 $PPID; exec sleep 60; fi; echo {item} $PPID'"
    )
    # The lingering `sleep 60` must not hold the run up: it would outlast the timeout.
    done = run_ppipe("--each", str(items(tmp_path, 4)), "-j", "1", "--keep-order", stage, cwd=str(tmp_path), timeout=50)
    assert done.returncode == 137, done.stderr
    lines = [line.split() for line in done.stdout.decode().splitlines()]
    assert [item for item, _ in lines] == ["0", "2", "3"]
    assert lines[0][1] != lines[1][1] == lines[2][1]  # a new slot after the killed one, then re-used
    lingering = int((tmp_path / "lingering.pid").read_text())
    assert wait_gone([lingering], 5) == []


def test_a_background_descendant_of_an_attempt_that_ended_well_is_left_running(tmp_path: Path) -> None:
    stage = "sh -c '(sleep 30 & echo $! > background.pid) ; echo done'"
    done = run_ppipe("--fork", "1", stage, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    background = int((tmp_path / "background.pid").read_text())
    try:
        assert pids_alive([background]) == [background]
    finally:
        os.kill(background, 9)

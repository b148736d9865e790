"""The live view, in a real pseudo-terminal, read back through a terminal emulator (pyte)."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pyte
import pytest

from helpers import ENV, PPIPE, python_stage
from terminals import in_pty, screen_of


def run_in_terminal(*args: str, columns: int = 80, rows: int = 24) -> tuple[pyte.Screen, int, bytes]:
    """Runs ppipe in a pty of that size; returns the final screen, the exit status and the raw bytes."""
    env = {**ENV, "TERM": "xterm-256color", "COLUMNS": str(columns)}
    status, raw = in_pty([PPIPE, *args], env, columns=columns, rows=rows)
    return screen_of(raw, columns, rows), status, raw


def slow_stage(pause: float) -> str:
    """A stage that copies its input 64 KiB at a time with a pause between: the bottleneck."""
    return python_stage(
        "import sys, time\n"
        "while chunk := sys.stdin.buffer.read(1 << 16):\n"
        f"    sys.stdout.buffer.write(chunk); time.sleep({pause})\n"
    )


def rows_of(screen: pyte.Screen) -> list[str]:
    return [line.rstrip() for line in screen.display]


def test_acceptance_three_stages_with_counts() -> None:
    screen, status, _ = run_in_terminal("--display", "always", "seq 1000000 | grep 7 | wc -l")
    rows = rows_of(screen)
    assert status == 0
    assert "468559" in rows
    stage_rows = [r for r in rows if r.startswith("✓")]
    assert len(stage_rows) == 3, rows
    seq_row = next(r for r in stage_rows if "seq 1000000" in r)
    assert "6888896" in seq_row.split() and "1000000" in seq_row.split()[4:]
    assert not screen.cursor.hidden


def test_failure_panel_names_the_stage_status_and_stderr() -> None:
    screen, status, _ = run_in_terminal("seq 3 | sh -c 'echo oops >&2; exit 3' | cat")
    text = "\n".join(rows_of(screen))
    assert status == 3
    assert "stage 2 failed: exit status 3" in text
    assert "oops" in text
    assert "[2 sh] oops" in text  # shown above the view while it ran
    assert not screen.cursor.hidden


def test_the_failure_panel_shows_an_escape_in_stderr_as_cat_v_does() -> None:
    """Above the view, a stage's stderr passes as written (grep's colours stay); the panel, drawn by rich and
    measured by it, shows ``^[``: an escape there would clear the screen the summary is on."""
    _, status, raw = run_in_terminal("sh -c 'printf \"bad\\033[2J\\n\" >&2; exit 3'")
    assert status == 3
    summary = raw[raw.rindex(b"stage 1 failed") :]
    assert b"bad^[[2J" in summary and b"\x1b[2J" not in summary


def test_stderr_lines_appear_above_the_view_whole() -> None:
    script = "for i in 1 2 3; do echo line-$i >&2; sleep 0.2; done; seq 5"
    screen, status, _ = run_in_terminal("--display", "always", f"sh -c '{script}' | wc -l")
    rows = rows_of(screen)
    assert status == 0
    assert [r for r in rows if r.startswith("[1 sh]")] == ["[1 sh] line-1", "[1 sh] line-2", "[1 sh] line-3"]
    assert "5" in rows


@pytest.mark.parametrize("args", [("--display", "never", "seq 3 | wc -l"), ("-q", "seq 3 | wc -l")])
def test_no_view_means_no_escape_codes(args: tuple[str, ...]) -> None:
    _, status, raw = run_in_terminal(*args)
    assert status == 0
    assert b"\x1b" not in raw
    assert raw.replace(b"\r\n", b"\n") == b"3\n"


def test_no_terminal_no_view() -> None:
    result = subprocess.run([PPIPE, "seq 3 | wc -l"], capture_output=True, env=ENV, timeout=30)
    assert result.stdout == b"3\n"
    assert result.stderr == b""


def test_rich_and_the_shard_machinery_are_not_imported_for_a_plain_run_without_a_view() -> None:
    code = (
        "import sys, os; sys.argv = ['ppipe', 'seq 3 | wc -l']\n"
        "from ppipe.cli.entry import _main\n"
        "status = _main(sys.argv[1:])\n"
        "print('rich' in sys.modules, 'ppipe.shards' in sys.modules, status, file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=ENV, timeout=30, stdin=subprocess.DEVNULL
    )
    assert result.stderr.strip() == b"False False 0"


@pytest.mark.parametrize(
    "pipeline",
    [
        f"head -c 200M /dev/zero | {slow_stage(0.01)} | wc -c",
        pytest.param(
            "head -c 3G /dev/zero | pv -qL 200M | wc -c",  # the acceptance line
            marks=pytest.mark.skipif(shutil.which("pv") is None, reason="pv is not installed"),
        ),
    ],
    ids=["python", "pv"],
)
def test_the_slow_stage_is_marked_as_the_bottleneck(pipeline: str) -> None:
    child = pexpect.spawn(PPIPE, [pipeline], env={**ENV, "TERM": "xterm-256color"}, dimensions=(24, 100), timeout=30)
    try:
        child.expect("bottleneck: stage 2", timeout=20)
    finally:
        child.sendintr()
        child.expect(pexpect.EOF, timeout=20)
        child.close()


def report_of(pipeline: str, tmp_path: Path) -> tuple[dict[str, Any], dict[tuple[Any, Any], dict[str, Any]]]:
    """Runs ``pipeline`` with ``--report``; returns the report and its edges by (from, to)."""
    report = tmp_path / "r.json"
    result = subprocess.run([PPIPE, "--report", str(report), pipeline], capture_output=True, env=ENV, timeout=60)
    assert result.returncode == 0
    data = json.loads(report.read_text())
    return data, {(e["from"], e["to"]): e for e in data["edges"]}


def test_report_keeps_the_waits(tmp_path: Path) -> None:
    data, edges = report_of(f"head -c 5M /dev/zero | {slow_stage(0.01)} | wc -c", tmp_path)
    assert edges[(1, 2)]["waited_on_consumer"] > edges[(1, 2)]["waited_on_producer"]
    assert edges[(2, 3)]["waited_on_producer"] > edges[(2, 3)]["waited_on_consumer"]
    # What the view showed, for the whole run: each stage's row, and the bottleneck.
    assert data["bottleneck"] == 2
    head, slow_row, wc = data["stages"]
    assert (head["bytes_in"], head["bytes_out"], head["ratio"]) == (None, 5 * 1024 * 1024, None)
    assert (slow_row["bytes_in"], slow_row["bytes_out"], slow_row["ratio"]) == (5 * 1024 * 1024,) * 2 + (1.0,)
    assert (slow_row["lines_in"], wc["lines_in"], wc["bytes_out"]) == (1, 1, None)
    assert slow_row["held"] > max(head["held"], wc["held"])


def test_plain_progress_for_logs() -> None:
    result = subprocess.run(
        [PPIPE, "--progress", "plain", "sh -c 'seq 1 3; sleep 5.6' | cat"], capture_output=True, env=ENV, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout == b"1\n2\n3\n"
    lines = result.stderr.decode().splitlines()
    assert lines, "no status line"
    assert re.match(r"ppipe: \d+\.\ds \| 1 sh -c", lines[0]), lines  # when it is printed is the loop's business
    assert "| 2 cat running" in lines[0]
    assert "\x1b" not in result.stderr.decode()


def test_progress_of_a_file_input(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    with open(data, "wb") as handle:  # what the bytes are does not matter here, only how far the stage has read
        handle.truncate(64 * 1024 * 1024)
    slow = slow_stage(0.005)
    child = pexpect.spawn(
        PPIPE, [f"{slow} < {data} | wc -c"], env={**ENV, "TERM": "xterm-256color"}, dimensions=(24, 120), timeout=30
    )
    try:
        child.expect(r"stage 1 input \d+% [\d.]+ [kMG]?B/s ETA", timeout=20)
    finally:
        child.sendintr()
        child.expect(pexpect.EOF, timeout=20)
        child.close()


def test_the_view_counts_every_line_of_a_fast_edge() -> None:
    # A line per byte, 256 MiB of them as fast as the kernel moves them: the view counts every one.
    total = 256 * 1024 * 1024
    pipeline = f"head -c {total} /dev/zero | tr '\\0' '\\n' | cat | wc -l"
    screen, status, _ = run_in_terminal("--display", "always", pipeline)
    rows = rows_of(screen)
    assert status == 0
    cat_row = next(r for r in rows if r.startswith("✓") and " cat " in r).split()
    assert cat_row[3:7] == [str(total)] * 4, rows
    assert not any(mark in row for row in rows for mark in "≈≥")


def test_at_60_columns_no_figure_is_cut() -> None:
    screen, status, _ = run_in_terminal("--display", "always", "--lines", "seq 3000000 | cat | wc -l", columns=60)
    rows = rows_of(screen)
    assert status == 0
    stage_rows = [r for r in rows if r.startswith("✓")]
    assert len(stage_rows) == 3 and not any("…" in r for r in rows), rows
    assert "22888896" in stage_rows[1].split() and "3000000" in stage_rows[1].split()


def test_lines_asked_for_are_exact_under_the_view() -> None:
    screen, status, _ = run_in_terminal(
        "--display", "always", "--lines", "head -c 128M /dev/zero | tr '\\0' '\\n' | cat | wc -l"
    )
    rows = rows_of(screen)
    assert status == 0
    cat_row = next(r for r in rows if r.startswith("✓") and " cat " in r).split()
    assert cat_row[3:7] == [str(128 * 1024 * 1024)] * 4
    assert not any("≥" in r for r in rows)


def test_output_on_the_view_terminal_has_no_blank_lines_between() -> None:
    screen, status, _ = run_in_terminal("--display", "always", "sh -c 'echo 1; sleep 0.3; echo 2'")
    assert status == 0
    assert rows_of(screen)[:2] == ["1", "2"]


def test_shard_view_summary_has_a_row_per_shard_and_tagged_stderr() -> None:
    screen, status, _ = run_in_terminal(
        "--display", "always", "--fork", "3", "sh -c 'seq {task_num}00000; echo warn{task_id} >&2' | wc -l"
    )
    rows = rows_of(screen)
    assert status == 0
    assert sorted(r for r in rows if r.startswith("[shard")) == [f"[shard {i}] warn{i}" for i in range(3)]
    assert sorted(r for r in rows if r.strip() in ("100000", "200000", "300000")) == ["100000", "200000", "300000"]
    shard_rows = [r.split() for r in rows if r.startswith("✓")]
    assert [row[1] for row in shard_rows] == ["0", "1", "2"]
    assert not screen.cursor.hidden


def test_shard_view_while_running_shows_shards_and_their_stages() -> None:
    child = pexpect.spawn(
        PPIPE,
        ["--display", "always", "--fork", "2", "sleep 3 | cat"],
        env={**ENV, "TERM": "xterm-256color"},
        dimensions=(24, 100),
        timeout=30,
    )
    screen = pyte.Screen(100, 24)
    stream = pyte.ByteStream(screen)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            stream.feed(child.read_nonblocking(65536, timeout=1))
        except pexpect.TIMEOUT:
            continue
        rows = rows_of(screen)
        if sum("running" in r for r in rows) >= 2 and sum("└" in r for r in rows) >= 4:
            break
    else:
        raise AssertionError("\n".join(rows_of(screen)))
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus == signal.SIGINT or child.exitstatus == 130


def test_shard_failure_panel_lists_every_attempt() -> None:
    screen, status, _ = run_in_terminal(
        "--display", "always", "--fork", "2", "--max-restarts", "1", "sh -c 'echo bad >&2; exit {task_num}'"
    )
    text = "\n".join(rows_of(screen))
    assert status == 1
    assert "shard 0 failed" in text and "shard 1 failed" in text
    assert text.count("attempt 2: exit status 2") == 1 and text.count("attempt 1: exit status 1") == 1


def test_merged_output_above_the_view_keeps_lines_whole() -> None:
    screen, status, _ = run_in_terminal(
        "--display", "always", "{ sh -c 'printf aaa; sleep 0.6; echo AAA' ; sh -c 'sleep 0.3; echo bbb' }"
    )
    assert status == 0
    assert rows_of(screen)[:2] == ["bbb", "aaaAAA"]


def test_in_a_fan_out_the_slow_branch_is_the_bottleneck() -> None:
    slow = slow_stage(0.01)
    child = pexpect.spawn(
        PPIPE,
        [f"head -c 300M /dev/zero | {{ wc -c ; {slow} | wc -c }}"],
        env={**ENV, "TERM": "xterm-256color"},
        dimensions=(24, 100),
        timeout=30,
    )
    screen = pyte.Screen(100, 24)
    stream = pyte.ByteStream(screen)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while len(seen) < 30 and time.monotonic() < deadline:
            with contextlib.suppress(pexpect.TIMEOUT):
                stream.feed(child.read_nonblocking(65536, timeout=1))
            footer = [r for r in rows_of(screen) if "bottleneck: stage" in r]
            if footer:
                seen.append(footer[-1].split("bottleneck: stage")[1].split()[0])
    finally:
        child.sendintr()
        child.expect(pexpect.EOF, timeout=20)
        child.close()
    assert seen, "no bottleneck was marked"
    assert seen.count("3") > len(seen) * 0.8, seen  # the slow copier, never the fast wc -c beside it


def test_report_names_the_slow_branch_of_a_fan_out(tmp_path: Path) -> None:
    data, edges = report_of(f"head -c 4M /dev/zero | {{ wc -c ; {slow_stage(0.01)} | wc -c }}", tmp_path)
    # Each branch's own wait: the fast wc -c kept the copy waiting hardly at all.
    assert edges[(1, 3)]["waited_on_consumer"] > 10 * edges[(1, 2)]["waited_on_consumer"]
    assert data["bottleneck"] == 3

"""Line counts are exact on every edge, fast or slow, on both pump paths, in the report and in the view.

``cat F | cat | cat | grep 7 | sort | wc -l`` over a file of three million
lines: every edge's lines must be what ``wc -l`` says of the bytes that
flow there, the three cats must agree, and sort must give out as many
lines as it took in. Then random streams, chunked oddly by a real
producer, through real pipes: the count is the newlines plus a last
unterminated line.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppipe
from ppipe.engine.counting import Counter, count_newlines
from test_display import rows_of, run_in_terminal

from helpers import ENV, PPIPE, python_stage

# The module's 57 MB log is made once (``app_log``): on one xdist worker, or each worker would make its own.
pytestmark = pytest.mark.xdist_group("exact_lines")

LINES = 3_000_000
PIPELINE = "cat {path} | cat | cat | grep 7 | sort | wc -l"


@pytest.fixture(scope="module")
def app_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[int, int]]]:
    """A 3-million-line log (~57 MB), and (bytes, lines) of what flows out of cat and out of grep, by wc."""
    path = tmp_path_factory.mktemp("exact") / "app.log"
    with path.open("wb") as handle:
        subprocess.run(["seq", "-f", "req %07g served in 12 ms", "1", str(LINES)], stdout=handle, check=True)

    def measured(command: str) -> tuple[int, int]:
        out = subprocess.run(["sh", "-c", f"{command} | wc -cl"], capture_output=True, check=True, env=ENV)
        lines, nbytes = out.stdout.split()
        return int(nbytes), int(lines)

    return path, {"cat": measured(f"cat {path}"), "grep": measured(f"grep 7 {path}")}


def expected_edges(flows: dict[str, tuple[int, int]]) -> list[tuple[int, int]]:
    """(bytes, lines) of edges 1→2 .. 5→6: three cats' worth, then grep's twice (sort changes no line)."""
    return [flows["cat"]] * 3 + [flows["grep"]] * 2


@pytest.mark.parametrize("splice", ["1", "0"], ids=["splice", "iostream"])
def test_every_edge_of_a_long_pipeline_counts_exactly_in_the_report(
    app_log: tuple[Path, dict[str, tuple[int, int]]], splice: str, tmp_path: Path
) -> None:
    path, flows = app_log
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [PPIPE, "--display", "never", "--report", str(report_path), PIPELINE.format(path=path)],
        capture_output=True,
        env={**ENV, "PPIPE_SPLICE": splice},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == flows["grep"][1]
    report = json.loads(report_path.read_text())
    inner = [(e["bytes"], e["lines"]) for e in report["edges"] if e["counted"]]
    assert inner == expected_edges(flows)
    stages = {s["id"]: s for s in report["stages"]}
    assert stages[5]["lines_in"] == stages[5]["lines_out"] == flows["grep"][1]  # sort: out == in
    assert {stages[i]["lines_out"] for i in (1, 2, 3)} == {LINES}  # the three cats agree
    assert not any(key.startswith("lines_") and key != "lines" for e in report["edges"] for key in e)


def test_the_final_progress_object_counts_every_edge_exactly(
    app_log: tuple[Path, dict[str, tuple[int, int]]],
) -> None:
    """``--progress json`` counts lines as the view does; its last object holds the run's exact totals."""
    path, flows = app_log
    done = subprocess.run(
        [PPIPE, "--progress", "json", "--progress-interval", "0.05", PIPELINE.format(path=path)],
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stderr.splitlines()]
    final = objects[-1]
    assert final["final"] is True
    flowing = [(s["bytes_out"], s["lines_out"]) for s in final["stages"][:5]]
    assert flowing == expected_edges(flows)
    assert [(s["bytes_in"], s["lines_in"]) for s in final["stages"][1:6]] == expected_edges(flows)
    for report in objects[:-1]:  # while it runs: the two ends of an edge never disagree
        stages = report["stages"]
        for producer, consumer in itertools.pairwise(stages):
            assert producer["lines_out"] == consumer["lines_in"], report


@pytest.mark.parametrize("splice", ["1", "0"], ids=["splice", "iostream"])
def test_every_edge_of_a_long_pipeline_counts_exactly_in_the_view(
    app_log: tuple[Path, dict[str, tuple[int, int]]], splice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, flows = app_log
    monkeypatch.setitem(ENV, "PPIPE_SPLICE", splice)  # run_in_terminal starts ppipe with ENV
    screen, status, _ = run_in_terminal("--display", "always", PIPELINE.format(path=path), columns=160)
    assert status == 0
    rows = [row.split() for row in rows_of(screen) if row.startswith("✓")]
    assert len(rows) == 6, rows_of(screen)
    # The last five cells of a stage's row: bytes in, lines in, bytes out, lines out, time.
    figures = {int(row[1]): row[-5:-1] for row in rows}
    for sid, (nbytes, lines) in enumerate(expected_edges(flows), start=1):
        assert figures[sid][2:4] == [str(nbytes), str(lines)], (sid, figures)  # what the producer gave
        assert figures[sid + 1][0:2] == [str(nbytes), str(lines)], (sid, figures)  # what the consumer took
    assert not any(mark in row for row in rows_of(screen) for mark in "≈≥")


#: A producer that writes its stdin's bytes in the chunk sizes given as arguments, each flushed, then the rest.
CHUNKER = (
    "import sys\n"
    "data = sys.stdin.buffer.read()\n"
    "out = sys.stdout.buffer\n"
    "at = 0\n"
    "for size in map(int, sys.argv[1:]):\n"
    "    out.write(data[at : at + size]); out.flush(); at += size\n"
    "out.write(data[at:])\n"
)

streams = st.lists(st.binary(max_size=300) | st.just(b"\n") | st.just(b"\n" * 70_000), max_size=8).map(b"".join)
trailing = st.sampled_from([b"", b"\n", b"no newline"])
chunks = st.lists(st.integers(1, 200_000), max_size=6)


def lines_of(data: bytes) -> int:
    return data.count(b"\n") + (data[-1:] not in (b"", b"\n"))


@given(data=streams, tail=trailing, sizes=st.lists(st.integers(0, 5000), max_size=20))
def test_a_counter_counts_a_stream_however_it_is_cut(data: bytes, tail: bytes, sizes: list[int]) -> None:
    data += tail
    counter = Counter()
    at = 0
    for size in [*sizes, len(data)]:
        chunk = bytearray(data[at : at + size])
        counter.add(chunk, count_newlines(chunk))
        at += size
    assert (counter.nbytes, counter.lines) == (len(data), lines_of(data))


@pytest.mark.parametrize("splice", [True, False], ids=["splice", "iostream"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=streams, tail=trailing, sizes=chunks)
def test_random_streams_chunked_oddly_are_counted_exactly(
    splice: bool, data: bytes, tail: bytes, sizes: list[int]
) -> None:
    data += tail
    producer = " ".join([python_stage(CHUNKER), *map(str, sizes)])
    result = ppipe.run(f"{producer} | cat | wc -c", input=data, stdout=ppipe.CAPTURE, count_lines=True, splice=splice)
    assert int(result.stdout) == len(data)
    for edge in (result.edge(1, 2), result.edge(2, 3)):
        assert (edge.bytes, edge.lines) == (len(data), lines_of(data))

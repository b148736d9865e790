"""The engine is graph-shaped already: fan-out and fan-in through hand-built graphs.

The language has no branch syntax yet; these graphs are built with the model
directly, as the Python API allows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from pathlib import Path

import pytest

import ppipe
from ppipe import CAPTURE, Boundary, Edge, Graph, parse

from helpers import python_stage

pytestmark = pytest.mark.usefixtures("both_pump_paths")


def graph_of(texts: list[str], edges: list[tuple[object, object]]) -> Graph:
    stages = tuple(dataclasses.replace(parse(text).stage(1), id=i) for i, text in enumerate(texts, start=1))
    return Graph(text=" ; ".join(texts), stages=stages, edges=tuple(Edge(a, b) for a, b in edges))  # type: ignore[arg-type]


def test_fan_out_gives_every_branch_a_full_copy(tmp_path: Path) -> None:
    size = 32 * 1024 * 1024
    graph = graph_of(
        [
            f"head -c {size} /dev/urandom",
            f"sha256sum > {tmp_path}/a",
            f"sha256sum > {tmp_path}/b",
            f"tee {tmp_path}/raw",
        ],
        [(Boundary.STDIN, 1), (1, 2), (1, 3), (1, 4), (4, Boundary.STDOUT)],
    )
    result = ppipe.run(graph, stdout=os.open(os.devnull, os.O_WRONLY))
    assert result.exit_status == 0
    digest = hashlib.sha256((tmp_path / "raw").read_bytes()).hexdigest()
    assert (tmp_path / "a").read_text().split()[0] == digest
    assert (tmp_path / "b").read_text().split()[0] == digest
    assert [result.edge(1, n).bytes for n in (2, 3, 4)] == [size] * 3


def test_fan_out_branch_exiting_early_does_not_stop_the_others() -> None:
    graph = graph_of(
        ["seq 1 200000", "head -1", "wc -l"],
        [(Boundary.STDIN, 1), (1, 2), (1, 3), (2, Boundary.STDOUT), (3, Boundary.STDOUT)],
    )
    result = ppipe.run(graph, stdout=CAPTURE, count_lines=True)
    assert result.exit_status == 0
    assert result.stdout is not None
    assert sorted(result.stdout.split()) == [b"1", b"200000"]
    assert result.edge(1, 3).lines == 200000


def test_fan_in_merges_whole_lines() -> None:
    # Four writers of 5000 lines of up to 3000 bytes: ~30 MB, each hundreds of pipefuls, lines of every length.
    writer = python_stage(
        "import random, sys\n"
        "tag = sys.argv[1]\n"
        "rnd = random.Random(tag)\n"
        "for i in range(5000):\n"
        "    sys.stdout.write(f'{tag}:{i}:' + 'x' * rnd.randrange(0, 3000) + '\\n')\n"
    )
    texts = [f"{writer} {tag}" for tag in "abcd"] + ["cat"]
    edges: list[tuple[object, object]] = [(Boundary.STDIN, i) for i in range(1, 5)]
    edges += [(i, 5) for i in range(1, 5)] + [(5, Boundary.STDOUT)]
    result = ppipe.run(graph_of(texts, edges), input=b"", stdout=CAPTURE)
    assert result.exit_status == 0
    assert result.stdout is not None
    lines = result.stdout.split(b"\n")
    assert lines[-1] == b""
    seen: dict[bytes, list[int]] = {}
    for line in lines[:-1]:
        tag, number, filler = line.split(b":")
        assert filler == b"x" * len(filler)
        seen.setdefault(tag, []).append(int(number))
    assert {tag: numbers == list(range(5000)) for tag, numbers in seen.items()} == {
        b"a": True,
        b"b": True,
        b"c": True,
        b"d": True,
    }


def test_stdin_bytes_fan_out_to_every_reader() -> None:
    graph = graph_of(
        ["wc -l", "wc -c"], [(Boundary.STDIN, 1), (Boundary.STDIN, 2), (1, Boundary.STDOUT), (2, Boundary.STDOUT)]
    )
    result = ppipe.run(graph, input=b"a\nbb\nccc\n", stdout=CAPTURE)
    assert result.stdout is not None
    assert sorted(result.stdout.split()) == [b"3", b"9"]
    assert result.edge(Boundary.STDIN, 2).bytes == 9


def test_two_branches_into_ppipes_stdout_pipe_merge_whole_lines() -> None:
    graph = graph_of(
        ["seq 1 100000", "cat", "cat"],
        [(Boundary.STDIN, 1), (1, 2), (1, 3), (2, Boundary.STDOUT), (3, Boundary.STDOUT)],
    )
    read_fd, write_fd = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read_fd, 65536), b"")))
    reader.start()
    try:
        result = ppipe.run(graph, stdout=write_fd)
    finally:
        os.close(write_fd)
        reader.join()
        os.close(read_fd)
    assert result.exit_status == 0
    lines = b"".join(chunks).split()
    assert sorted(int(x) for x in lines) == sorted(list(range(1, 100001)) * 2)
    assert result.edge(2, Boundary.STDOUT).bytes == result.edge(1, 2).bytes

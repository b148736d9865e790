"""Graphs: ``{ a ; b }`` groups fan a stream out to branches and merge their outputs, whole lines."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ppipe

from helpers import bash, python_stage, seeded
from helpers import ppipe as run_ppipe

HERE = Path(__file__).parent
LINES = f"{sys.executable} {HERE / 'shard_lines.py'}"
MiB = 1 << 20


# ---------------------------------------------------------------- the acceptance lines


def test_two_branches_count_in_parallel() -> None:
    numbers = b"".join(b"%d\n" % n for n in range(1, 100_001))
    done = run_ppipe("{ grep 7 | wc -l ; grep 9 | wc -l }", input=numbers)
    assert done.returncode == 0, done.stderr
    expected = sorted(str(sum(digit in str(n) for n in range(1, 100_001))).encode() for digit in "79")
    assert sorted(done.stdout.split()) == expected


def test_a_branch_that_leaves_early_stops_only_itself() -> None:
    done = run_ppipe("seq 1 1000000 | { head -1 ; wc -l }")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == [b"1", b"1000000"]


def test_fan_out_copies_are_byte_exact(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(_random(64 * MiB))  # far past every pipe and tee buffer
    expected = hashlib.sha256(big.read_bytes()).hexdigest().encode()
    done = run_ppipe(f"cat {big} | {{ sha256sum ; gzip -1 -c | gunzip -c | sha256sum ; sha256sum }}", timeout=300)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == [expected] * 3


def _random(size: int) -> bytes:
    """``size`` seeded random bytes: a random block a little over a MiB, repeated. Its period matches no buffer
    size, so a chunk lost, doubled or moved still changes the digest; gzip finds nothing to shrink in it."""
    block = seeded("fan-out copies").randbytes(MiB + 4099)
    return (block * (size // len(block) + 1))[:size]


# ---------------------------------------------------------------- against bash


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("seq 1 1000 | { grep 7 > f1 ; wc -l }", "seq 1 1000 | tee >(grep 7 > f1) | wc -l; wait $!"),
        ("{ seq 3 ; seq 5 } | sort -n", "{ seq 3; seq 5; } | sort -n"),
        ("{ echo a ; echo b ; echo c }", "{ echo a; echo b; echo c; }"),
        (
            "seq 20 | { grep 1 ; grep 2 | sed s/^/two/ } | sort",
            "{ seq 20 | grep 1; seq 20 | grep 2 | sed s/^/two/; } | sort",
        ),
    ],
)
def test_same_lines_as_bash(tmp_path: Path, ours: str, theirs: str) -> None:
    mine = run_ppipe(ours, cwd=str(tmp_path))
    my_file = (tmp_path / "f1").read_bytes() if (tmp_path / "f1").exists() else None
    reference = bash(theirs, cwd=str(tmp_path))
    their_file = (tmp_path / "f1").read_bytes() if (tmp_path / "f1").exists() else None
    assert mine.returncode == reference.returncode == 0, mine.stderr
    assert sorted(mine.stdout.splitlines()) == sorted(reference.stdout.splitlines())
    assert my_file == their_file


# ---------------------------------------------------------------- behaviour


def test_a_slow_branch_paces_the_producer_with_bounded_memory() -> None:
    slow = python_stage(
        "import sys, time\nn = 0\n"
        "while chunk := sys.stdin.buffer.read(1 << 20):\n    n += len(chunk); time.sleep(0.002)\n"
        "print('slow', n)"
    )
    code = (
        "import ppipe\n"
        f"r = ppipe.run({f'head -c {300 * MiB} /dev/zero | {{ wc -c ; {slow} }}'!r}, stdout=ppipe.CAPTURE)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(r.exit_status, int(hwm) // 1024)\n"
        "print(r.stdout.decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=300).stdout
    status, hwm, *counts = out.split(b"\n")[0].split() + out.split(b"\n")[1:]
    assert status == b"0"
    assert int(hwm) < 96, f"peak RSS {hwm} MiB while copying 300 MiB to a slow branch"
    assert sorted(line for line in counts if line) == [str(300 * MiB).encode(), b"slow %d" % (300 * MiB)]


def test_eight_branches_merge_whole_lines_into_one_consumer() -> None:
    branches = " ; ".join(f"{LINES} write b{i} 100000" for i in range(8))
    done = run_ppipe(f"{{ {branches} }} | {sys.executable} {HERE / 'shard_lines.py'} check", timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split("\n")[:-1] == [f"b{i} 100000" for i in range(8)]


def test_a_last_line_without_newline_is_merged_whole() -> None:
    done = run_ppipe("{ printf 'no newline here' ; seq 3 }")
    assert done.returncode == 0
    assert b"no newline here" in done.stdout  # never torn by the other branch's lines
    assert done.stdout.replace(b"no newline here", b"") == b"1\n2\n3\n"


def test_a_group_at_the_start_gives_each_branch_a_copy_of_stdin() -> None:
    done = run_ppipe("{ cat ; wc -l }", input=b"a\nb\n")
    assert sorted(done.stdout.split()) == [b"2", b"a", b"b"]


def test_pipe_and_stderr_inside_branches() -> None:
    done = run_ppipe("seq 3 | { sh -c 'cat; echo oops >&2' |& sort ; wc -l }")
    assert done.returncode == 0
    assert sorted(done.stdout.split()) == [b"1", b"2", b"3", b"3", b"oops"]


@pytest.mark.parametrize(
    ("pipeline", "status", "failed"),
    [
        ("seq 3 | { sh -c 'cat >/dev/null; exit 3' ; wc -l }", 3, [2]),
        ("{ false ; true } | cat", 1, [1]),
        ("{ sh -c 'exit 4' ; sh -c 'exit 5' } | cat", 5, [1, 2]),
        ("{ -false ; true } | cat", 0, []),
    ],
)
def test_failures_inside_branches(tmp_path: Path, pipeline: str, status: int, failed: list[int]) -> None:
    report = tmp_path / "r.json"
    done = run_ppipe("--report", str(report), pipeline)
    assert done.returncode == status
    stages = json.loads(report.read_text())["stages"]
    assert [s["id"] for s in stages if s["failed"]] == failed


def test_braces_inside_words_and_quotes_are_arguments() -> None:
    done = run_ppipe("echo '{' \"}\" {a,b} {} x{ }y | awk '{print $1}'")
    assert done.stdout == b"{\n"


@pytest.mark.parametrize(
    ("pipeline", "column", "message"),
    [
        ("{ }", 3, b"an empty group"),
        ("{ a ;}", 6, b"an empty branch"),
        ("{ a ; b", 1, b"unclosed '{'"),
        ("a | b }", 7, b"'}' without a '{'"),
        ("a ; b", 3, b"';' (a list of commands)"),
        ("{ a ; b } > f", 11, b"a group is followed only by"),
        ("{ a | ; b }", 5, b"empty stage"),
        ("FOO=1 { a ; b }", 7, b"a group takes no NAME=value, redirection or '-'"),
        ("< f { a ; b }", 5, b"a group takes no"),
    ],
)
def test_rejected_forms_point_at_the_column(pipeline: str, column: int, message: bytes) -> None:
    done = run_ppipe(pipeline)
    assert done.returncode == 2
    assert message in done.stderr
    assert f"column {column}".encode() in done.stderr


def test_explain_draws_the_tree() -> None:
    done = run_ppipe("--explain", "seq 3 | { grep 1 ; grep 2 | wc -l } | cat")
    tree = done.stdout.decode().split("graph")[1].split("edges:")[0].splitlines()[1:]
    assert [line.rstrip() for line in tree if line.strip()] == [
        "  1 seq 3",
        "  ├─ 2 grep 1",
        "  └─ 3 grep 2",
        "     4 wc -l",
        "  5 cat",
    ]
    assert "stage 1 -> stage 2" in done.stdout.decode() and "stage 4 -> stage 5" in done.stdout.decode()


def test_python_api_sees_every_branch() -> None:
    result = ppipe.run("seq 10 | { grep 1 ; wc -l }", stdout=ppipe.CAPTURE, count_lines=True)
    assert result.ok
    assert result.edge(1, 2).lines == 10 and result.edge(1, 3).lines == 10
    assert sorted(result.stdout.split()) == [b"1", b"10", b"10"]  # type: ignore[union-attr]


def test_groups_run_as_shards_too() -> None:
    done = run_ppipe("--fork", "2", "--keep-order", "seq {task_num} | { wc -l ; tail -1 }")
    assert done.returncode == 0
    assert sorted(done.stdout.split()[:2]) == [b"1", b"1"] and sorted(done.stdout.split()[2:]) == [b"2", b"2"]


def test_the_producer_stops_only_when_every_branch_has_gone(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = run_ppipe("--report", str(report), "yes | { head -1 ; head -2 }", timeout=30)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == [b"y", b"y", b"y"]
    stages = json.loads(report.read_text())["stages"]
    assert stages[0]["signal"] == "SIGPIPE" and stages[0]["verdict"] == "broken-pipe"


def test_groups_nest() -> None:
    done = run_ppipe("seq 6 | { grep 1 ; { grep 2 ; grep 3 } | sed s/^/n/ ; grep -v '[123]' | wc -l }")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == [b"1", b"3", b"n2", b"n3"]


# ---------------------------------------------------------------- found in review; each was a real defect


def test_a_line_longer_than_the_pipes_does_not_deadlock_a_fan_out_and_in() -> None:
    long_line = b"a" * (20 * MiB) + b"\n"
    done = run_ppipe("{ cat ; cat }", input=long_line, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == long_line * 2
    numbers = b"".join(b"%d\n" % n for n in range(1_000_000))
    done = run_ppipe("{ tr -d '\\n' ; cat }", input=numbers, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) == 2 * len(numbers) - numbers.count(b"\n")


def test_a_write_error_on_merged_output_fails_the_run() -> None:
    with open("/dev/full", "wb") as full:
        done = subprocess.run(["ppipe", "seq 3 | { cat ; cat }"], stdout=full, stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 1
    assert b"cannot write the output: No space left on device" in done.stderr


def test_a_closed_stdin_for_a_group_is_a_clean_error() -> None:
    done = subprocess.run("ppipe '{ cat ; cat }' <&-", shell=True, capture_output=True, timeout=60)
    assert done.returncode == 1
    assert b"cannot read the input" in done.stderr and b"internal error" not in done.stderr


@pytest.mark.parametrize(
    ("pipeline", "tree"),
    [
        ("x | { a ; b } | { c ; d }", ["1 x", "├─ 2 a", "└─ 3 b", "├─ 4 c", "└─ 5 d"]),
        ("a | { { b ; c } | d ; e }", ["1 a", "├─ ├─ 2 b", "│  └─ 3 c", "│  4 d", "└─ 5 e"]),
    ],
)
def test_every_branch_start_is_marked(pipeline: str, tree: list[str]) -> None:
    done = run_ppipe("--explain", pipeline)
    drawn = done.stdout.decode().split("graph")[1].split("edges:")[0].splitlines()[1:]
    assert [line.strip() for line in drawn if line.strip()] == tree


def test_closed_early_is_per_edge_in_a_fan_out(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    run_ppipe("--report", str(report), "seq 1000000 | { head -1 ; wc -l }")
    edges = {(e["from"], e["to"]): e for e in json.loads(report.read_text())["edges"]}
    assert edges[(1, 2)]["closed_early"] is True and edges[(1, 3)]["closed_early"] is False
    assert edges[(1, 3)]["bytes"] == 6888896


def test_a_group_may_span_lines() -> None:
    done = run_ppipe("seq 3 | {\n  grep 1 ;\n  wc -l\n}")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == [b"1", b"3"]
    assert run_ppipe("seq 3\nwc -l").returncode == 2  # between commands a newline is still a list


def test_edges_from_a_copied_stdin_are_counted(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    run_ppipe("--report", str(report), "{ cat ; wc -l }", input=b"a\nb\n")
    edges = json.loads(report.read_text())["edges"]
    from_stdin = [(e["to"], e["counted"], e["bytes"], e["lines"]) for e in edges if e["from"] == "stdin"]
    assert from_stdin == [(1, True, 4, 2), (2, True, 4, 2)]

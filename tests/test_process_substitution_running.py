"""Process substitutions run as part of the graph: counted edges, statuses that count, no hang, no leak.

Each ``<(...)`` and ``>(...)`` is stages of the run with an edge into or out
of the stage holding it, at the descriptor it names (``/dev/fd/63``...);
ppipe pumps those bytes as any other edge's (on both pump paths), waits for
every substitution, judges them by the usual rules, and gives no stage a
descriptor that is not its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ppipe

from helpers import ENV, PPIPE, killed_at_end, peak_rss_of_run, python_stage, verdicts, wait_for_argument, wait_gone
from helpers import ppipe as run_ppipe
from helpers import run_captured as run

pytestmark = pytest.mark.usefixtures("both_pump_paths")

MiB = 1024 * 1024


# ---------------------------------------------------------------- edges


def test_each_substitution_is_a_counted_edge_into_its_holders_descriptor() -> None:
    result = run("paste <(seq 3) <(seq 4 | tr 0-9 a-j)", count_lines=True)
    assert result.stdout == b"1\tb\n2\tc\n3\td\n\te\n"
    first, second = result.edge(2, 1), result.edge(4, 1)
    assert (first.edge.target_fd, first.bytes, first.lines, first.counted) == (63, 6, 3, True)
    assert (second.edge.target_fd, second.bytes, second.lines) == (62, 8, 4)
    assert result.edge(3, 4).bytes == 8  # the substitution's own pipeline, an ordinary edge
    assert result.local is not None
    assert result.local.flow(1).bytes_in == 14  # the holder's row: what its substitutions gave it


def test_an_output_substitution_is_a_counted_edge_out_of_its_holders_descriptor(tmp_path: Path) -> None:
    result = run("seq 5 | tee >(wc -l > n.txt) >(tr 1-5 a-e > letters.txt)", cwd=str(tmp_path), count_lines=True)
    assert result.exit_status == 0, verdicts(result)
    assert result.stdout == b"1\n2\n3\n4\n5\n"
    assert (tmp_path / "n.txt").read_text() == "5\n"
    assert (tmp_path / "letters.txt").read_text() == "a\nb\nc\nd\ne\n"
    out = result.edge(2, 3)
    assert (out.edge.source_fd, out.bytes, out.lines) == (63, 10, 5)
    assert result.edge(2, 4).edge.source_fd == 62


def test_redirections_from_and_into_substitutions(tmp_path: Path) -> None:
    result = run("wc -l < <(seq 7)")
    assert result.stdout == b"7\n" and result.edge(2, 1).bytes == 14
    result = run("seq 3 > >(tr 1-3 x-z > out.txt)", cwd=str(tmp_path))
    assert result.exit_status == 0
    assert (tmp_path / "out.txt").read_text() == "x\ny\nz\n"
    assert result.edge(1, 2).edge.source_fd == 63


def test_an_output_substitution_writes_where_its_holder_writes() -> None:
    """As in bash, ``>(...)``'s output goes into its holder's stdout: here the pipe into ``sort``."""
    result = run("seq 3 | tee >(wc -l) | sort")
    assert result.stdout == b"1\n2\n3\n3\n"
    assert result.exit_status == 0


def test_an_input_substitution_reads_its_holders_stdin() -> None:
    """As in bash, ``<(...)`` shares its holder's stdin: the same pipe, read by whichever reads first."""
    result = run("cat <(cat)", input=b"from stdin\n")
    assert result.stdout == b"from stdin\n"


def test_nested_substitutions_each_number_from_63(tmp_path: Path) -> None:
    (tmp_path / "x.tsv").write_text("b\t1\na\t2\nb\t3\n")
    result = run("cat <(sort -u <(cut -f1 x.tsv)) <(echo end)", cwd=str(tmp_path))
    assert result.stdout == b"a\nb\nend\n"
    assert [s.stage.argv for s in result.stages] == [
        ("cat", "/dev/fd/63", "/dev/fd/62"),
        ("sort", "-u", "/dev/fd/63"),
        ("cut", "-f1", "x.tsv"),
        ("echo", "end"),
    ]


def test_substitutions_hold_groups_and_sit_in_groups() -> None:
    result = run("cat <({ echo a ; echo b } | sort -r)")
    assert result.stdout == b"b\na\n"
    result = run("echo x | { cat - <(echo one) ; cat <(echo two) }")
    assert sorted(result.stdout.splitlines()) == [b"one", b"two", b"x"]
    assert result.exit_status == 0


# ---------------------------------------------------------------- statuses


def test_a_failing_substitution_fails_the_run_with_its_status(tmp_path: Path) -> None:
    (tmp_path / "b").write_text("x\n")
    result = run("diff <(sort missing.txt) <(sort b)", cwd=str(tmp_path))
    assert result.exit_status == 2  # sort's, the rightmost failure: diff (1) is stage 1
    assert verdicts(result) == ["failed", "failed", "ok"]


def test_the_opt_out_marker_and_no_fail_excuse_a_substitution(tmp_path: Path) -> None:
    (tmp_path / "b").write_text("x\n")
    result = run("-diff <(-sort missing.txt) <(sort b)", cwd=str(tmp_path))
    assert result.exit_status == 0 and verdicts(result) == ["ignored", "ignored", "ok"]
    result = run("diff <(sort missing.txt) <(sort b)", cwd=str(tmp_path), no_fail=True)
    assert result.exit_status == 0


def test_a_substitution_whose_reader_stopped_reading_is_excused() -> None:
    result = run("head -1 <(yes)", timeout=30)
    assert result.stdout == b"y\n"
    assert result.exit_status == 0
    assert verdicts(result) == ["ok", "broken-pipe"]
    assert result.stages[1].signal == "SIGPIPE"


def test_a_substitution_that_reports_epipe_is_excused_too() -> None:
    generator = python_stage("for i in range(10**7): print(i)")
    result = run(f"head -2 <({generator})", timeout=30)
    assert result.stdout == b"0\n1\n"
    assert result.exit_status == 0, verdicts(result)
    assert result.stages[1].returncode == 1 and verdicts(result) == ["ok", "broken-pipe"]


def test_a_reader_that_never_opens_its_substitution_does_not_hang_the_run() -> None:
    started = time.monotonic()
    result = run("echo <(seq 1e9)", timeout=60)
    assert result.stdout == b"/dev/fd/63\n"
    assert result.exit_status == 0 and not result.timed_out
    assert verdicts(result) == ["ok", "broken-pipe"]
    assert time.monotonic() - started < 30  # seq 1e9 would run for minutes


def test_a_reader_that_closes_its_substitution_early_does_not_hang_the_run() -> None:
    result = run("sh -c 'head -c 5 /dev/fd/63; echo; echo done' <(seq 1e9)", timeout=60)
    assert result.stdout == b"1\n2\n3\ndone\n"
    assert result.exit_status == 0, verdicts(result)


def test_a_writer_whose_output_substitution_leaves_is_excused() -> None:
    result = run("yes | tee >(head -c 10 > /dev/null) > /dev/null", timeout=60)
    assert result.exit_status == 0, verdicts(result)
    assert verdicts(result)[2] == "ok"


def test_an_output_substitution_that_reports_epipe_is_judged_by_its_holders_readers() -> None:
    """Its last stage writes into its holder's stdout: when that reader leaves, an EPIPE exit is excused."""
    generator = python_stage(
        "import os, sys\ntry:\n    while True: sys.stdout.write('x\\n')\n"
        "except BrokenPipeError:\n    sys.stderr.write('Broken pipe\\n'); os._exit(1)"
    )
    result = run(f"yes | tee >({generator}) | head -1", timeout=60)
    assert result.exit_status == 0, verdicts(result)
    assert result.stages[2].returncode == 1 and verdicts(result) == ["broken-pipe", "broken-pipe", "broken-pipe", "ok"]


def test_ppipe_waits_for_output_substitutions(tmp_path: Path) -> None:
    """bash returns while ``>(...)`` still writes; ppipe's run ends with it."""
    slow = "sh -c 'sleep 0.5; wc -l > n.txt'"
    result = run(f"seq 3 | tee >({slow}) > /dev/null", cwd=str(tmp_path))
    assert result.exit_status == 0
    assert (tmp_path / "n.txt").read_text() == "3\n"


def test_a_timeout_stops_the_substitutions_too() -> None:
    result = run("cat <(sleep 30) <(sleep 31)", timeout=0.5)
    assert result.timed_out and result.exit_status == 124
    assert verdicts(result) == ["terminated", "terminated", "terminated"]


# ---------------------------------------------------------------- descriptors


def test_a_stage_gets_its_own_substitutions_and_nothing_else() -> None:
    result = run("ls /proc/self/fd <(true) <(true) | cat | ls /proc/self/fd")
    assert result.stdout == b"0\n1\n2\n3\n"  # the last ls: its three, and its own listing
    result = run("ls /proc/self/fd <(true) <(true) >(cat)")
    assert result.stdout.split(b"\n\n")[1] == b"/proc/self/fd:\n0\n1\n2\n3\n61\n62\n63\n"


def test_substitutions_reach_their_numbers_when_ppipe_holds_them(tmp_path: Path) -> None:
    """A caller of the library with 63 and 62 open: the stage still finds its pipes there, the caller's stay."""
    code = (
        "import os, ppipe\n"
        "held = [os.open(os.devnull, os.O_RDONLY) for _ in range(70)]\n"
        "before = [os.fstat(fd).st_ino for fd in (62, 63)]\n"
        "r = ppipe.run(\"sh -c 'readlink /proc/$$/fd/63 /proc/$$/fd/62; cat /dev/fd/63 /dev/fd/62' "
        '<(echo one) <(echo two)", stdout=ppipe.CAPTURE)\n'
        "print(r.stdout.decode(), end='')\n"
        "print([os.fstat(fd).st_ino for fd in (62, 63)] == before)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, env=ENV)
    lines = done.stdout.decode().splitlines()
    assert lines[0].startswith("pipe:[") and lines[1].startswith("pipe:[") and lines[0] != lines[1]
    assert lines[2:] == ["one", "two", "True"], done.stderr


def test_too_few_descriptors_start_nothing() -> None:
    text = "cat " + " ".join(f"<(echo {i})" for i in range(61))
    done = subprocess.run(
        ["sh", "-c", 'ulimit -n 100; exec "$0" "$1"', PPIPE, text], capture_output=True, timeout=60, env=ENV
    )
    assert done.returncode == 1
    assert b"62 stages need more open files than the limit of 100" in done.stderr and done.stdout == b""


def test_a_limit_below_the_substitutions_number_is_refused_before_anything_starts() -> None:
    """``ulimit -n 40``: no stage can be given /dev/fd/63 (bash numbers it lower there); ppipe says so."""
    done = subprocess.run(
        ["sh", "-c", 'ulimit -n 40; exec "$0" "$1"', PPIPE, "cat <(echo 1)"], capture_output=True, timeout=60, env=ENV
    )
    assert done.returncode == 1 and done.stdout == b""
    assert b"/dev/fd/63, beyond the open-file limit of 40; raise it with ulimit -n 64" in done.stderr


# ---------------------------------------------------------------- memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_bounded_through_a_substitution_into_a_slow_reader() -> None:
    slow = (
        "import sys, time\n"
        "n = 0\n"
        "with open(sys.argv[1], 'rb') as f:\n"
        "    while chunk := f.read(1 << 20):\n"
        "        n += len(chunk); time.sleep(0.002)\n"
        "print(n)"
    )
    output, peak = peak_rss_of_run(f"{python_stage(slow)} <(head -c {200 * MiB} /dev/zero)")
    assert int(output) == 200 * MiB
    assert peak < 96, f"ppipe's peak RSS was {peak} MiB while moving 200 MiB"


# ---------------------------------------------------------------- shards, report, view


def test_substitutions_take_placeholders_in_sharded_runs(tmp_path: Path) -> None:
    for task in range(3):
        (tmp_path / f"part-{task}.txt").write_text(f"b{task}\na{task}\n")
    done = run_ppipe("-q", "--fork", "3", "--keep-order", "paste <(sort part-{task_id}.txt) <(echo {task_num})",
                     cwd=str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"a0\t1\nb0\t\na1\t2\nb1\t\na2\t3\nb2\t\n"
    (tmp_path / "items").write_text("x\ny\n")
    done = run_ppipe("-q", "--each", "items", "--keep-order", "cat <(echo {item}) <(echo {task_id})", cwd=str(tmp_path))
    assert done.stdout == b"x\n0\ny\n1\n", done.stderr


def test_a_failing_substitution_fails_its_shard() -> None:
    done = run_ppipe("-q", "--fork", "2", "cat <(sh -c 'exit {task_num}')")
    assert done.returncode == 1  # the lowest failed shard's status: shard 0's substitution exits 1


def test_the_report_has_every_substitution_stage_and_edge(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = run_ppipe("-q", "--report", str(report), "-diff <(seq 3) <(seq 4) | tee >(wc -l) | cat", cwd=str(tmp_path))
    assert done.returncode == 0 and done.stdout == b"3a4\n> 4\n2\n"
    data = json.loads(report.read_text())
    assert [s["command"] for s in data["stages"]] == ["diff /dev/fd/63 /dev/fd/62", "seq 3", "seq 4", "tee /dev/fd/63",
                                                      "wc -l", "cat"]  # fmt: skip
    assert data["stages"][1]["reads_stdin_of"] == 1 and data["stages"][4]["writes_stdout_of"] == 4
    edges = {(e["from"], e["to"]): (e["from_fd"], e["to_fd"], e["counted"]) for e in data["edges"]}
    assert edges[(2, 1)] == (1, 63, True) and edges[(3, 1)] == (1, 62, True) and edges[(4, 5)] == (63, 0, True)
    assert ppipe.to_report(ppipe.load_report(str(report))) == data


def test_the_live_view_has_a_row_per_substitution_stage() -> None:
    with killed_at_end(
        subprocess.Popen(
            [PPIPE, "--progress", "plain", "--progress-interval", "0.1", "cat <(sleep 1) <(echo x)"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
    ) as process:
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    said = stderr.decode()
    assert all(command in said for command in ("sleep 1", "echo x")), said


def test_explain_draws_the_substitution_edges() -> None:
    done = run_ppipe("--explain", "diff <(sort a) <(sort b) | tee >(wc -l)")
    said = done.stdout.decode()
    assert "  stage 2 -> stage 1 as /dev/fd/63\n" in said
    assert "  stage 3 -> stage 1 as /dev/fd/62\n" in said
    assert "  stage 4 as /dev/fd/63 -> stage 5\n" in said
    assert "  stage 5 writes into stage 4's stdout  (the same descriptor, as in bash)\n" in said
    assert "  ├─ 2 sort a\n  └─ 3 sort b\n" in said


def test_the_run_leaves_no_process_behind() -> None:
    with killed_at_end(subprocess.Popen([PPIPE, "cat <(sleep 30.5) <(sleep 31.5)"], env=ENV)) as process:
        sleeping = wait_for_argument("30.5") + wait_for_argument("31.5")
        process.terminate()
        assert process.wait(timeout=30) != 0
    assert wait_gone(sleeping, timeout=10) == []


def test_descriptors_swapped_between_their_numbers_reach_the_right_ones(tmp_path: Path) -> None:
    """The pipe meant for 63 sits at 62 in ppipe and the one for 62 at 63: neither move may overwrite the other."""
    code = (
        "import asyncio, os\n"
        "from ppipe.engine.processes import spawn\n"
        "a, b = os.pipe(), os.pipe()\n"
        "os.dup2(a[0], 62); os.dup2(b[0], 63)\n"
        "os.write(a[1], b'meant for 63\\n'); os.write(b[1], b'meant for 62\\n')\n"
        "for fd in (*a, *b): os.close(fd)\n"
        "async def main():\n"
        "    child = spawn(['sh', '-c', 'head -1 /dev/fd/63; head -1 /dev/fd/62'], '/bin/sh',\n"
        "                  {0: 0, 1: 1, 2: 2, 63: 62, 62: 63}, dict(os.environ), None, None)\n"
        "    child.proc.wait()\n"
        "asyncio.run(main())\n"
        "print(os.fstat(62).st_ino != os.fstat(63).st_ino)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, env=ENV)
    assert done.stdout.decode().splitlines() == ["meant for 63", "meant for 62", "True"], done.stderr

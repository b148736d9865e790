"""Sharded runs (``--fork``): real forks, real processes, real signals."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import ppipe
from ppipe.results import Verdict

from helpers import ENV, PPIPE, descendants, parent_of, pids_alive, python_stage, wait_gone, wait_until
from helpers import ppipe as run_ppipe

HERE = Path(__file__).parent
LINES = f"{sys.executable} {HERE / 'shard_lines.py'}"


def report_of(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())


# ---------------------------------------------------------------- the acceptance lines


def test_each_shard_gets_its_placeholders() -> None:
    done = run_ppipe("--fork", "4", "seq {task_num} 4 100 | wc -l")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [b"25"] * 4


def test_split_input_reaches_exactly_one_shard() -> None:
    done = subprocess.run(
        f"seq 1 1000000 | {PPIPE} --fork 3 'wc -l' | awk '{{s+=$1}} END {{print s}}'",
        shell=True,
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    assert done.stdout == b"1000000\n", done.stderr


def test_keep_order_emits_each_shards_blocks_in_turn() -> None:
    numbers = b"".join(b"%d\n" % n for n in range(1, 1_000_001))
    done = run_ppipe("--fork", "4", "--keep-order", "cat", input=numbers)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split(), key=int) == numbers.split()
    # The documented order: shard 0's blocks (0, 4, 8...), then shard 1's (1, 5, 9...)...
    blocks = _blocks(numbers, 1 << 20)
    assert done.stdout == b"".join(b"".join(blocks[k::4]) for k in range(4))


def _blocks(data: bytes, size: int) -> list[bytes]:
    """Whole-line blocks of about ``size`` bytes, as the README describes them."""
    blocks = []
    while len(data) > size:
        cut = data.rfind(b"\n", 0, size) + 1 or data.find(b"\n", size) + 1
        blocks.append(data[:cut])
        data = data[cut:]
    return [*blocks, data] if data else blocks


def test_a_shard_that_keeps_failing_uses_its_restarts_and_fails_the_run(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = run_ppipe("--fork", "3", "--max-restarts", "2", "--report", str(report), "sh -c 'exit 5'")
    assert done.returncode == 5
    for task_id in range(3):
        assert f"shard {task_id} failed after 3 attempts".encode() in done.stderr
    shards = report_of(report)["shards"]
    assert [s["verdict"] for s in shards] == ["failed"] * 3
    assert [[a["exit_status"] for a in s["attempts"]] for s in shards] == [[5, 5, 5]] * 3
    assert [s["restarts"] for s in shards] == [2, 2, 2]


# ---------------------------------------------------------------- restarts


def test_a_stage_that_crashes_once_is_run_again(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    crash_once = "sh -c 'if [ ! -e seen{task_id} ]; then touch seen{task_id}; kill -9 $$; fi; echo ok {task_id}'"
    done = run_ppipe("--fork", "3", "--max-restarts", "1", "--report", str(report), crash_once, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [b"ok 0", b"ok 1", b"ok 2"]
    shards = report_of(report)["shards"]
    assert [[a["exit_status"] for a in s["attempts"]] for s in shards] == [[137, 0]] * 3
    assert shards[0]["attempts"][0]["stages"][0]["signal"] == "SIGKILL"
    assert shards[0]["attempts"][1]["stages"][0]["restarts"] == 1


def test_a_killed_shard_process_is_reported_and_restarted(tmp_path: Path) -> None:
    # The stage kills its own shard process (its parent) on the first attempt.
    script = "sh -c 'if [ ! -e seen ]; then touch seen; kill -9 $PPID; sleep 5; fi; echo again'"
    report = tmp_path / "r.json"
    done = run_ppipe("--fork", "1", "--max-restarts", "1", "--report", str(report), script, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"again\n"
    first, second = report_of(report)["shards"][0]["attempts"]
    assert "killed by SIGKILL before it reported" in first["error"]
    assert first["exit_status"] == 137 and second["exit_status"] == 0


def test_a_command_missing_everywhere_fails_before_anything_starts(tmp_path: Path) -> None:
    done = run_ppipe("--fork", "3", "--max-restarts", "5", "seq 3 | no-such-command-{task_id}")
    assert done.returncode == 127
    assert b"no-such-command-0" in done.stderr and b"Traceback" not in done.stderr


def test_fail_fast_stops_the_other_shards_and_kills_one_that_will_not_stop(tmp_path: Path) -> None:
    # Shard 1 fails once the others are up; shard 0 stops on SIGTERM; shard 2
    # ignores it and must be killed after --kill-after. Were they not stopped,
    # the run would last a minute and run_ppipe's timeout would fail the test.
    stage = python_stage(
        "import os, signal, sys, time\n"
        "me = sys.argv[1]\n"
        "if me == '1':\n"
        "    while not (os.path.exists('0.pid') and os.path.exists('2.pid')): time.sleep(0.01)\n"
        "    sys.exit(3)\n"
        "if me == '2': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(me + '.tmp', 'w').write(str(os.getpid())); os.rename(me + '.tmp', me + '.pid')\n"
        "time.sleep(60)\n"
    )
    report = tmp_path / "r.json"
    done = run_ppipe(
        "--fork",
        "3",
        "--fail-fast",
        "--kill-after",
        "1",
        "--report",
        str(report),
        f"{stage} {{task_id}}",
        cwd=str(tmp_path),
        timeout=50,
    )
    assert done.returncode == 3
    assert b"--fail-fast" in done.stderr
    shards = report_of(report)["shards"]
    assert [s["verdict"] for s in shards] == ["terminated", "failed", "terminated"]
    assert [s["attempts"][0]["stages"][0]["signal"] for s in shards] == ["SIGTERM", None, "SIGKILL"]
    assert pids_alive([int((tmp_path / f"{i}.pid").read_text()) for i in (0, 2)]) == []


def test_a_restarted_shard_is_fed_its_input_again(tmp_path: Path) -> None:
    # The first attempt of every shard reads all its input, then fails: the
    # second must see the same blocks, and the output every line once.
    script = "sh -c 'if [ ! -e seen{task_id} ]; then touch seen{task_id}; cat >/dev/null; exit 1; fi; cat'"
    numbers = b"".join(b"%d\n" % n for n in range(200_000))
    done = run_ppipe("--fork", "3", "--max-restarts", "1", "--block", "16k", script, input=numbers, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines(), key=int) == numbers.splitlines()


# ---------------------------------------------------------------- output and input


def test_heavy_concurrent_output_keeps_every_line_whole() -> None:
    done = run_ppipe("--fork", "8", f"{LINES} write shard{{task_id}} 200000 | cat", timeout=300)
    assert done.returncode == 0, done.stderr
    checked = subprocess.run(
        [sys.executable, str(HERE / "shard_lines.py"), "check"], input=done.stdout, capture_output=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.decode().split("\n")[:-1] == [f"shard{i} 200000" for i in range(8)]


def test_split_input_is_processed_exactly_once() -> None:
    numbers = b"".join(b"%d\n" % n for n in range(300_000))
    done = run_ppipe("--fork", "4", "--block", "4k", "--tag", "sed s/^/seen-/", input=numbers)
    assert done.returncode == 0, done.stderr
    tags, lines = zip(*(line.split(b"\t") for line in done.stdout.splitlines()), strict=True)
    assert set(tags) == {b"0", b"1", b"2", b"3"}
    assert sorted(lines, key=lambda line: int(line[5:])) == [b"seen-" + n for n in numbers.splitlines()]


def test_tag_prefixes_stdout_and_stderr_lines() -> None:
    done = run_ppipe("--fork", "2", "--tag", "sh -c 'echo out {task_id}; echo err {task_id} >&2'")
    assert sorted(done.stdout.splitlines()) == [b"0\tout 0", b"1\tout 1"]
    assert sorted(done.stderr.splitlines()) == [b"0\terr 0", b"1\terr 1"]


def test_output_redirected_to_files_never_passes_through_ppipe(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = run_ppipe("--fork", "3", "--report", str(report), "seq {task_num} > out-{task_id}.txt", cwd=str(tmp_path))
    assert done.returncode == 0 and done.stdout == b""
    assert [(tmp_path / f"out-{i}.txt").read_text() for i in range(3)] == ["1\n", "1\n2\n", "1\n2\n3\n"]
    assert [s["bytes_out"] for s in report_of(report)["shards"]] == [0, 0, 0]


def test_a_terminal_or_device_stdin_is_not_split() -> None:
    done = run_ppipe("--fork", "2", "--tag", "wc -c")  # stdin is /dev/null: nothing to split, each reads EOF
    assert sorted(done.stdout.split(b"\n")[:-1]) == [b"0\t0", b"1\t0"]


# ---------------------------------------------------------------- signals: nothing left behind


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_signal_to_ppipe_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    process = subprocess.Popen(
        [PPIPE, "--fork", "3", "--kill-after", "1", "sh -c 'echo $$ $PPID > {task_id}.pids; exec sleep 60' | cat"],
        cwd=tmp_path,
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    pids = _wait_for_pids(tmp_path, 3)
    supervisors = {parent for shard in pids if (parent := parent_of(shard))}
    process.send_signal(sig)
    process.wait(timeout=30)
    assert process.returncode == -sig
    everything = pids | supervisors
    assert wait_gone(sorted(everything), 5) == []
    assert b"Traceback" not in process.stderr.read()  # type: ignore[union-attr]


def _wait_for_pids(directory: Path, count: int) -> set[int]:
    """The pids the ``count`` shards wrote to ``*.pids`` files in ``directory``, once all are written whole."""

    def written() -> set[int] | None:
        texts = [f.read_text() for f in directory.glob("*.pids")]
        if len(texts) == count and all(t.endswith("\n") for t in texts):
            return {int(pid) for text in texts for pid in text.split()}
        return None

    return wait_until(written, "the shards never started", timeout=30)


# ---------------------------------------------------------------- cluster job arrays


def test_slurm_array_task_fills_the_placeholders() -> None:
    env = {**ENV, "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "8"}
    done = run_ppipe("echo {task_id} {task_num} {tasks}", env=env)
    assert done.stdout == b"2 3 8\n"


def test_task_id_with_fork_numbers_the_shards_of_the_whole_array() -> None:
    done = run_ppipe("--task-id", "1", "--tasks", "3", "--fork", "2", "--keep-order", "echo {task_id}/{tasks}")
    assert done.stdout == b"2/6\n3/6\n"


def test_kubernetes_without_a_task_count_is_a_usage_error() -> None:
    done = run_ppipe("echo {task_id}", env={**ENV, "JOB_COMPLETION_INDEX": "2"})
    assert done.returncode == 2 and b"--tasks" in done.stderr
    done = run_ppipe("--tasks", "4", "echo {task_id}", env={**ENV, "JOB_COMPLETION_INDEX": "2"})
    assert done.stdout == b"2\n"


def test_placeholders_outside_a_sharded_run_stay_as_they_are() -> None:
    assert run_ppipe("echo {task_id}").stdout == b"{task_id}\n"


# ---------------------------------------------------------------- usage


@pytest.mark.parametrize(
    "args",
    [
        ["--tag", "cat"],
        ["--keep-order", "cat"],
        ["--max-restarts", "1", "cat"],
        ["--fork", "2", "--block", "lots", "cat"],
        ["--task-id", "5", "--tasks", "2", "cat"],
        ["--fork", "-1", "cat"],
    ],
)
def test_bad_shard_options_are_usage_errors(args: list[str]) -> None:
    done = run_ppipe(*args)
    assert done.returncode == 2, done.stderr
    assert b"Traceback" not in done.stderr and done.stderr


def test_plain_progress_names_every_shard() -> None:
    done = run_ppipe("--progress", "plain", "--fork", "2", "sleep 5.5")
    assert done.returncode == 0
    line = done.stderr.decode().splitlines()[0]
    assert line.startswith("ppipe: ") and "shard 0 running" in line and "shard 1 running" in line


def test_explain_shows_shard_zero_and_the_rule() -> None:
    done = run_ppipe("--explain", "--fork", "3", "zcat part-{task_id}.gz > out/{task_id}.tsv")
    assert done.returncode == 0
    assert b"{task_id} = i" in done.stdout and b"{tasks} = 3" in done.stdout
    assert b"['zcat', 'part-0.gz']" in done.stdout and b"> out/0.tsv" in done.stdout


def test_fork_zero_means_one_shard_per_cpu() -> None:
    done = run_ppipe("--fork", "0", "echo {tasks}")
    assert done.stdout.split() == [str(os.cpu_count()).encode()] * (os.cpu_count() or 1)


# ---------------------------------------------------------------- the Python API


def test_python_api_runs_shards() -> None:
    result = ppipe.run("echo {task_id}", fork=3, stdout=ppipe.CAPTURE, keep_order=True)
    assert isinstance(result, ppipe.RunResult) and result.sharded
    assert result.ok and result.stdout == b"0\n1\n2\n"
    assert [s.verdict for s in result.shards] == [Verdict.OK] * 3
    assert [s.attempts[0].result.stages[0].stage.argv for s in result.shards] == [  # type: ignore[union-attr]
        ("echo", "0"),
        ("echo", "1"),
        ("echo", "2"),
    ]


def test_python_api_splits_bytes_and_checks() -> None:
    result = ppipe.run("wc -l", fork=2, input=b"a\nb\nc\n", block=2, stdout=ppipe.CAPTURE)
    assert sum(int(n) for n in result.stdout.split()) == 3  # type: ignore[union-attr]
    with pytest.raises(ppipe.PipelineFailed) as failed:
        ppipe.run("sh -c 'exit {task_num}'", fork=2, check=True)
    assert failed.value.status == 1


def test_keep_order_gates_open_once_when_shards_end_together() -> None:
    import asyncio

    from ppipe.engine.sinks import CaptureSink
    from ppipe.shards.output import OutputMerge

    class SlowCapture(CaptureSink):  # yields on every write, as a real pipe's writes do
        async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
            await asyncio.sleep(0.001)
            return await super().write(chunk, feeder)

    async def scenario() -> bytes:
        capture = SlowCapture()
        merge = OutputMerge(capture, shards=3, keep_order=True)
        for index in (2, 1, 0):
            sink = merge.sink_for(index, None, lost=pytest.fail)
            await sink.write(f"shard {index} a\nshard {index} b\n".encode(), feeder=index)
            await sink.finish(index)
        await asyncio.gather(merge.shard_done(0), merge.shard_done(2), merge.shard_done(1))
        await merge.close()
        return bytes(capture.data)

    assert asyncio.run(scenario()) == b"".join(f"shard {i} a\nshard {i} b\n".encode() for i in range(3))


def test_a_shard_writing_one_endless_line_holds_nobody_up() -> None:
    # With split input, holding the other shards' output until this line
    # ended would stop them reading, stop the dealing, and never end.
    numbers = b"".join(b"%d\n" % n for n in range(1_000_000))
    done = run_ppipe("--fork", "2", "--block", "64k", "tr '\\n' ' '", input=numbers, timeout=60)
    assert done.returncode == 0, done.stderr
    # Each shard's one line is given its newline at the end, so the two never run together.
    assert len(done.stdout) == len(numbers) + 2 and done.stdout.count(b"\n") == 2
    assert sorted(done.stdout.split(), key=int) == numbers.split()


def test_a_signal_to_the_whole_group_counts_shards_as_stopped(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    process = subprocess.Popen(
        [PPIPE, "--fork", "2", "--report", str(report), "sh -c 'echo $$ > {task_id}.pids; exec sleep 30'"],
        cwd=tmp_path,
        env=ENV,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _wait_for_pids(tmp_path, 2)  # both shards' stages are running
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGTERM
    assert [s["verdict"] for s in report_of(report)["shards"]] == ["terminated", "terminated"]
    assert b"failed" not in process.stderr.read()  # type: ignore[union-attr]


# ---------------------------------------------------------------- found in review; each was a real defect


def test_blocks_and_lines_larger_than_a_stream_buffer(tmp_path: Path) -> None:
    numbers = b"".join(b"%d\n" % n for n in range(600_000))
    done = run_ppipe("--fork", "2", "--block", "2M", "cat", input=numbers)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split(), key=int) == numbers.split()
    huge = b"x" * (3 << 20) + b"\n"
    done = run_ppipe("--fork", "1", "cat", input=huge)
    assert done.stdout == huge


def test_heavy_stderr_from_many_shards_into_a_slow_reader_loses_nothing() -> None:
    writer = python_stage("import sys; sys.stderr.write(('e' * 99 + '\\n') * 20000)")
    done = subprocess.run(
        f"{PPIPE} --fork 8 --tag {shlex.quote(writer)} 2>&1 >/dev/null | (sleep 2; wc -c)",
        shell=True,
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert int(done.stdout) == 8 * 20000 * (100 + 2)  # each line tagged "N\t"


def test_tags_longer_than_short_lines() -> None:
    done = run_ppipe(
        "--fork", "1", "--task-id", "500", "--tasks", "1000", "--tag", python_stage("print('\\n' * 1000000, end='')")
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"500\t\n" * 1_000_000


def test_a_socket_on_stdin_is_read_without_blocking_ppipe() -> None:
    import socket

    ours, theirs = socket.socketpair()
    process = subprocess.Popen(
        [PPIPE, "--fork", "2", "--block", "1", "--tag", "sh -c 'echo start; exec cat'"],
        stdin=theirs,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    theirs.close()
    assert process.stdout is not None
    ours.sendall(b"hello\n")
    # The shard dealt the line starts and its output arrives while the socket stays open and says nothing more.
    assert [process.stdout.readline(), process.stdout.readline()] == [b"0\tstart\n", b"0\thello\n"]
    ours.close()
    rest, _ = process.communicate(timeout=30)
    assert rest == b"" and process.returncode == 0  # shard 1 got no input: not started


def test_a_restarted_shard_gets_its_input_again_at_once(tmp_path: Path) -> None:
    flaky = "sh -c 'if [ ! -e seen{task_id} ]; then touch seen{task_id}; head -1 >/dev/null; exit 3; fi; exec cat'"
    process = subprocess.Popen(
        [PPIPE, "--fork", "2", "--block", "1", "--max-restarts", "1", flaky],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        cwd=tmp_path,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"a\nb\n")
    process.stdin.flush()
    # stdin stays open: the replay must not wait for more input or its end
    assert sorted([process.stdout.readline(), process.stdout.readline()]) == [b"a\n", b"b\n"]
    process.stdin.close()
    process.wait(timeout=30)
    assert process.returncode == 0


def test_a_crashed_attempts_half_line_never_joins_another_line(tmp_path: Path) -> None:
    script = (
        "sh -c 'if [ {task_id} = 1 ] && [ ! -e seen ]; then touch seen; printf HALF; kill -9 $$; fi; "
        "sleep 0.5; echo whole {task_id}'"
    )
    done = run_ppipe("--fork", "2", "--max-restarts", "1", script, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [b"HALF", b"whole 0", b"whole 1"]


def test_keep_order_spools_nothing_once_stdout_has_gone(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    # shard 1 starts writing once head has long gone
    script = "sh -c 'if [ {task_id} = 0 ]; then echo a; exec sleep 3; else sleep 1; exec yes; fi'"
    done = subprocess.run(
        f'{PPIPE} --fork 2 --keep-order --report {report} "{script}" | head -1',
        shell=True,
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    assert done.stdout == b"a\n"
    assert report_of(report)["shards"][1]["bytes_out"] < 64 << 20  # not gigabytes spooled for nobody


def test_a_full_disk_on_stdout_is_an_error() -> None:
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [PPIPE, "--fork", "2", "seq 100000"], stdout=full, stderr=subprocess.PIPE, env=ENV, timeout=60
        )
    assert done.returncode == 1
    assert b"No space left on device" in done.stderr


@pytest.mark.parametrize("moment", ["supervisor starting", "shards starting"])
def test_ctrl_c_while_starting_is_clean(moment: str) -> None:
    process = subprocess.Popen(
        [PPIPE, "--fork", "3", "sleep 30"],
        env=ENV,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    generation = 1 if moment == "supervisor starting" else 2
    # Polled fast: the moment is the instant the first process of that generation exists.
    wait_until(lambda: descendants(process.pid, generation), f"no {moment}", timeout=30, interval=0.001)
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C does: ppipe, supervisor, shards alike
    _, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGINT
    assert b"Traceback" not in err and b"Fatal Python error" not in err and b"supervisor" not in err


def test_too_many_shards_for_ulimit_is_refused_up_front() -> None:
    done = subprocess.run(
        f"ulimit -n 64; {PPIPE} --fork 20 cat </dev/null", shell=True, capture_output=True, env=ENV, timeout=60
    )
    assert done.returncode == 1  # a limit of the machine, as for a plain run: not a usage error
    assert b"ulimit -n" in done.stderr and b"Traceback" not in done.stderr


def test_no_restarts_once_nobody_reads_the_output(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    loop = python_stage("import itertools\nfor i in itertools.count(): print(i)")
    subprocess.run(
        f"{PPIPE} --fork 2 --max-restarts 3 --report {report} {shlex.quote(loop)} | head -1",
        shell=True,
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    assert [len(s["attempts"]) for s in report_of(report)["shards"]] == [1, 1]


def test_input_is_not_split_when_the_first_stage_reads_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "three").write_text("1\n2\n3\n")
    report = tmp_path / "r.json"
    done = run_ppipe("--fork", "2", "--report", str(report), "wc -l < three", input=b"x\n" * 1000, cwd=str(tmp_path))
    assert done.stdout.split() == [b"3", b"3"]
    assert [s["bytes_in"] for s in report_of(report)["shards"]] == [None, None]

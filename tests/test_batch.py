"""Batch runs: --jobs, --each, --halt, --shard-timeout, --retry-delay, --joblog and --resume, records.

Real forks and real processes throughout; the concurrency cap is read from
timestamps the shards themselves write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppipe
from ppipe.results import Verdict
from ppipe.shards.joblog import Resume

from helpers import ENV, PPIPE, python_stage, wait_for_lines
from helpers import ppipe as run_ppipe

#: A shard that records when it ran: "task start end" into the file {0}/{task_id}.
SPAN = (
    "import sys, time; t = time.time(); time.sleep(float(sys.argv[2])); "
    "open(sys.argv[1], 'w').write(f'{t} {time.time()}')"
)


def spans(directory: Path, count: int) -> list[tuple[float, float]]:
    return [tuple(map(float, (directory / str(i)).read_text().split())) for i in range(count)]  # type: ignore[misc]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


# ---------------------------------------------------------------- --jobs


def test_jobs_caps_how_many_shards_run_at_once_and_starts_them_in_task_order(tmp_path: Path) -> None:
    stage = f"{python_stage(SPAN)} {tmp_path}/{{task_id}} 0.3"
    done = run_ppipe("--fork", "6", "--jobs", "2", stage)
    assert done.returncode == 0, done.stderr
    intervals = spans(tmp_path, 6)
    assert most_at_once(intervals) == 2
    starts = [start for start, _ in intervals]
    # In task order: a shard starts after every shard two or more before it (two start side by side).
    assert all(starts[j] > starts[i] for j in range(6) for i in range(j - 1))
    assert max(starts) - min(starts) >= 0.5  # three waves of 0.3 s, not one


def test_jobs_zero_means_one_per_usable_cpu(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    count = cpus + 2
    done = run_ppipe("--fork", str(count), "-j", "0", f"{python_stage(SPAN)} {tmp_path}/{{task_id}} 0.3")
    assert done.returncode == 0, done.stderr
    assert most_at_once(spans(tmp_path, count)) == cpus


def test_split_input_with_fewer_slots_than_shards_reaches_every_shard_exactly_once() -> None:
    data = b"".join(b"%d\n" % i for i in range(200_000))
    done = run_ppipe("--fork", "8", "-j", "2", "--block", "4k", "--tag", "cat", input=data)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(int(line.split(b"\t")[1]) for line in lines) == list(range(200_000))
    assert {line.split(b"\t")[0] for line in lines} == {b"%d" % i for i in range(8)}


def test_a_restart_is_fed_its_whole_input_when_it_waited_for_a_slot(tmp_path: Path) -> None:
    stage = "sh -c 'cat > in-{task_id}; test -e ran-{task_id} || { touch ran-{task_id}; exit 1; }'"
    data = b"".join(b"line %d\n" % i for i in range(100))
    result = ppipe.run(stage, fork=4, jobs=1, block=16, max_restarts=1, input=data, cwd=str(tmp_path))
    assert result.exit_status == 0
    assert [len(s.attempts) for s in result.shards] == [2] * 4
    kept = b"".join((tmp_path / f"in-{i}").read_bytes() for i in range(4))
    assert sorted(kept.splitlines()) == sorted(data.splitlines())


# ---------------------------------------------------------------- --each


HOSTILE = ["a b", "$(touch pwned)", "a;b", "`id`", "*", "", "-n", "'\"", "{task_id}", "naïve", "x\\ty"]


def test_each_gives_every_item_as_exactly_one_argument(tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_text("".join(item + "\n" for item in HOSTILE))
    show = python_stage("import sys, json; print(json.dumps([int(sys.argv[1]), sys.argv[2:]]))")
    done = run_ppipe("--each", str(items), "-j", "3", "--keep-order", f"{show} {{task_id}} {{item}}", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [[i, [item]] for i, item in enumerate(HOSTILE)]
    assert not (tmp_path / "pwned").exists()


def test_each_reads_a_nul_separated_list_from_stdin() -> None:
    show = python_stage("import sys; print(repr(sys.argv[1]))")
    done = run_ppipe("-0", "--each", "-", "--keep-order", f"{show} {{item}}", input=b"two\nlines\0plain\0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [b"'two\\nlines'", b"'plain'"]


def test_each_with_no_items_runs_nothing_and_succeeds(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    done = run_ppipe("--each", str(tmp_path / "empty"), "echo {item}")
    assert (done.returncode, done.stdout) == (0, b"")


def test_each_refuses_a_list_it_cannot_read_and_fork_beside_it(tmp_path: Path) -> None:
    missing = run_ppipe("--each", str(tmp_path / "nope"), "echo {item}")
    assert missing.returncode == 2
    assert b"--each" in missing.stderr and b"No such file" in missing.stderr
    both = run_ppipe("--each", str(tmp_path / "nope"), "--fork", "2", "echo {item}")
    assert both.returncode == 2 and b"--jobs" in both.stderr


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)))
def test_any_items_arrive_exactly_as_given(items: list[str]) -> None:
    show = python_stage("import sys, json; print(json.dumps(sys.argv[1:]))")
    result = ppipe.run(f"{show} {{item}}", items=items, jobs=4, keep_order=True, stdout=ppipe.CAPTURE)
    assert result.exit_status == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == [[item] for item in items]


def test_a_placeholder_one_edit_away_gets_a_did_you_mean_warning() -> None:
    done = run_ppipe("--fork", "1", "echo {task_idd}")
    assert done.returncode == 0
    assert done.stdout == b"{task_idd}\n"
    assert b"did you mean {task_id}?" in done.stderr


# ---------------------------------------------------------------- --halt


def test_halt_soon_starts_no_more_and_lets_the_running_finish(tmp_path: Path) -> None:
    stage = f"sh -c 'touch {tmp_path}/ran-{{task_id}}; sleep 0.2; exit $(( {{task_id}} == 1 ))'"
    done = run_ppipe("--fork", "6", "-j", "2", "--halt", "soon,fail=1", "--report", str(tmp_path / "r.json"), stage)
    assert done.returncode == 1, done.stderr
    ran = sorted(p.name for p in tmp_path.glob("ran-*"))
    assert ran[:2] == ["ran-0", "ran-1"] and len(ran) <= 3  # shard 2 may have started as shard 0 ended
    verdicts = [s["verdict"] for s in json.loads((tmp_path / "r.json").read_text())["shards"]]
    assert verdicts[1] == "failed"
    assert verdicts[3:] == ["terminated"] * 3
    assert b"--halt soon,fail=1" in done.stderr


def test_halt_now_on_success_exits_zero_and_stops_the_others(tmp_path: Path) -> None:
    stage = "sh -c 'if [ {task_id} = 2 ]; then exit 0; fi; sleep 30'"
    started = time.monotonic()
    done = run_ppipe("--fork", "4", "--halt", "now,success=1", stage, timeout=30)
    assert time.monotonic() - started < 10
    assert done.returncode == 0, done.stderr


def test_halt_on_a_percentage_of_failures() -> None:
    result = ppipe.run("sh -c 'exit {task_id}'", fork=10, jobs=1, halt="now,fail=20%", stdout=ppipe.CAPTURE)
    started = [s for s in result.shards if s.attempts]
    assert len(started) == 3  # shard 0 succeeds; 1 and 2 fail: 2 of 10 is 20%
    assert result.exit_status == 1


def test_halt_refuses_what_it_cannot_read() -> None:
    for spec in ("now", "later,fail=1", "now,fail=0", "soon,fail=101%", "now,win=1"):
        done = run_ppipe("--fork", "2", "--halt", spec, "true")
        assert done.returncode == 2, spec
        assert b"--halt" in done.stderr


# ---------------------------------------------------------------- time limits and retries


def test_shard_timeout_stops_each_attempt_counts_for_restarts_and_exits_124(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_ppipe(
        "--fork", "2", "--shard-timeout", "0.5", "--max-restarts", "1", "--report", str(tmp_path / "r.json"), "sleep 20"
    )
    assert time.monotonic() - started < 8
    assert done.returncode == 124, done.stderr
    shards = json.loads((tmp_path / "r.json").read_text())["shards"]
    assert [len(s["attempts"]) for s in shards] == [2, 2]
    assert {a["exit_status"] for s in shards for a in s["attempts"]} == {124}


def test_retry_delay_waits_and_doubles(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    stage = python_stage(f"import time; open({str(log)!r}, 'a').write(f'{{time.time()}}\\n'); raise SystemExit(1)")
    done = run_ppipe("--fork", "1", "--max-restarts", "2", "--retry-delay", "0.4", stage)
    assert done.returncode == 1
    times = [float(line) for line in log.read_text().split()]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.4
    assert times[2] - times[1] >= 0.8


# ---------------------------------------------------------------- --joblog and --resume


def joblog_lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_joblog_has_a_line_per_attempt(tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_text("ok\nbad\n")
    log = tmp_path / "log"
    stage = "sh -c 'echo {item}; test {item} = ok'"
    done = run_ppipe("--each", str(items), "--max-restarts", "1", "--joblog", str(log), stage)
    assert done.returncode == 1
    header, *attempts = joblog_lines(log)
    assert header == {"ppipe_joblog": 1, "pipeline": stage, "tasks": 2}
    by_task = sorted((a["task_id"], a["attempt"], a["item"], a["status"], a["final"]) for a in attempts)
    assert by_task == [(0, 1, "ok", 0, True), (1, 1, "bad", 1, False), (1, 2, "bad", 1, True)]
    for attempt in attempts:
        assert attempt["host"] and attempt["seconds"] >= 0 and attempt["bytes_out"] == 3 + (attempt["item"] == "bad")


def test_resume_skips_finished_shards_and_resume_failed_reruns_the_failed(tmp_path: Path) -> None:
    log, counter = tmp_path / "log", tmp_path / "count"
    stage = f"sh -c 'echo {{task_id}} >> {counter}; exit $(( {{task_id}} % 2 ))'"
    first = run_ppipe("--fork", "4", "--joblog", str(log), stage)
    assert first.returncode == 1
    assert sorted(counter.read_text().split()) == ["0", "1", "2", "3"]
    counter.unlink()
    again = run_ppipe("--fork", "4", "--joblog", str(log), "--resume", stage)
    assert again.returncode == 0, again.stderr  # nothing ran, nothing failed now
    assert not counter.exists()
    failed = run_ppipe("--fork", "4", "--joblog", str(log), "--resume-failed", stage)
    assert failed.returncode == 1
    assert sorted(counter.read_text().split()) == ["1", "3"]
    assert len(joblog_lines(log)) == 1 + 4 + 2


def test_resume_failed_also_runs_the_shards_that_never_ran(tmp_path: Path) -> None:
    log, counter = tmp_path / "log", tmp_path / "count"
    stage = f"sh -c 'echo {{task_id}} >> {counter}; exit $(( {{task_id}} == 1 ))'"
    halted = run_ppipe("--fork", "4", "-j", "1", "--halt", "soon,fail=1", "--joblog", str(log), stage)
    assert halted.returncode == 1
    assert counter.read_text().split() == ["0", "1"]  # 2 and 3 never ran
    counter.unlink()
    again = run_ppipe("--fork", "4", "-j", "1", "--joblog", str(log), "--resume-failed", stage)
    assert again.returncode == 1
    assert counter.read_text().split() == ["1", "2", "3"]


def test_resume_refuses_a_log_of_another_pipeline_or_another_count(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert run_ppipe("--fork", "2", "--joblog", str(log), "true").returncode == 0
    other = run_ppipe("--fork", "2", "--joblog", str(log), "--resume", "false")
    assert other.returncode == 2 and b"another pipeline" in other.stderr
    count = run_ppipe("--fork", "3", "--joblog", str(log), "--resume", "true")
    assert count.returncode == 2 and b"2 shards, not 3" in count.stderr


def test_joblog_lines_are_whole_after_ppipe_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    process = subprocess.Popen(
        [PPIPE, "--fork", "200", "-j", "4", "--joblog", str(log), "sleep 0.01"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    wait_for_lines(log, 20)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    text = log.read_text()
    lines = [json.loads(line) for line in text.split("\n")[:-1]]  # every whole line parses
    assert len(lines) >= 20
    assert all(set(line) >= {"task_id", "attempt", "status", "final"} for line in lines[1:])
    resumed = run_ppipe("--fork", "200", "-j", "4", "--joblog", str(log), "--resume", "sleep 0.01", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    finished = {line["task_id"] for line in joblog_lines(log)[1:] if line["final"]}
    assert finished == set(range(200))


def test_the_api_resumes_too(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    assert ppipe.run("true", fork=3, joblog=log).exit_status == 0
    result = ppipe.run("true", fork=3, joblog=log, resume=Resume.ALL)
    assert [s.verdict for s in result.shards] == [Verdict.SKIPPED] * 3


# ---------------------------------------------------------------- records


def test_header_starts_every_shards_input() -> None:
    data = b"name,score\n" + b"".join(b"n%d,%d\n" % (i, i) for i in range(6))
    done = run_ppipe("--fork", "3", "--block", "1", "--header", "1", "--keep-order", "--tag", "head -1", input=data)
    assert done.stdout.splitlines() == [b"%d\tname,score" % i for i in range(3)]


@pytest.mark.parametrize(("options", "end"), [(["-0"], b"\0"), (["--recend", ";"], b";"), (["--recend", "\\0"], b"\0")])
def test_records_end_where_asked(options: list[str], end: bytes) -> None:
    data = b"".join(b"rec%d" % i + end for i in range(10))
    # Each shard shows its input's records one a line: a record cut in two would show as two pieces.
    show = python_stage(f"import sys; d = sys.stdin.buffer.read(); print(d.split({end!r})[:-1] if d else [])")
    done = run_ppipe("--fork", "3", "--block", "1", *options, "--keep-order", show, input=data)
    assert done.returncode == 0, done.stderr
    records = [record for line in done.stdout.splitlines() for record in eval(line)]
    assert sorted(records) == sorted(b"rec%d" % i for i in range(10))


def test_shard_options_without_a_sharded_run_are_refused() -> None:
    for option in (["--jobs", "2"], ["--halt", "now,fail=1"], ["--joblog", "x"], ["-0"], ["--header", "1"]):
        done = run_ppipe(*option, "true")
        assert done.returncode == 2, option
        assert b"needs --fork N or --each FILE" in done.stderr


def test_resume_needs_a_joblog() -> None:
    done = run_ppipe("--fork", "2", "--resume", "true")
    assert done.returncode == 2 and b"--joblog" in done.stderr


# ---------------------------------------------------------------- progress


def test_progress_json_reports_the_tally_at_each_interval_and_at_the_end(tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_text("".join(f"{i}\n" for i in range(12)))
    done = run_ppipe("--each", str(items), "-j", "3", "--progress", "json", "--progress-interval", "0.2", "sleep 0.15")
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stderr.splitlines()]
    assert len(reports) >= 3
    final = reports[-1]
    assert final["final"] is True
    assert (final["shards"], final["done"], final["running"], final["waiting"]) == (12, 12, 0, 0)
    assert all(r["running"] + r["restarting"] <= 3 for r in reports)
    under_way = [r for r in reports[:-1] if r["done"]]
    assert under_way and all(r["eta"] is not None for r in under_way)


def test_progress_plain_shows_how_much_of_a_file_was_dealt(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"x" * 49 + b"\n" + b"y" * 49 + b"\n")  # two records, one for each shard
    progress = ["--progress", "plain", "--progress-interval", "0.2"]
    with data.open("rb") as stdin:
        done = subprocess.run(
            [PPIPE, "--fork", "2", "--block", "1", *progress, "sh -c 'cat; sleep 0.5'"],
            stdin=stdin,
            capture_output=True,
            env=ENV,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert b"100% dealt" in done.stderr
    assert b"2 running" in done.stderr


def test_the_view_shows_the_shards_under_way_first_when_not_all_fit() -> None:
    import io

    from rich.console import Console

    from ppipe.cli.display import LiveView
    from ppipe.snapshots import RunSnapshot, ShardSnapshot, ShardState

    def shard(task_id: int, state: ShardState) -> ShardSnapshot:
        return ShardSnapshot(task_id, state, None, 1, None, 0, 1.0, None)

    states = [ShardState.DONE] * 30 + [ShardState.RUNNING] * 2 + [ShardState.WAITING] * 30
    snapshot = RunSnapshot(5.0, tuple(shard(i, s) for i, s in enumerate(states)), sharded=True, slots=2)
    console = Console(width=100, height=12, file=io.StringIO(), color_system=None)
    view = LiveView(io.StringIO(), console=console)
    with console.capture() as capture:
        console.print(view.frame(snapshot))
    text = capture.get()
    assert len(text.splitlines()) <= 11  # a row of the terminal stays for the output above
    assert " 30 " in text and " 31 " in text  # the running shards
    assert "done" not in text.split("\n")[1:-2]  # no finished shard has a row: the tally counts them
    assert "… 60 more shards, counted below" in text and "30 done" in text and "30 waiting" in text


def test_no_shard_starts_once_nobody_reads_the_output(tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_text("".join(f"{i}\n" for i in range(300)))
    started = time.monotonic()
    done = subprocess.run(
        f"{PPIPE} --each {items} -j 2 --report {tmp_path}/r.json 'echo {{item}}' | head -2",
        shell=True,
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    assert len(done.stdout.splitlines()) == 2
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit_status"] == 0
    assert sum(s["verdict"] == "terminated" for s in report["shards"]) >= 250
    assert time.monotonic() - started < 20


def test_a_waiting_shard_whose_input_cannot_be_kept_fails_and_says_why(small_tmpdir: Path) -> None:
    done = subprocess.run(
        f"seq 1 2000000 | {PPIPE} --fork 4 -j 1 --block 64k 'wc -l'",
        shell=True,
        capture_output=True,
        env={**ENV, "TMPDIR": str(small_tmpdir)},
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert b"cannot keep its input while it waits for a slot: No space left on device" in done.stderr
    counted = sum(int(n) for n in done.stdout.split())
    assert counted < 2000000  # never passes: what a failed shard missed is not counted as read

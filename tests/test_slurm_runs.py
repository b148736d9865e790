"""ppipe on a real Slurm: array tasks of every shape, srun steps, a file shared out, and ``--on slurm``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

import ppipe
from slurm_cluster import SlurmCluster

from helpers import PPIPE, killed_at_end, wait_for_argument, wait_until

# One cluster a session: every module using `slurm` goes to the same xdist worker (see slurm_cluster.py).
pytestmark = pytest.mark.xdist_group("slurm")


def outputs(directory: Path, pattern: str = "*.out") -> list[str]:
    return [path.read_text() for path in sorted(directory.glob(pattern))]


def submit_ppipe(slurm: SlurmCluster, tmp_path: Path, *sbatch: str, ppipe: str) -> list[tuple[str, str]]:
    """Submits ``ppipe`` (a shell command line) as the job's script; the tasks' states and exit codes."""
    job = slurm.sbatch(*sbatch, f"--output={tmp_path}/task-%a.out", "--wrap", ppipe, cwd=tmp_path)
    return [(record.state, record.exit_code) for record in slurm.wait(job, timeout=120)]


def test_a_stepped_array_runs_every_share_once(slurm: SlurmCluster, tmp_path: Path) -> None:
    ends = submit_ppipe(slurm, tmp_path, "--array=0-6:2", ppipe=f"{PPIPE} 'echo {{task_id}}/{{tasks}}'")
    assert ends == [("COMPLETED", "0:0")] * 4
    assert sorted(outputs(tmp_path)) == ["0/4\n", "1/4\n", "2/4\n", "3/4\n"]


def test_a_listed_array_is_refused_with_the_options_to_use(slurm: SlurmCluster, tmp_path: Path) -> None:
    ends = submit_ppipe(slurm, tmp_path, "--array=1,3,5", ppipe=f"{PPIPE} 'echo {{task_id}}'")
    assert ends == [("FAILED", "2:0")] * 3
    assert all("--task-id I --tasks N" in text for text in outputs(tmp_path))


def test_srun_steps_are_tasks_and_in_an_array_each_has_its_own_id(slurm: SlurmCluster, tmp_path: Path) -> None:
    command = f"srun {PPIPE} 'echo {{task_id}}/{{tasks}}'"
    assert submit_ppipe(slurm, tmp_path, "--ntasks=2", ppipe=command) == [("COMPLETED", "0:0")]
    assert sorted(outputs(tmp_path)[0].splitlines()) == ["0/2", "1/2"]
    for path in tmp_path.glob("*.out"):
        path.unlink()
    assert submit_ppipe(slurm, tmp_path, "--array=0-1", "--ntasks=2", ppipe=command) == [("COMPLETED", "0:0")] * 2
    assert sorted(line for text in outputs(tmp_path) for line in text.splitlines()) == ["0/4", "1/4", "2/4", "3/4"]


def test_array_tasks_given_one_file_see_every_line_exactly_once(slurm: SlurmCluster, tmp_path: Path) -> None:
    lines = [f"{i} {'x' * (i % 37)}" for i in range(50000)]
    data = tmp_path / "in.txt"
    data.write_text("\n".join(lines) + "\n")
    ends = submit_ppipe(slurm, tmp_path, "--array=0-2", ppipe=f"{PPIPE} --fork 2 --block 64k cat < {data}")
    assert ends == [("COMPLETED", "0:0")] * 3
    got = [line for text in outputs(tmp_path, "task-*.out") for line in text.splitlines()]
    assert sorted(got) == sorted(lines)  # every line once: none lost, none twice
    assert all(0 < len(text) < data.stat().st_size for text in outputs(tmp_path, "task-*.out"))


# ---------------------------------------------------------------- --on slurm


def on_slurm(
    slurm: SlurmCluster, tmp_path: Path, *args: str, stdin: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    with stdin.open("rb") if stdin is not None else open("/dev/null", "rb") as source:
        return subprocess.run(
            [PPIPE, "--on", "slurm", *args], stdin=source, capture_output=True, cwd=tmp_path, env=slurm.env, timeout=180
        )


def test_on_slurm_merges_output_in_order_and_the_reports_into_one(slurm: SlurmCluster, tmp_path: Path) -> None:
    data = tmp_path / "in.txt"
    data.write_text("".join(f"{i}\n" for i in range(3000)))
    report = tmp_path / "r.json"
    result = on_slurm(
        slurm, tmp_path, "--fork", "3", "--keep-order", "--tag", "--report", str(report), "wc -l", stdin=data
    )
    assert result.returncode == 0, result.stderr
    tagged = [line.split(b"\t") for line in result.stdout.splitlines()]
    assert [task for task, _ in tagged] == [b"0", b"1", b"2"]
    assert sum(int(count) for _, count in tagged) == 3000
    assert result.stderr == b""  # silent when all went well
    merged = json.loads(report.read_text())
    assert merged["schema"] == "ppipe-report/2" and merged["exit_status"] == 0
    shards = merged["shards"]
    assert [(s["task_id"], s["verdict"], s["exit_status"]) for s in shards] == [(i, "ok", 0) for i in range(3)]
    assert all(s["host"] and s["job_id"] for s in shards)
    assert sum(s["bytes_in"] for s in shards) == data.stat().st_size
    [jobs] = tmp_path.glob("ppipe-runs/*/jobs")  # the array's id, for whoever must scancel after a kill -9
    [array] = jobs.read_text().split()
    assert len(slurm.show_job(int(array))) == 3


def test_the_library_runs_shards_on_slurm_and_gets_one_run_result(slurm: SlurmCluster, tmp_path: Path) -> None:
    directory = tmp_path / "run"
    result = ppipe.run(
        "sh -c 'echo {task_id}; exit {task_id}'",
        fork=3,
        on="slurm",
        keep_order=True,
        env=slurm.env,
        run_directory=str(directory),
        stdout=ppipe.CAPTURE,
    )
    assert result.sharded and result.run_directory == str(directory)
    assert result.stdout == b"0\n1\n2\n"  # captured, in task order, as a local run's
    assert [(s.task_id, s.verdict.value, s.exit_status) for s in result.shards] == [
        (0, "ok", 0),
        (1, "failed", 1),
        (2, "failed", 2),
    ]
    assert result.exit_status == 1 and not result.ok  # the lowest failed task's, as a local run
    assert [s.stage.argv[0] for s in result.stages] == ["sh"] * 3  # each task's stages, as a local run's
    assert (directory / "jobs").is_file()


def test_a_stream_reads_the_array_s_merged_output(slurm: SlurmCluster, tmp_path: Path) -> None:
    """``ppipe.stream`` with ``on="slurm"``: the tasks' output as the local merge gives it, lines in task order."""
    with ppipe.stream(
        "echo {task_id}", fork=3, on="slurm", keep_order=True, env=slurm.env, run_directory=str(tmp_path / "run")
    ) as run:
        assert list(run) == [b"0\n", b"1\n", b"2\n"]
    assert run.result.ok and run.result.sharded
    assert [s.verdict.value for s in run.result.shards] == ["ok"] * 3


def test_the_library_refuses_what_no_array_can_run(tmp_path: Path) -> None:
    with pytest.raises(ppipe.PpipeError, match="give fork=N"):
        ppipe.run("true", on="slurm")
    with pytest.raises(ppipe.PpipeError, match="not 'k8s'"):
        ppipe.run("true", fork=2, on="k8s")
    with pytest.raises(ppipe.PpipeError, match="< FILE"):
        ppipe.run("cat", fork=2, on="slurm", input=b"x\n")


def test_on_slurm_exits_with_the_lowest_failed_task_s_status_and_restarts_by_resubmitting(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    script = tmp_path / "flaky.sh"
    script.write_text(f"#!/bin/sh\n[ -e {tmp_path}/again-$1 ] && exit 0\ntouch {tmp_path}/again-$1\nexit $(($1 + 3))\n")
    script.chmod(0o755)
    joblog = tmp_path / "jobs.log"
    failing = on_slurm(slurm, tmp_path, "--fork", "3", f"{script} {{task_id}}")
    assert failing.returncode == 3  # tasks 0, 1, 2 failed with 3, 4, 5: the lowest task's
    assert b"task 0: exit status 3" in failing.stderr
    for marker in tmp_path.glob("again-*"):
        marker.unlink()
    restarted = on_slurm(
        slurm, tmp_path, "--fork", "2", "--max-restarts", "1", "--joblog", str(joblog), f"{script} {{task_id}}"
    )
    assert restarted.returncode == 0, restarted.stderr
    lines = [json.loads(line) for line in joblog.read_text().splitlines()[1:]]
    assert sorted((line["task_id"], line["attempt"], line["status"], line["final"]) for line in lines) == [
        (0, 1, 3, False),
        (0, 2, 0, True),
        (1, 1, 4, False),
        (1, 2, 0, True),
    ]


def test_resume_failed_resubmits_only_the_failed_tasks(slurm: SlurmCluster, tmp_path: Path) -> None:
    joblog = tmp_path / "jobs.log"
    pipeline = f"sh -c 'echo run >> {tmp_path}/ran-{{task_id}}; [ -e {tmp_path}/fixed ] || [ {{task_id}} != 1 ]'"
    first = on_slurm(slurm, tmp_path, "--fork", "3", "--joblog", str(joblog), pipeline)
    assert first.returncode == 1
    (tmp_path / "fixed").touch()
    second = on_slurm(slurm, tmp_path, "--fork", "3", "--joblog", str(joblog), "--resume-failed", pipeline)
    assert second.returncode == 0, second.stderr
    runs = {i: (tmp_path / f"ran-{i}").read_text().count("run") for i in range(3)}
    assert runs == {0: 1, 1: 2, 2: 1}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_cancels_the_array_and_ends_by_it(
    slurm: SlurmCluster, tmp_path: Path, sig: signal.Signals
) -> None:
    report = tmp_path / "r.json"
    with open("/dev/null", "rb") as devnull:
        process = subprocess.Popen(
            [PPIPE, "--on", "slurm", "--fork", "2", "--report", str(report), "sleep 120"],
            stdin=devnull,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env=slurm.env,
        )

        def both_running() -> bool:
            queued = slurm.run("squeue", "-h", "-o", "%T %j", check=False).stdout.split("\n")
            return sum(1 for line in queued if line.startswith("RUNNING ppipe")) == 2

        wait_until(both_running, "both tasks running on Slurm", timeout=60, interval=0.3)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode in (-sig, 128 + sig), stderr
    assert b"cancelled (scancel)" in stderr
    assert slurm.run("squeue", "-h", "-n", "ppipe", "-o", "%i %T").stdout.strip() == ""
    merged = json.loads(report.read_text())
    assert merged["interrupted_by"] == sig.name and merged["exit_status"] == 128 + sig
    assert {s["verdict"] for s in merged["shards"]} == {"terminated"}


def test_a_pipe_cannot_be_sent_to_the_cluster(slurm: SlurmCluster, tmp_path: Path) -> None:
    result = subprocess.run(
        [PPIPE, "--on", "slurm", "--fork", "2", "wc -l"],
        input=b"1\n",
        capture_output=True,
        cwd=tmp_path,
        env=slurm.env,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, b"")
    assert b"stdin is a pipe" in result.stderr
    assert not (tmp_path / "ppipe-runs").exists()  # nothing was submitted


def test_sbatch_s_variables_and_sbatch_arguments_reach_the_submission(slurm: SlurmCluster, tmp_path: Path) -> None:
    env = {**slurm.env, "SBATCH_TIMELIMIT": "7", "SBATCH_JOB_NAME": "scoring"}
    with open("/dev/null", "rb") as devnull:
        result = subprocess.run(
            [PPIPE, "--on", "slurm", "--fork", "2", "--sbatch=--comment=from-ppipe", "--sbatch", "--nice=5", "true"],
            stdin=devnull,
            capture_output=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    [script] = tmp_path.glob("ppipe-runs/*/task.sh")
    job = next(script.parent.glob("*_0.out")).name.split("_")[0]
    records = slurm.show_job(int(job))
    assert {r.fields["TimeLimit"] for r in records} == {"00:07:00"}
    assert {r.fields["JobName"] for r in records} == {"scoring"}
    assert {r.fields["Comment"].strip() for r in records} == {"from-ppipe"}
    assert {r.fields["Nice"] for r in records} == {"5"}


def test_a_submission_slurm_refuses_is_said_and_fails(slurm: SlurmCluster, tmp_path: Path) -> None:
    with open("/dev/null", "rb") as devnull:
        result = subprocess.run(
            [PPIPE, "--on", "slurm", "--fork", "2", "--sbatch=--partition=nowhere", "true"],
            stdin=devnull,
            capture_output=True,
            cwd=tmp_path,
            env=slurm.env,
            timeout=120,
        )
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.startswith(b"ppipe: sbatch refused the job: ")
    assert b"Traceback" not in result.stderr
    assert b"partition" in result.stderr.lower()  # Slurm's own words for what it refused


def test_a_consumer_that_leaves_early_cancels_the_work_left(slurm: SlurmCluster, tmp_path: Path) -> None:
    """``| head -1``: nobody wants the rest, so the tasks still running are cancelled, as a broken pipe ends them."""
    report = tmp_path / "r.json"
    forever = "sh -c 'while :; do seq 1000; sleep 0.2; done'"  # ends only when cancelled
    command = f'{PPIPE} --on slurm --fork 2 --report {report} "{forever}" < /dev/null'
    result = subprocess.run(
        ["bash", "-c", command + " | head -1; echo ${PIPESTATUS[0]}"],
        capture_output=True,
        cwd=tmp_path,
        env=slurm.env,
        timeout=150,
    )
    assert result.stdout == b"1\n0\n", result.stderr
    assert slurm.run("squeue", "-h", "-n", "ppipe", "-o", "%i %T").stdout.strip() == ""
    assert {s["verdict"] for s in json.loads(report.read_text())["shards"]} == {"terminated"}


def test_bad_syntax_is_refused_before_anything_is_submitted(slurm: SlurmCluster, tmp_path: Path) -> None:
    result = on_slurm(slurm, tmp_path, "--fork", "2", "echo 'unclosed")
    assert (result.returncode, result.stdout) == (2, b"")
    assert b"unclosed single quote" in result.stderr
    assert not (tmp_path / "ppipe-runs").exists()


def test_the_view_ends_with_every_task_s_state(slurm: SlurmCluster, tmp_path: Path) -> None:
    result = on_slurm(slurm, tmp_path, "--fork", "2", "--display", "always", "sh -c 'exit {task_id}'")
    assert result.returncode == 1
    last = result.stderr.decode()
    assert "2 shards: 1 done · 1 failed" in last
    assert "task 1: exit status 1" in last


def test_fail_fast_cancels_the_rest_and_says_which_were_stopped(slurm: SlurmCluster, tmp_path: Path) -> None:
    pipeline = "sh -c 'case {task_id} in 0) exit 0;; 1) sleep 1; exit 1;; *) exec sleep 100;; esac'"
    result = on_slurm(slurm, tmp_path, "--fork", "3", "--fail-fast", pipeline)
    assert result.returncode == 1, result.stderr
    assert b"ppipe: task 1 failed; cancelling the others (--fail-fast)" in result.stderr
    assert b"3 tasks: 1 ok, 1 failed (task 1: exit status 1), 1 terminated" in result.stderr
    assert slurm.run("squeue", "-h", "-n", "ppipe", "-o", "%i %T").stdout.strip() == ""


def test_a_run_that_times_out_restarts_nothing_and_logs_each_task_s_end(slurm: SlurmCluster, tmp_path: Path) -> None:
    joblog = tmp_path / "jobs.log"
    result = on_slurm(
        slurm, tmp_path, "--fork", "2", "--timeout", "3", "--max-restarts", "2", "--joblog", str(joblog), "sleep 100"
    )
    assert result.returncode == 124, result.stderr
    lines = [json.loads(line) for line in joblog.read_text().splitlines()[1:]]
    # ppipe stopped them: not final, so --resume runs them again (as on local slots: test_shard_backends.py)
    assert sorted((line["task_id"], line["attempt"], line["final"]) for line in lines) == [(0, 1, False), (1, 1, False)]
    assert slurm.run("squeue", "-h", "-n", "ppipe", "-o", "%i %T").stdout.strip() == ""


def test_jobs_caps_how_many_tasks_slurm_runs_at_once(slurm: SlurmCluster, tmp_path: Path) -> None:
    """``--jobs 1``: each task finds no other running (a marker file per running task), and Slurm says the cap."""
    mark = f"{tmp_path}/running-{{task_id}}"
    pipeline = f"sh -c 'touch {mark}; ls {tmp_path} | grep -c running-; sleep 0.5; rm {mark}'"
    result = on_slurm(slurm, tmp_path, "--fork", "3", "--jobs", "1", pipeline)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"1", b"1", b"1"]
    [jobs] = tmp_path.glob("ppipe-runs/*/jobs")
    records = slurm.show_job(int(jobs.read_text().split()[0]))
    assert {r.fields.get("ArrayTaskThrottle", "").strip() for r in records} == {"1"}


def test_a_task_that_hangs_past_its_shard_timeout_is_cancelled(slurm: SlurmCluster, tmp_path: Path) -> None:
    """A task's ppipe stops its own stages at --shard-timeout; one that cannot (a hung node: here, stopped by
    SIGSTOP) is cancelled by ppipe once --kill-after and the report's wait have passed, and the run ends."""
    command = [PPIPE, "--on", "slurm", "--fork", "1", "--shard-timeout", "3", "--kill-after", "1", "sleep 101.25"]
    run = subprocess.Popen(command, cwd=tmp_path, env=slurm.env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with killed_at_end(run):
        # the task's ppipe, which holds the pipeline as one argument, as ppipe on the command line does
        [task] = set(wait_for_argument("sleep 101.25", count=2, timeout=60)) - {run.pid}
        os.kill(task, signal.SIGSTOP)
        _, stderr = run.communicate(timeout=120)
    assert run.returncode != 0, stderr
    assert b"1 shard: 0 ok" in stderr or b"failed" in stderr or b"terminated" in stderr, stderr
    assert slurm.run("squeue", "-h", "-n", "ppipe", "-o", "%i %T").stdout.strip() == ""

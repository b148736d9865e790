"""The Slurm fixture itself: jobs really run, and their states and exit codes are read back as Slurm reports them.

The later Slurm tests trust ``slurm.wait``; these make sure it reads a success, a failure and an array's
every task, before anything of ppipe's is put on top.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slurm_cluster import SlurmCluster, parse_show_job

# One cluster a session: every module using `slurm` goes to the same xdist worker (see slurm_cluster.py).
pytestmark = pytest.mark.xdist_group("slurm")


def test_a_job_writes_its_output_and_completes(slurm: SlurmCluster, tmp_path: Path) -> None:
    job = slurm.sbatch(f"--output={tmp_path}/out-%j", "--wrap", "echo hi")
    [record] = slurm.wait(job)
    assert (record.job_id, record.state, record.exit_code) == (job, "COMPLETED", "0:0")
    assert (tmp_path / f"out-{job}").read_text() == "hi\n"


def test_a_failing_job_ends_failed_with_its_status(slurm: SlurmCluster, tmp_path: Path) -> None:
    job = slurm.sbatch(f"--output={tmp_path}/out-%j", "--wrap", "exit 3")
    [record] = slurm.wait(job)
    assert (record.state, record.exit_code) == ("FAILED", "3:0")


def test_every_task_of_an_array_runs_and_at_once(slurm: SlurmCluster, tmp_path: Path) -> None:
    """Four tasks each wait, up to 20 s, for all four to have started: they only finish if they ran together."""
    script = f"touch {tmp_path}/started-$SLURM_ARRAY_TASK_ID; for i in $(seq 200); do"
    script += f' [ "$(ls {tmp_path} | grep -c started-)" = 4 ] && exit 0; sleep 0.1; done; exit 1'
    job = slurm.sbatch("--array=0-3", f"--output={tmp_path}/task-%a.out", "--wrap", script)
    records = slurm.wait(job)
    assert [r.array_task_id for r in records] == [0, 1, 2, 3]
    assert [(r.state, r.exit_code) for r in records] == [("COMPLETED", "0:0")] * 4
    assert {r.fields["ArrayJobId"] for r in records} == {str(job)}
    assert sorted(p.name for p in tmp_path.glob("task-*.out")) == [f"task-{i}.out" for i in range(4)]


def test_the_client_environment_names_the_cluster(slurm: SlurmCluster) -> None:
    assert slurm.env["SLURM_CONF"] == str(slurm.conf)
    assert slurm.run("sinfo", "-h", "-o", "%P %a").stdout.split() == ["debug*", "up"]


def test_show_job_lines_with_spaces_in_a_value_are_read_whole() -> None:
    line = "JobId=7 ArrayJobId=6 ArrayTaskId=1 JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 "
    line += "Command=(null) WorkDir=/tmp/a dir/b StdOut=/tmp/x TRES=cpu=1,node=1"
    [record] = parse_show_job(line)
    assert (record.job_id, record.array_task_id, record.state, record.exit_code) == (7, 1, "FAILED", "3:0")
    assert record.fields["WorkDir"] == "/tmp/a dir/b"
    assert record.fields["TRES"] == "cpu=1,node=1"

"""``--on slurm`` from a directory whose path holds sbatch's own patterns (``%j``) and a space, on a real Slurm."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from slurm_cluster import SlurmCluster

from helpers import PPIPE

# One cluster a session: every module using `slurm` goes to the same xdist worker (see slurm_cluster.py).
pytestmark = pytest.mark.xdist_group("slurm")


@pytest.mark.parametrize("name", ["run %j here", "100%% done %A_%a"])
def test_a_run_directory_naming_sbatch_patterns_keeps_each_task_s_files(
    slurm: SlurmCluster, tmp_path: Path, name: str
) -> None:
    """sbatch reads --output/--error as patterns: ppipe doubles the directory's % so they land where it looks."""
    where = tmp_path / name
    where.mkdir()
    result = subprocess.run(
        [PPIPE, "--on", "slurm", "--fork", "2", "--keep-order", "--tag", "sh -c 'echo {task_id}; echo e{task_id} >&2'"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        cwd=where,
        env=slurm.env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"0\t0\n1\t1\n"
    assert sorted(result.stderr.decode().splitlines()) == ["0\te0", "1\te1"]
    [run] = (where / "ppipe-runs").iterdir()
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.suffix in (".out", ".err"))
    assert len(written) == 4 and all(run in (tmp_path / p).parents for p in written), written  # nowhere else


def test_a_run_directory_with_a_backslash_is_refused_before_anything_runs(slurm: SlurmCluster, tmp_path: Path) -> None:
    """A backslash turns off all of sbatch's patterns: the tasks would share one file, so ppipe says so instead."""
    where = tmp_path / "back\\slash"
    where.mkdir()
    result = subprocess.run(
        [PPIPE, "--on", "slurm", "--fork", "2", "echo {task_id}"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        cwd=where,
        env=slurm.env,
        timeout=180,
    )
    assert result.stdout == b""
    assert result.returncode == 1, result.stderr
    assert b"ppipe: sbatch cannot be given a path with a backslash (it turns off %A, %a): " in result.stderr
    assert b"internal error" not in result.stderr
    assert not list(where.rglob("*.out"))

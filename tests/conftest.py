"""The suite's fixtures; the helpers every test shares are in ``helpers.py``."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_cluster import SlurmCluster
from slurm_cluster import unavailable as slurm_unavailable

from helpers import tmpfs

# Started as a background job of a non-interactive shell, this process (and so
# every ppipe it starts) would ignore SIGINT, and ppipe rightly keeps ignored
# signals ignored: the signal tests would test nothing. Take the usual
# dispositions back; children then start with the defaults.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(_sig) == signal.SIG_IGN:
        signal.signal(_sig, signal.SIG_DFL)


@pytest.fixture(params=["splice", "stream"])
def both_pump_paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once with the Linux splice fast path forced on and once forced off."""
    monkeypatch.setenv("PPIPE_SPLICE", "1" if request.param == "splice" else "0")
    return str(request.param)


@pytest.fixture
def tmp_cwd(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> os.PathLike[str]:
    """Runs the test inside a fresh temporary directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def small_tmpdir(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs to use as ``TMPDIR``."""
    with tmpfs(tmp_path / "small", "2m") as where:
        yield where


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A real one-node Slurm cluster, one per session; modules using it are marked ``xdist_group("slurm")``."""
    reason = slurm_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster

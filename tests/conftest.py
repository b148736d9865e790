"""The suite's fixtures; the helpers every test shares are in ``helpers.py``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import jsonschema
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

#: The report's JSON Schema, as the package ships it.
REPORT_SCHEMA = json.loads((Path(__file__).parent.parent / "pipes" / "ppipe" / "report.schema.json").read_text())
_REPORT_VALIDATOR = jsonschema.Draft202012Validator(REPORT_SCHEMA)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hostile_reports: the test makes reports of the wrong shape on purpose")


def is_report(value: object) -> bool:
    return isinstance(value, dict) and str(value.get("schema", "")).startswith("ppipe-report/")


def assert_valid_report(report: object, where: str = "a report") -> None:
    """Fails unless ``report`` has the shape ``report.schema.json`` gives (checked by the jsonschema package)."""
    errors = sorted(_REPORT_VALIDATOR.iter_errors(report), key=lambda e: list(e.absolute_path))
    assert not errors, f"{where} does not match report.schema.json: " + "; ".join(
        f"{'.'.join(map(str, e.absolute_path)) or 'the report'}: {e.message[:200]}" for e in errors[:3]
    )


@pytest.fixture(autouse=True)
def _every_report_matches_the_schema(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every run report a test reads (they all go through ``json.loads``: files, stdout, the stderr line) or leaves
    in its ``tmp_path`` is checked against the shipped JSON Schema, unless the test makes bad ones on purpose."""
    if request.node.get_closest_marker("hostile_reports") is not None:
        yield
        return
    read: list[object] = []
    loads = json.loads
    tmp = Path(request.getfixturevalue("tmp_path")) if "tmp_path" in request.fixturenames else None  # torn down after

    def reading(text: str | bytes, *args: object, **kwargs: object) -> object:
        value = loads(text, *args, **kwargs)  # type: ignore[arg-type]
        if is_report(value):
            read.append(value)
        return value

    monkeypatch.setattr(json, "loads", reading)
    yield
    monkeypatch.undo()
    for report in read:
        assert_valid_report(report, "a report the test read")
    for path in tmp.rglob("*.json") if tmp is not None else ():
        with contextlib.suppress(OSError, ValueError):
            if path.is_file() and path.stat().st_size < 1 << 26 and is_report(data := loads(path.read_text())):
                assert_valid_report(data, str(path))


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

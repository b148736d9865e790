"""``ppipe report show`` given what ppipe did not write: shown, or refused with one line and 2; never a bug.

Random bytes, and real reports (written by the real command line, once per
module) with one field changed anyhow: what still has the report's shape is
drawn, both ways, whatever its figures say (times in the far future, a run
that ended before it started); the rest is refused.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppipe.cli import show as show_command
from report_edits import DELETE, NESTED_JSON, mutated, paths

from helpers import ppipe

# The module's reports are made once (``reports``): on one xdist worker, or each worker would make them again.
pytestmark = [pytest.mark.xdist_group("report_show_hostile"), pytest.mark.hostile_reports]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """A plain run with a failed stage, a forked run with a restart, a run that never started."""
    tmp = tmp_path_factory.mktemp("reports")
    runs = {
        "plain": ["seq 3 | sh -c 'cat; exit 3'"],
        "fork": ["--fork", "2", "--max-restarts", "1", "sh -c 'exit {task_id}'"],
        "never": ["no-such-command-here"],
    }
    found = {}
    for name, args in runs.items():
        path = tmp / f"{name}.json"
        ppipe("-q", "--report", str(path), *args)
        found[name] = json.loads(path.read_text())
    return found


def shown(tmp: Path, data: bytes, *options: str) -> tuple[int, str, str]:
    """``ppipe report show`` on a file holding ``data``, in this process: its status, stdout and stderr."""
    path = tmp / "r.json"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = show_command.main([*options, str(path)])  # an exception here is an internal error
    return status, out.getvalue(), err.getvalue()


def assert_shown_or_refused(status: int, out: str, err: str, *options: str) -> None:
    if status == 2:
        assert out == "" and err.count("\n") == 1 and err.startswith("ppipe: "), err
    else:
        assert (status, err) == (0, "")
        assert out.splitlines(), "shown: something was printed"
        if "--svg" in options:
            ElementTree.fromstring(out)  # an image any SVG reader can read: XML, whatever the report held


#: Each way the report is shown: the table, the timeline, an SVG on stdout.
WAYS = ((), ("--timeline",), ("--svg", "-"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200) | st.text(alphabet='{}[]":,0123456789.-eatrufnlsx ', max_size=80).map(str.encode))
def test_random_bytes_are_refused_in_one_line(tmp_path: Path, data: bytes) -> None:
    for options in WAYS:
        status, out, err = shown(tmp_path, data, *options)
        assert status == 2
        assert_shown_or_refused(status, out, err)


GARBAGE = st.one_of(
    st.just(DELETE),
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**18), max_value=10**18),
    st.floats(min_value=-1e18, max_value=1e18),
    st.sampled_from([0, 1e18, -1e18, 1e-9, 253402300800]),  # the far past and future, the year 10000
    st.text(max_size=5),
    st.text(max_size=300),
    NESTED_JSON,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_field_changed_anyhow_is_shown_or_refused_never_a_bug(
    reports: dict[str, dict[str, Any]], tmp_path: Path, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(reports)))
    at = data.draw(st.sampled_from(list(paths(reports[name]))))
    value = data.draw(GARBAGE)
    if value is DELETE and isinstance(at[-1], int):
        value = None
    text = json.dumps(mutated(reports[name], at, value)).encode()  # NaN and Infinity as Python writes them
    for options in WAYS:
        assert_shown_or_refused(*shown(tmp_path, text, *options), *options)


@pytest.mark.parametrize("field", ["started_at", "ended_at"])
@pytest.mark.parametrize("when", [1e18, -1e18, 0])
def test_times_no_calendar_holds_are_shown(
    reports: dict[str, dict[str, Any]], tmp_path: Path, field: str, when: float
) -> None:
    """A start in the year 31 billion (the schema allows up to 1e18 seconds) is shown as a number, not a crash."""
    for name in ("plain", "fork"):
        text = json.dumps({**reports[name], field: when}).encode()
        for options in ((), ("--timeline",)):
            status, out, err = shown(tmp_path, text, *options)
            assert (status, err) == (0, "")
            assert out.splitlines()[0]


ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b1m"


def test_escape_sequences_in_a_report_never_reach_the_terminal(
    reports: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """A report's text (its pipeline, a stage's argv and stderr, its host, a shard's error) is shown ``cat -v``'s
    way: an escape sequence in it would retitle, clear or recolour the terminal of whoever looks at it."""
    plain = copy.deepcopy(reports["plain"])
    plain["pipeline"] += ESCAPES
    plain["host"] = "node" + ESCAPES
    plain["stages"][1]["argv"].append(ESCAPES)
    plain["stages"][1]["command"] += ESCAPES
    plain["stages"][1]["stderr_tail"] = ["bad" + ESCAPES]
    fork = copy.deepcopy(reports["fork"])
    fork["shards"][1]["pipeline"] += ESCAPES
    fork["shards"][1]["attempts"][0]["host"] = "node" + ESCAPES
    fork["shards"][1]["attempts"][-1]["stages"][0]["stderr_tail"] = ["bad" + ESCAPES]
    for report in (plain, fork):
        for options in ((), ("--timeline",)):
            status, out, err = shown(tmp_path, json.dumps(report).encode(), *options)
            assert (status, err) == (0, "")
            assert not {"\x1b", "\x07", "\x9b"} & set(out), repr(out)
            assert "^[]0;p" in out  # shown, cut where a row's label is cut
    status, out, _ = shown(tmp_path, json.dumps(plain).encode())
    assert "^[]0;pwned^G^[[2JM-^[1m" in out

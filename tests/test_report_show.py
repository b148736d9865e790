"""``ppipe report show FILE``: a saved run printed as the screen its live view ended on, or written as an SVG.

Every report here is written by a real run (``--report``); every picture is
read back from the real command line, at a fixed width (``COLUMNS=100``) and
with no terminal, so with no colour.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
from rich.cells import cell_len

from ppipe.cli import show as show_command

from helpers import ENV, PPIPE, ppipe, tmpfs, write_report
from terminals import in_pty, screen_of

# The module's runs are made once (``saved``): on one xdist worker, or each worker would make them again.
pytestmark = pytest.mark.xdist_group("report_show")

WIDTH = 100
PLAIN = "seq 1000 | sh -c 'cat; echo oops >&2; exit 3' | wc -l"
#: Shard 1 fails each time, saying why, and is run once more; the others pass.
FORKED = "seq {task_num} | sh -c 'cat; if [ {task_id} = 1 ]; then echo bad >&2; exit 4; fi'"
FORK_OPTIONS = ("--fork", "3", "--max-restarts", "1")
#: One item per shard; the item "bad" fails with 5.
EACH = "sh -c 'test \"$1\" != bad || { echo no good >&2; exit 5; }' item {item}"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reports of real runs: a plain run with a failed stage, --fork with a restarted failing shard, --each."""
    tmp = tmp_path_factory.mktemp("saved")
    (tmp / "items").write_text("a\nb\nbad\nd\n")
    return {
        "plain": write_report(tmp, "plain", PLAIN),
        "fork": write_report(tmp, "fork", *FORK_OPTIONS, FORKED),
        "each": write_report(tmp, "each", "--each", str(tmp / "items"), "-j", "2", EACH),
    }


def show(*args: str | Path, columns: int = WIDTH, stdin: bytes | None = None) -> tuple[int, list[str], str]:
    """``ppipe report show ARGS`` with no terminal: its status, its stdout's lines and its stderr."""
    env = {**ENV, "COLUMNS": str(columns)}
    result = ppipe("report", "show", *map(str, args), env=env, input=stdin)
    return result.returncode, result.stdout.decode().splitlines(), result.stderr.decode()


def shown_text(*args: str | Path) -> list[str]:
    status, lines, err = show(*args)
    assert (status, err) == (0, "")
    assert not any("\x1b" in line for line in lines)  # not a terminal: no colour
    assert all(cell_len(line) <= WIDTH for line in lines)
    return [line.rstrip() for line in lines]


# ---------------------------------------------------------------- the run's last screen


def test_a_plain_run_shows_its_stages_figures_tally_and_failure(saved: dict[str, Path]) -> None:
    lines = shown_text(saved["plain"])
    assert lines[0] == PLAIN
    assert lines[1].startswith("exit status 3 · 3 stages: 2 ok, 1 failed · ")
    header = lines[2].split()
    assert header[:4] == ["#", "command", "bytes", "in"]
    rows = {line.split()[1 if line.startswith("✓") else 2]: line for line in lines[3:6]}
    assert rows["1"].startswith("✓") and "seq 1000" in rows["1"] and rows["1"].split()[-3:-1] == ["3893", "1000"]
    assert rows["2"].startswith("✗ 3") and "sh -c 'cat; echo oops >&2; exit 3'" in rows["2"]
    assert rows["3"].split()[-5:-1] == ["3893", "1000", "-", "-"]  # wc -l wrote to ppipe's stdout itself
    panel = "\n".join(lines[6:])
    assert "stage 2 failed: exit status 3" in panel and "oops" in panel


def test_a_forked_run_shows_each_shard_its_tries_and_the_failed_shards_attempts(saved: dict[str, Path]) -> None:
    lines = shown_text(saved["fork"])
    assert lines[0] == FORKED
    assert lines[1].startswith("exit status 4 · 3 shards: 2 ok, 1 failed in ")
    rows = [line.split() for line in lines[3:6]]
    assert [row[:4] for row in rows] == [["✓", "0", "0", "1"], ["✗", "1", "4", "2"], ["✓", "2", "0", "1"]]
    panel = "\n".join(lines[6:])
    assert "shard 1 failed" in panel
    assert "attempt 1: exit status 4" in panel and "attempt 2: exit status 4" in panel
    assert "bad" in panel


def test_an_each_run_shows_a_row_per_item(saved: dict[str, Path]) -> None:
    lines = shown_text(saved["each"])
    assert lines[1].startswith("exit status 5 · 4 shards: 3 ok, 1 failed in ")
    rows = [line.split() for line in lines[3:7]]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("✓", "0", "0"),
        ("✓", "1", "0"),
        ("✗", "2", "5"),
        ("✓", "3", "0"),
    ]
    panel = "\n".join(lines[7:])
    assert "shard 2 failed" in panel and "no good" in panel and "item bad" in panel


@pytest.mark.parametrize("name", ["plain", "fork"])
def test_the_picture_is_the_screen_the_live_run_ended_on(saved: dict[str, Path], tmp_path: Path, name: str) -> None:
    """The same run again, with its live view on a real terminal of the same width: its last screen is what
    ``report show`` prints of its report, under the headline."""
    args = [PLAIN] if name == "plain" else [*FORK_OPTIONS, FORKED]
    report = tmp_path / "live.json"
    env = {**ENV, "TERM": "xterm-256color"}
    status, raw = in_pty([PPIPE, "--report", str(report), *args], env, columns=WIDTH, rows=60)
    assert status == (3 if name == "plain" else 4)
    screen = [line.rstrip() for line in screen_of(raw, WIDTH, 60).display]
    while screen and not screen[-1]:
        screen.pop()
    picture = shown_text(report)[2:]
    assert screen[-len(picture) :] == picture


def test_a_batch_shows_its_tally_and_only_its_failed_shards(tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_text("".join(f"{n}\n" for n in range(40)))
    report = write_report(tmp_path, "batch", "--each", str(items), "-j", "2", "sh -c 'exit $(($1 % 13 == 5))' x {item}")
    lines = shown_text(report)
    assert lines[1].startswith("exit status 1 · ")
    assert lines[2].startswith("40 shards: 37 ok, 3 failed in ")
    assert [line.split()[1] for line in lines[4:7]] == ["5", "18", "31"]


def test_a_run_that_never_started_says_why(tmp_path: Path) -> None:
    report = write_report(tmp_path, "never", "seq 3 | no-such-command-here")
    lines = shown_text(report)
    assert lines[0] == "seq 3 | no-such-command-here"
    assert lines[1].startswith("exit status 127 · never started: stage 2: no-such-command-here: command not found")


def test_a_report_on_stdin_is_shown(saved: dict[str, Path]) -> None:
    status, lines, _ = show("-", stdin=saved["plain"].read_bytes())
    assert status == 0 and lines[0] == PLAIN


def test_a_reader_that_leaves_early_is_no_error(saved: dict[str, Path]) -> None:
    command = f"{PPIPE} report show --timeline {saved['fork']} | head -n 1; echo ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", command], capture_output=True, env=ENV, timeout=60)
    first, status = result.stdout.decode().splitlines()
    assert first.startswith(FORKED[:60]) and status == "0"
    assert result.stderr == b""


def test_a_terminal_gets_colour_and_no_color_takes_it_away(saved: dict[str, Path]) -> None:
    env = {**ENV, "TERM": "xterm-256color"}
    _, coloured = in_pty([PPIPE, "report", "show", str(saved["fork"])], env, columns=WIDTH)
    _, plain = in_pty([PPIPE, "report", "show", str(saved["fork"])], {**env, "NO_COLOR": "1"}, columns=WIDTH)
    assert b"\x1b[31m" in coloured or b"\x1b[1;31m" in coloured  # red for the failed shard
    assert b"\x1b[31m" not in plain and b";31m" not in plain
    assert screen_of(coloured, WIDTH, 24).display == screen_of(plain, WIDTH, 24).display


def test_the_width_is_the_terminals_or_columns(saved: dict[str, Path]) -> None:
    _, narrow, _ = show(saved["fork"], columns=60)
    _, wide, _ = show(saved["fork"], columns=140)
    assert max(cell_len(line) for line in narrow) <= 60 < max(cell_len(line) for line in wide) <= 140
    env = {name: value for name, value in ENV.items() if name not in ("COLUMNS", "LINES")}
    _, raw = in_pty([PPIPE, "report", "show", str(saved["fork"])], {**env, "TERM": "xterm"}, columns=70)
    assert max(len(line.rstrip()) for line in screen_of(raw, 70, 24).display) == 70  # the table fills the width


# ---------------------------------------------------------------- SVG


def svg_text(path: Path | str) -> str:
    """The text an SVG image shows, its non-breaking spaces as spaces."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return "".join(element.text or "" for element in root.iter("{http://www.w3.org/2000/svg}text")).replace("\xa0", " ")


def test_the_table_as_svg(saved: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "plain.svg"
    status, lines, err = show(saved["plain"], "--svg", out)
    assert (status, lines, err) == (0, [], "")
    text = svg_text(out)
    for words in ("exit status 3", "seq 1000", "3893", "stage 2 failed: exit status 3", "oops"):
        assert words in text


def test_the_timeline_as_svg_on_stdout(saved: dict[str, Path], tmp_path: Path) -> None:
    status, lines, _ = show("--timeline", "--svg", "-", saved["fork"])
    assert status == 0
    (tmp_path / "out.svg").write_text("\n".join(lines))
    text = svg_text(tmp_path / "out.svg")
    assert "↺" in text and "✗" in text and "failed, ran again" in text


def test_an_svg_replaces_the_file_whole_and_keeps_its_mode(saved: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "view.svg"
    out.write_text("old")
    out.chmod(0o640)
    assert show(saved["fork"], "--svg", out)[0] == 0
    assert "shard 1 failed" in svg_text(out)
    assert (out.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.svg"]


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("missing/view.svg", "cannot write the SVG to {tmp}/missing/view.svg: no directory {tmp}/missing"),
        ("", "cannot write the SVG to {tmp}: it is a directory"),
    ],
)
def test_an_svg_that_cannot_be_written_is_refused_before_reading(
    saved: dict[str, Path], tmp_path: Path, where: str, said: str
) -> None:
    status, lines, err = show(saved["plain"], "--svg", tmp_path / where if where else tmp_path)
    assert (status, lines) == (2, [])
    assert err == "ppipe: " + said.replace("{tmp}", str(tmp_path)) + "\n"


def test_an_svg_on_a_read_only_disk_is_refused(saved: dict[str, Path], tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "64k", options="ro") as where:
        status, _, err = show(saved["plain"], "--svg", where / "view.svg")
    assert (status, err) == (2, f"ppipe: cannot write the SVG to {where}/view.svg: Read-only file system\n")


def test_an_svg_on_a_full_disk_fails_and_leaves_nothing_half_written(saved: dict[str, Path], tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "64k") as where:
        with contextlib.suppress(OSError), open(where / "filler", "wb") as filler:
            while True:
                filler.write(b"x" * 4096)
                filler.flush()
        status, _, err = show(saved["plain"], "--svg", where / "view.svg")
        left = sorted(p.name for p in where.iterdir())
    assert (status, err) == (1, f"ppipe: cannot write the SVG to {where}/view.svg: No space left on device\n")
    assert left == ["filler"]


# ---------------------------------------------------------------- the command line


def test_the_command_line_of_report_show(saved: dict[str, Path], tmp_path: Path) -> None:
    assert show() == (2, [], "ppipe: ppipe report show takes one report file (see ppipe report show -h)\n")
    assert show(saved["plain"], saved["fork"])[0] == 2
    assert show("--bogus", saved["plain"])[2] == "ppipe: no such option: --bogus (see ppipe report show -h)\n"
    assert show(saved["plain"], "--svg")[2] == "ppipe: --svg needs a value (see ppipe report show -h)\n"
    said = show("--timeline=yes", saved["plain"])
    assert said[0] == 2 and said[2] == "ppipe: --timeline takes no value (see ppipe report show -h)\n"
    status, lines, _ = show("--help")
    assert status == 0 and lines[0] == "Usage: ppipe report show [OPTIONS] REPORT"
    assert any(line.lstrip().startswith("--timeline") for line in lines)
    assert show("--", saved["plain"])[0] == 0
    program = tmp_path / "report"
    program.write_text('#!/bin/sh\necho ran report "$@"\n')
    program.chmod(0o755)
    env = {**ENV, "PATH": f"{tmp_path}:{ENV['PATH']}"}
    assert ppipe("report show a.json", env=env).stdout == b"ran report show a.json\n"  # one word: a pipeline


# ---------------------------------------------------------------- bad reports


def show_in_process(*argv: str) -> tuple[int, str, str]:
    """``ppipe report show ARGV`` in this process: an exception here is what the command calls an internal error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = show_command.main(list(argv))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.hostile_reports
@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "cannot read the report {path}: No such file or directory"),
        (b"", "{path} is not a JSON report (at line 1, column 1: Expecting value)"),
        (b"not json\n", "{path} is not a JSON report (at line 1, column 1: Expecting value)"),
        (b"\xff\xfe{}", "{path} is not a report: it is not UTF-8 text"),
        (b"[1, 2]", "{path} is not a report: it holds a JSON list, not an object"),
        (b'{"a": 1}', "{path} is not a ppipe-report/2 report (its schema is null)"),
        (b'{"schema": "ppipe-report/3"}', "{path} is not a ppipe-report/2 report: it is a ppipe-report/3 report, "
         "from a newer ppipe than this one (0.1.0)"),
        (b'{"schema": "ppipe-report/1"}', "it is a ppipe-report/1 report, from an older ppipe than this one"),
        (b'{"schema": "ppipe-report/2"}', "{path} is not a ppipe-report/2 report: ppipe_version is missing"),
    ],
    ids=["missing", "empty", "text", "binary", "list", "not-ppipe", "newer", "older", "wrong-shape"],
)  # fmt: skip
def test_a_bad_report_is_refused_in_one_line_with_2(tmp_path: Path, content: bytes | None, said: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_bytes(content)
    for args in ([str(path)], ["--timeline", str(path)]):
        status, lines, err = show(*args)
        assert (status, lines) == (2, []), err
        assert err.count("\n") == 1 and err.startswith("ppipe: ") and "Traceback" not in err
        assert said.replace("{path}", str(path)) in err


@pytest.mark.hostile_reports
def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert show(tmp_path) == (2, [], f"ppipe: cannot read the report {tmp_path}: Is a directory\n")


def test_a_good_report_in_process(saved: dict[str, Path]) -> None:
    """The in-process entry the hostile tests use shows what the command line shows."""
    status, out, err = show_in_process(str(saved["fork"]))
    assert (status, err) == (0, "")
    assert out.splitlines()[0].startswith(FORKED[:60])  # cut to the default 80 columns

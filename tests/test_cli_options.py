"""Option values and usage messages: one ``ppipe:`` sentence and exit status 2, on both command-line readers."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppipe.cli.config import MOST, Config, config_from, read_value
from ppipe.cli.entry import _main, _read, _with_typer
from ppipe.errors import UsageError

from helpers import ppipe

NUMERIC = ["--timeout", "--kill-after", "--fork", "--max-restarts", "--task-id", "--tasks"]
CHOICE = ["--display", "--progress"]
HOSTILE = [
    "inf",
    "-inf",
    "nan",
    "NaN",
    "1e999",
    "-1",
    "-0",
    "+1",
    "1X",
    "0x10",
    "1_000",
    " 1",
    "1 ",
    "",
    "٣",
    "1e3",
    "1.5",
    ".5",
    "5.",
    "99999999999999999999999",
    "9" * 5000,
    "0",
    "1",
    "sometimes",
    "NEVER",
]
values = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=12),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def run_in_process(reader: object, argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of ``reader(argv)`` (the entry point's ``_main`` or its typer path)."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = reader(argv)  # type: ignore[operator]
        except SystemExit as end:
            status = end.code
    return int(status or 0), err.getvalue()


def assert_one_sentence_or_accepted(status: int, stderr: str) -> None:
    if status == 0:
        assert stderr == ""
        return
    assert status == 2, stderr
    assert stderr.startswith("ppipe: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and "Error:" not in stderr and "Value error" not in stderr


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(NUMERIC + CHOICE + ["--block"]), values)
def test_any_option_value_is_read_or_refused_in_one_sentence_on_both_paths(option: str, value: str) -> None:
    argv = (
        ["--explain", "--fork", "1", option, value, "true"]
        if option in ("--block", "--max-restarts")
        else ["--explain", option, value, "true"]
    )
    if option == "--task-id":
        argv[1:1] = ["--tasks", str(MOST)]
    fast = run_in_process(_main, argv)
    assert_one_sentence_or_accepted(*fast)
    assert run_in_process(_with_typer, argv) == fast  # typer's reading: the same status, the same words


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["timeout", "kill_after", "fork", "max_restarts", "task_id", "tasks", "display", "progress"]),
    values,
)
def test_read_value_gives_a_value_in_range_or_one_sentence(field: str, text: str) -> None:
    try:
        value = read_value(field, text)
    except UsageError as error:
        assert "\n" not in str(error) and str(error).startswith("--")
        assert len(str(error)) < 200  # a 5000-digit number is not echoed back
        return
    if field in ("timeout", "kill_after"):
        assert value >= 0 and not math.isnan(value)
    elif field in ("display", "progress"):
        assert value in {"auto", "always", "never", "none", "plain"}
    else:
        assert (1 if field == "tasks" else 0) <= value <= MOST


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--fork", "1", "--block", "inf", "true"],
            "ppipe: --block takes a size such as 1M, 64k or 65536, not 'inf'\n",
        ),
        (
            ["--fork", "1", "--block", "nan", "true"],
            "ppipe: --block takes a size such as 1M, 64k or 65536, not 'nan'\n",
        ),
        (["--fork", "1", "--block", "1X", "true"], "ppipe: --block takes a size such as 1M, 64k or 65536, not '1X'\n"),
        (
            ["--fork", "1", "--block", "9" * 400, "true"],
            f"ppipe: --block '{'9' * 30}...' is too large: it takes at most 1G (ppipe holds about two blocks per shard "
            "in memory)\n",
        ),
        (["--timeout", "nan", "true"], "ppipe: --timeout takes a number of seconds such as 30 or 0.5, not 'nan'\n"),
        (["--kill-after", "-1", "true"], "ppipe: --kill-after takes a number of seconds such as 30 or 0.5, not '-1'\n"),
        (["--fork", "99999999999999999999999", "true"], f"ppipe: --fork is too large: it takes at most {MOST}\n"),
        (["--tasks", "0", "true"], "ppipe: --tasks takes a number of tasks, 1 or more, not '0'\n"),
        (["--display", "sometimes", "true"], "ppipe: --display takes auto, always or never, not 'sometimes'\n"),
        (["--progress=fancy", "true"], "ppipe: --progress takes none, plain or json, not 'fancy'\n"),
        (["--xyzzy", "true"], "ppipe: no such option: --xyzzy (see ppipe -h)\n"),
    ],
)
def test_bad_values_through_the_console_script(argv: list[str], message: str, tmp_path: Path) -> None:
    """The fast path takes the first two words of these; ``-qq`` (one flag twice) only typer reads."""
    for line in (argv, ["-qq", *argv]):
        result = ppipe(*line, cwd=str(tmp_path))
        assert (result.returncode, result.stderr.decode(), result.stdout) == (2, message, b"")


def test_numbers_typer_used_to_take_still_work() -> None:
    reading = _read(["--timeout", "1e3", "--kill-after=inf", "--display", "NEVER", "x"])
    assert config_from("x", reading.values) == Config("x", timeout=1000.0, kill_after=math.inf, display="never")
    assert ppipe("--timeout", "inf", "--kill-after", "1e999", "echo ok").stdout == b"ok\n"


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["seq", "1", "3"], 'ppipe "seq 1 3"'),
        (["-q", "seq", "1", "3", "--timeout", "5"], 'ppipe -q --timeout 5 "seq 1 3"'),
        (["grep", "-v", "x"], 'ppipe "grep -v x" (ppipe has no option -v)'),
        (["--", "-grep", "x"], 'ppipe -- "-grep x"'),
        (["echo", "$HOME"], "ppipe 'echo $HOME'"),
    ],
)
def test_a_pipeline_in_several_words_says_to_quote_it(argv: list[str], suggestion: str) -> None:
    result = ppipe(*argv)
    assert result.returncode == 2
    assert result.stderr.decode() == f"ppipe: give the pipeline as one quoted argument, pipes included: {suggestion}\n"


def test_help_still_wins_and_no_arguments_is_help() -> None:
    assert ppipe("seq 3", "-h").returncode == 0
    nothing = ppipe()
    assert nothing.returncode == 2 and b"PIPELINE" in nothing.stderr


def test_help_says_what_timeout_0_means() -> None:
    text = " ".join(ppipe("-h").stdout.decode().split())
    assert "0 or inf: no limit, as for timeout(1)" in text


def test_timeout_0_is_no_limit_as_for_coreutils_timeout() -> None:
    result = ppipe("--timeout", "0", "sleep 0.2 | echo done")
    assert (result.returncode, result.stdout) == (0, b"done\n")


def test_cluster_task_placeholders_do_not_change_how_the_text_parses(tmp_path: Path) -> None:
    """``{task_id}>o.txt`` is the word ``0`` and then ``> o.txt``, not ``0>o.txt`` (a redirection of stdin)."""
    for line in (["--task-id", "1", "--tasks", "2"], ["-qq", "--task-id", "1", "--tasks", "2"]):
        result = ppipe(*line, "echo hi {task_id}>o.txt", cwd=str(tmp_path))
        assert (result.returncode, result.stdout) == (0, b"")
        assert (tmp_path / "o.txt").read_text() == "hi 1\n"

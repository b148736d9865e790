"""When ppipe draws its live view, and when it leaves a shared terminal alone: make -j, CI, TERM=dumb, the
environment's defaults, NO_COLOR. Run in a real pseudo-terminal, as a person at a terminal meets them."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from helpers import ENV, PPIPE
from terminals import in_pty

#: What every frame of the view starts with: a synchronized update.
_FRAME = b"\x1b[?2026h"
_COLOUR = re.compile(rb"\x1b\[[0-9;]*(3[0-7]|38;5;[0-9]+|9[0-7])[0-9;]*m")


def in_terminal(argv: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[int, bytes]:
    """Runs ``argv`` with a 100x30 pty as its stdin, stdout and stderr; its status and everything it wrote."""
    return in_pty(argv, env, columns=100, rows=30, cwd=cwd)


def terminal_env(**changes: str) -> dict[str, str]:
    env = {**ENV, "TERM": "xterm-256color"}
    for name in ("CI", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "NO_COLOR", "PPIPE_DISPLAY", "PPIPE_PROGRESS"):
        env.pop(name, None)
    env.update(changes)
    return env


PIPELINE = "seq 1 20000 | grep 7 | wc -l"


def sevens(n: int) -> int:
    """What ``seq 1 n | grep 7 | wc -l`` prints."""
    return sum("7" in str(i) for i in range(1, n + 1))


def test_a_terminal_of_its_own_gets_the_view() -> None:
    status, raw = in_terminal([PPIPE, PIPELINE], terminal_env())
    assert status == 0
    assert _FRAME in raw


@pytest.mark.parametrize(
    "changes",
    [{"CI": "true"}, {"TERM": "dumb"}, {"PPIPE_DISPLAY": "never"}, {"MAKEFLAGS": " -j4 --jobserver-auth=3,4"}],
    ids=["CI", "TERM=dumb", "PPIPE_DISPLAY=never", "make -j"],
)
def test_a_shared_or_declined_terminal_gets_no_view(changes: dict[str, str]) -> None:
    status, raw = in_terminal([PPIPE, PIPELINE], terminal_env(**changes))
    assert status == 0
    assert b"\x1b[" not in raw, raw[:300]
    assert raw.split() == [str(sevens(20000)).encode()]


def test_ci_set_to_false_is_not_ci() -> None:
    _, raw = in_terminal([PPIPE, PIPELINE], terminal_env(CI="false"))
    assert _FRAME in raw


def test_the_option_wins_over_the_environment() -> None:
    _, raw = in_terminal([PPIPE, "--display", "auto", PIPELINE], terminal_env(PPIPE_DISPLAY="never"))
    assert _FRAME in raw
    _, raw = in_terminal([PPIPE, "--display", "always", PIPELINE], terminal_env(CI="1"))
    assert _FRAME in raw


def test_ppipe_display_always_draws_into_a_file(tmp_path: Path) -> None:
    log = tmp_path / "log"
    status, _ = in_terminal(["sh", "-c", f"{PPIPE} '{PIPELINE}' 2> {log}"], terminal_env(PPIPE_DISPLAY="always"))
    assert status == 0
    assert _FRAME in log.read_bytes()


def test_ppipe_progress_sets_the_progress_default(tmp_path: Path) -> None:
    log = tmp_path / "log"
    pipeline = "sh -c 'seq 3; sleep 0.5' | wc -l"
    status, _ = in_terminal(
        ["sh", "-c", f'{PPIPE} --progress-interval 0.1 "{pipeline}" 2> {log}'], terminal_env(PPIPE_PROGRESS="json")
    )
    assert status == 0
    assert b'"final": true' in log.read_bytes()


@pytest.mark.parametrize("variable", ["PPIPE_DISPLAY", "PPIPE_PROGRESS"])
def test_a_bad_value_in_the_environment_is_refused(variable: str) -> None:
    status, raw = in_terminal([PPIPE, PIPELINE], terminal_env(**{variable: "sometimes"}))
    assert status == 2
    assert f"ppipe: {variable} takes ".encode() in raw and b"'sometimes'" in raw


def test_no_color_draws_the_view_without_colour() -> None:
    failing = "seq 1 20000 | sh -c 'cat >/dev/null; echo oops >&2; exit 3'"
    status, raw = in_terminal([PPIPE, failing], terminal_env(NO_COLOR="1"))
    assert status == 3
    assert _FRAME in raw
    assert not _COLOUR.search(raw), _COLOUR.search(raw)
    status, raw = in_terminal([PPIPE, failing], terminal_env())
    assert _COLOUR.search(raw)  # the same run, coloured: the check above could fail


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_j4_draws_no_view_and_its_recipes_run_whole(tmp_path: Path) -> None:
    """Four recipes at once on one terminal: none draws a view over the others; their output is all there."""
    (tmp_path / "Makefile").write_text(
        "all: a b c d\n"
        "a b c d:\n"
        f"\t@{PPIPE} 'seq 1 200000 | grep 7 | wc -l' > $@.count\n"
        f"\t@{PPIPE} \"sh -c 'echo $@ from make >&2' | cat\"\n"
    )
    status, raw = in_terminal(["make", "-j4"], terminal_env(), cwd=str(tmp_path))
    assert status == 0, raw
    assert b"\x1b[" not in raw, raw[:300]
    assert sorted(raw.decode().split("\r\n")[:-1]) == [f"{t} from make" for t in "abcd"]
    assert all((tmp_path / f"{t}.count").read_text() == f"{sevens(200000)}\n" for t in "abcd")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_ppipe_as_a_makefile_recipe_shell(tmp_path: Path) -> None:
    """``SHELL := ppipe`` with ``.SHELLFLAGS := --`` on a target: each recipe line is one pipeline."""
    (tmp_path / "Makefile").write_text(
        "count.txt: SHELL := ppipe\n"
        "count.txt: .SHELLFLAGS := -q --\n"
        "count.txt:\n"
        "\tseq 1 1000 | grep 7 | wc -l > count.txt\n"
        "fails: SHELL := ppipe\n"
        "fails: .SHELLFLAGS := --\n"
        "fails:\n"
        "\tseq 3 | sh -c 'exit 4' | cat\n"
    )
    env = {**terminal_env(), "PATH": os.path.dirname(PPIPE) + os.pathsep + ENV["PATH"]}
    status, raw = in_terminal(["make", "count.txt"], env, cwd=str(tmp_path))
    assert status == 0, raw
    assert (tmp_path / "count.txt").read_text() == "271\n"
    status, raw = in_terminal(["make", "fails"], env, cwd=str(tmp_path))
    assert status == 2  # make's own status for a failed recipe
    assert b"stage 2 failed: exit status 4" in raw  # the view's failure panel: make's terminal is ppipe's
    assert b"Error 4" in raw  # make saw the stage's own status

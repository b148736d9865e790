"""``--explain``: the ends of the edges as they really are, and the commands a run could not start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ppipe import parse
from ppipe.cli.explain import explain_checked, explain_text
from ppipe.shards.plan import ShardPlan

from helpers import ppipe as run_ppipe


def edges(text: str, env: dict[str, str] | None = None) -> list[str]:
    explained = explain_checked(parse(text, env={}), env)
    listed = explained.text.split("edges:\n")[1].split("\n\n")[0]
    return [line.strip() for line in listed.splitlines()]


# ---------------------------------------------------------------- redirections are the ends


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sort < in.txt", ["file in.txt -> stage 1", "stage 1 -> ppipe's stdout"]),
        ("cat > out.txt", ["ppipe's stdin -> stage 1", "stage 1 -> file out.txt"]),
        ("cat >> 'my log'", ["ppipe's stdin -> stage 1", "stage 1 -> file 'my log' (appending)"]),
        ("cat &> both", ["ppipe's stdin -> stage 1", "stage 1 -> file both"]),
        ("cat >&2", ["ppipe's stdin -> stage 1", "stage 1 -> ppipe's stderr"]),
        ("cat > f 2>&1 > g", ["ppipe's stdin -> stage 1", "stage 1 -> file g"]),
        ("sort < a < b | cat > c", ["file b -> stage 1", "stage 1 -> stage 2", "stage 2 -> file c"]),
        ("seq 3 | cat", ["ppipe's stdin -> stage 1", "stage 1 -> stage 2", "stage 2 -> ppipe's stdout"]),
    ],
)
def test_the_redirections_are_the_ends(text: str, expected: list[str]) -> None:
    assert edges(text) == expected


def test_an_inner_redirection_empties_its_edge_and_says_so() -> None:
    assert edges("seq 3 > f | sort < g | cat") == [
        "ppipe's stdin -> stage 1",
        "stage 1 -> stage 2  (nothing flows: stage 1 writes file f instead)  (not read: stage 2 reads file g instead)",
        "stage 2 -> stage 3",
        "stage 3 -> ppipe's stdout",
        "stage 1 -> file f",
        "file g -> stage 2",
    ]


def test_stderr_joining_the_edge() -> None:
    assert edges("a |& b")[1] == "stage 1 -> stage 2  (stdout and stderr: |&)"
    assert edges("a 2>&1 | b")[1] == "stage 1 -> stage 2  (stdout and stderr: 2>&1)"
    assert edges("a > f |& b")[1] == "stage 1 -> stage 2  (nothing flows: stage 1 writes file f instead)"


def test_a_branch_that_reads_a_file() -> None:
    assert edges("seq 3 | { cat < f ; wc -l }") == [
        "ppipe's stdin -> stage 1",
        "stage 1 -> stage 2  (not read: stage 2 reads file f instead)",
        "stage 1 -> stage 3",
        "stage 2 -> ppipe's stdout",
        "stage 3 -> ppipe's stdout",
        "file f -> stage 2",
    ]


def test_the_cli_shows_files_as_ends_and_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("b\na\n")
    done = run_ppipe("--explain", "sort < in.txt | cat > out.txt", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "file in.txt -> stage 1" in done.stdout.decode() and "stage 2 -> file out.txt" in done.stdout.decode()
    assert "ppipe's stdin" not in done.stdout.decode() and "ppipe's stdout" not in done.stdout.decode()
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.timeout(300)
def test_a_long_pipeline_of_files_is_explained_whole() -> None:
    text = " | ".join(f"cat < in{i} > out{i}" for i in range(20_000))
    lines = edges(text)
    assert lines[0] == "file in0 -> stage 1" and lines[-1] == "file in19999 -> stage 20000"
    assert len(lines) == 20_001 + 2 * 19_999  # every edge, then the files of the 19,999 inner edges' two ends


# ---------------------------------------------------------------- commands that cannot start


def test_a_missing_command_is_stated_with_the_status_a_run_would_give() -> None:
    explained = explain_checked(parse("seq 3 | nosuchcmd_xyz -v | sort"))
    assert explained.status == 127
    assert "stage 2: nosuchcmd_xyz: command not found" in explained.text.splitlines()[-1]


def test_not_executable_is_126_and_the_rightmost_problem_decides(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    explained = explain_checked(parse(f"nosuchcmd_xyz | {script} | {tmp_path}"))
    assert explained.status == 126
    problems = explained.text.split("exit status 126:\n")[1].splitlines()
    assert problems == [
        "  stage 1: nosuchcmd_xyz: command not found",
        f"  stage 2: {script}: permission denied (not executable)",
        f"  stage 3: {tmp_path}: is a directory",
    ]
    assert explain_checked(parse(f"{script} | nosuchcmd_xyz")).status == 127


def test_the_stage_path_and_the_given_env_are_used(tmp_path: Path) -> None:
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert explain_checked(parse("mytool")).status == 127
    assert explain_checked(parse(f"PATH={tmp_path} mytool")).status == 0
    assert explain_checked(parse("mytool"), env={"PATH": str(tmp_path)}).status == 0


def test_every_command_found_is_status_0_and_no_problem_section() -> None:
    explained = explain_checked(parse("seq 3 | sort -r"))
    assert explained.status == 0 and "not started" not in explained.text


def test_shards_are_checked_too(tmp_path: Path) -> None:
    (tmp_path / "tool0").write_text("#!/bin/sh\n")
    (tmp_path / "tool0").chmod(0o755)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}"}
    assert explain_text("tool{task_id} | wc -l", plan=ShardPlan(1, tasks=2), env=env).status == 0
    explained = explain_text("tool{task_id} | wc -l", plan=ShardPlan(1, offset=1, tasks=2), env=env)
    assert explained.status == 127 and "stage 1: tool1: command not found" in explained.text
    assert explained.text.startswith("shards: 2 in all")


def test_the_cli_names_the_missing_command_and_runs_nothing(tmp_path: Path) -> None:
    done = run_ppipe("--explain", "touch made | nosuchcmd_xyz", cwd=str(tmp_path))
    assert b"stage 2: nosuchcmd_xyz: command not found" in done.stdout
    assert not (tmp_path / "made").exists()


@pytest.mark.parametrize("fork", [[], ["--fork", "2"]])
def test_the_cli_exits_127_for_a_missing_command(fork: list[str]) -> None:
    done = run_ppipe("--explain", *fork, "seq 3 | nosuchcmd_xyz")
    assert done.returncode == 127

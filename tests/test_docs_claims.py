"""What the README, docs/report.md and ``--help`` claim, checked against what ppipe does."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import ppipe
from ppipe.cli.config import Config

from helpers import ENV, PPIPE
from helpers import ppipe as run_ppipe

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
REPORT_DOC = (ROOT / "docs" / "report.md").read_text()


def readme_section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def shell_examples() -> list[tuple[str, list[str], int | None]]:
    """The README's ```sh examples that show what they print: each ``$ command``, its lines, its ``echo $?``."""
    examples = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("$ "):
            continue  # not a transcript: commands to copy (a build, a cluster, files of the reader's)
        command, shown, status = lines[0][2:], [], None
        for line in lines[1:]:
            if line.startswith("$ echo $?"):
                status = int(line.split("#")[1])
            else:
                shown.append(line)
        examples.append((command, shown, status))
    return examples


@pytest.mark.parametrize(("command", "shown", "status"), shell_examples(), ids=lambda v: str(v)[:30])
def test_each_readme_transcript_prints_what_it_shows(
    command: str, shown: list[str], status: int | None, tmp_path: Path
) -> None:
    """Run as typed (stdout and stderr on one stream, in a scratch directory), the lines are the README's."""
    path = f"{Path(PPIPE).parent}{os.pathsep}{ENV['PATH']}"
    result = subprocess.run(
        ["bash", "-c", command + " 2>&1"], capture_output=True, cwd=tmp_path, env={**ENV, "PATH": path}, timeout=60
    )
    # Two streams merged: stages' stderr and stdout may interleave either way, so the lines are compared as a whole.
    assert sorted(result.stdout.decode().splitlines()) == sorted(shown)
    if status is not None:
        assert result.returncode == status


def test_there_are_readme_transcripts_to_check() -> None:
    assert len(shell_examples()) >= 2  # a failing stage, a syntax error with its hint


def test_run_takes_the_keywords_the_api_page_lists_and_no_cli_only_option() -> None:
    section = (ROOT / "docs" / "api.md").read_text()
    paragraph = section[section.index("`run(pipeline, **keywords)`") : section.index("Also:")]
    named = set(re.findall(r"`([a-z_]+)(?:=[^`]*)?`", paragraph))
    keywords = set(ppipe.RunKeywords.__optional_keys__)
    assert named - {"run_async"} <= keywords  # every keyword it lists is taken
    listed_elsewhere = {"input", "stdin", "stdout", "stderr", "env", "cwd", "check", "splice", "handle_signals"}
    listed_elsewhere |= {"observer", "run_directory"}
    assert keywords - named - listed_elsewhere == set()  # and every keyword taken is listed
    for option in ("report", "quiet", "display", "progress", "task_id", "tasks"):
        assert option not in keywords  # the command line's alone, as it says
    with pytest.raises(TypeError):
        ppipe.run("true", report="r.json")  # type: ignore[call-arg]
    # Every option of the command line is a keyword of the same name, one the page maps, or one it calls the CLI's.
    mapped = {"lines": "count_lines", "recend": "record_end", "each": "items", "null": "record_end"}
    mapped |= {"resume_failed": "resume"}
    mapping, alone = paragraph.split("The command line's alone:")
    for field in dataclasses.fields(Config):
        if field.name == "pipeline" or field.name in keywords:
            continue
        option = "--" + field.name.replace("_", "-")
        if field.name in mapped:
            assert option in mapping and f"`{mapped[field.name]}" in mapping, option
        else:
            assert f"`{option}`" in alone, f"{option}: neither a keyword of ppipe.run nor said to be the CLI's alone"


def test_the_readme_python_example_prints_its_figures() -> None:
    result = ppipe.run("seq 10 | grep 1 | wc -l", stdout=ppipe.CAPTURE, count_lines=True)
    assert result.stdout == b"2\n" and result.exit_status == 0
    edge = result.edge(1, 2)
    assert "print(edge.bytes, edge.lines)  # 21 10" in README
    assert (edge.bytes, edge.lines) == (21, 10)
    uncounted = ppipe.run("seq 10 | grep 1 | wc -l", stdout=ppipe.CAPTURE)
    assert uncounted.edge(1, 2).lines is None  # "lines is None without count_lines=True"


def test_a_sharded_report_has_empty_top_level_stages_and_edges_as_documented(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = run_ppipe("-q", "--fork", "2", "--report", str(report), "echo {task_id}")
    assert result.returncode == 0
    data = json.loads(report.read_text())
    assert (data["stages"], data["edges"], data["bottleneck"]) == ([], [], None)
    assert all(a["stages"] and a["edges"] for s in data["shards"] for a in s["attempts"])  # each attempt has its own
    assert "top-level `stages` and `edges` are empty lists" in REPORT_DOC
    assert "no top-level" not in REPORT_DOC


def test_help_says_lines_are_counted_with_report_progress_or_the_view(tmp_path: Path) -> None:
    text = " ".join(run_ppipe("--help", env={**ENV, "COLUMNS": "200"}).stdout.decode().split())
    assert "Count lines on every edge (default: with --report, --progress or the live view)." in text
    claim = "count lines on every edge, or not; default: counted with `--report`, `--progress` or the live view"
    assert claim in README
    progress = run_ppipe("--progress", "json", "--display", "never", "seq 5 | cat")
    assert json.loads(progress.stderr.splitlines()[-1])["stages"][1]["lines_in"] == 5  # with --progress
    report = tmp_path / "r.json"
    run_ppipe("--report", str(report), "--display", "never", "seq 5 | cat")
    assert [e["lines"] for e in json.loads(report.read_text())["edges"] if e["counted"]] == [5]  # with --report
    run_ppipe("--no-lines", "--report", str(report), "--display", "never", "seq 5 | cat")
    assert [e["lines"] for e in json.loads(report.read_text())["edges"] if e["counted"]] == [None]  # unless told not


def test_the_status_table_says_1_for_too_low_a_ulimit() -> None:
    row = next(line for line in README.splitlines() if line.startswith("| 1 |"))
    assert "`ulimit -n` too low" in row  # tests/test_open_file_limit_status.py checks it, sharded or not


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_readme_recipe_for_report_dash_gives_the_report(tmp_path: Path) -> None:
    """``--report -``: the last line of stderr is the report, whatever the stages said there first."""
    [recipe] = [line for line in README.splitlines() if line.startswith("ppipe --report - ")]
    path = f"{Path(PPIPE).parent}{os.pathsep}{ENV['PATH']}"
    result = subprocess.run(
        ["bash", "-c", recipe], capture_output=True, cwd=tmp_path, env={**ENV, "PATH": path}, timeout=60
    )
    assert result.returncode == 0, result.stderr  # json.tool read one JSON object
    report = json.loads(result.stdout)
    assert report["pipeline"] == "make 2>&1 | grep -c warning"
    assert report["exit_status"] == 1  # no makefile here: grep counted 0 warnings and said so with 1

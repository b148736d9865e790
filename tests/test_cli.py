"""The ``ppipe`` command, run through the installed console script as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ppipe as ppipe_module
from ppipe.cli.completion import SHELLS, complete, script

from helpers import ENV, PPIPE, bash, ppipe

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- the acceptance list of the core issue


def test_sorts_like_bash() -> None:
    data = "".join(f"{i}\n" for i in range(1, 100001)).encode()
    ours = ppipe("grep 7 | sort -n | tail -3", input=data)
    theirs = bash("grep 7 | sort -n | tail -3", input=data)
    assert ours.stdout == theirs.stdout == b"99979\n99987\n99997\n"
    assert ours.returncode == 0


def test_yes_head_wc() -> None:
    result = ppipe("yes | head -c 1000000 | wc -c")
    assert result.stdout.strip() == b"1000000"
    assert result.returncode == 0
    assert result.stderr == b""


def test_failed_stage_is_named() -> None:
    result = ppipe("cat /nonexistent | wc -l")
    assert result.stdout.strip() == b"0"
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert "cat: /nonexistent: No such file or directory" in lines  # the stage's own stderr, passed through
    assert "ppipe: stage 1 (cat /nonexistent) failed: exit status 1" in lines
    assert len(lines) == 2  # what the stage said is not quoted again under the failure line


def test_missing_command_starts_nothing(tmp_path: Path) -> None:
    result = ppipe(f"touch {tmp_path}/started | nosuchcmd | wc -l")
    assert result.returncode == 127
    assert result.stderr.decode() == "ppipe: stage 2: nosuchcmd: command not found\n"
    assert result.stdout == b""
    assert not (tmp_path / "started").exists()


def test_quoted_pipe_is_an_argument() -> None:
    assert ppipe("echo 'a | b'").stdout == b"a | b\n"


def test_shell_list_is_rejected_and_nothing_runs(tmp_path: Path) -> None:
    result = ppipe("make && echo ok", cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert lines[0].startswith("ppipe: syntax error at column 6: '&&'")
    assert lines[1:3] == ["  make && echo ok", "       ^^"]
    assert "sh -c 'make && echo ok'" in lines[3]


def test_trailing_pipe_points_at_it() -> None:
    result = ppipe("echo hi |")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[1:3] == ["  echo hi |", "          ^"]
    assert b"Traceback" not in result.stderr


def test_explain_shows_argv_env_and_redirection_and_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")
    result = ppipe("--explain", "FOO=1 grep -E 'a|b' *.txt > out.txt", cwd=str(tmp_path))
    assert result.returncode == 0
    text = result.stdout.decode()
    assert "argv: ['grep', '-E', 'a|b', 'a.txt', 'b.txt']" in text
    assert "env: FOO='1'" in text
    assert "redirect: > out.txt" in text
    assert not (tmp_path / "out.txt").exists()


def test_report_counts_the_edge(tmp_path: Path) -> None:
    result = ppipe("--report", "run.json", "seq 10 | wc -l", cwd=str(tmp_path))
    assert result.returncode == 0
    report = json.loads((tmp_path / "run.json").read_text())
    edge = next(e for e in report["edges"] if (e["from"], e["to"]) == (1, 2))
    assert (edge["bytes"], edge["lines"], edge["counted"]) == (21, 10, True)
    assert report["schema"] == "ppipe-report/2"
    assert report["ppipe_version"] == ppipe_module.__version__
    assert [s["argv"] for s in report["stages"]] == [["seq", "10"], ["wc", "-l"]]
    assert all(s["verdict"] == "ok" and s["pid"] > 0 and s["status"] == 0 for s in report["stages"])


# ---------------------------------------------------------------- more of the command line


def test_report_of_failure_and_to_stderr() -> None:
    result = ppipe("-q", "--report", "-", "true | sh -c 'echo bad >&2; exit 4'")
    assert result.returncode == 4
    stderr = result.stderr.decode()
    report = json.loads(stderr[stderr.index("{") :])
    stage = report["stages"][1]
    assert (stage["status"], stage["verdict"], stage["failed"], stage["stderr_tail"]) == (4, "failed", True, ["bad"])
    assert report["exit_status"] == 4


def test_report_written_for_syntax_error(tmp_path: Path) -> None:
    result = ppipe("--report", "r.json", "a &&", cwd=str(tmp_path))
    assert result.returncode == 2
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit_status"] == 2
    assert "'&&'" in report["error"]["message"]


def test_report_written_for_missing_command(tmp_path: Path) -> None:
    result = ppipe("--report", "r.json", "seq 3 | nosuch", cwd=str(tmp_path))
    assert result.returncode == 127
    report = json.loads((tmp_path / "r.json").read_text())
    assert [s["argv"] for s in report["stages"]] == [["seq", "3"], ["nosuch"]]
    assert all(s["pid"] is None for s in report["stages"])


def test_quiet_prints_nothing_of_its_own() -> None:
    result = ppipe("-q", "sh -c 'exit 3'")
    assert result.returncode == 3
    assert result.stderr == b""


def test_no_fail() -> None:
    result = ppipe("--no-fail", "false | true")
    assert result.returncode == 0
    assert result.stderr == b"ppipe: stage 1 (false) exit status 1, ignored (--no-fail)\n"


def test_opt_out_marker_from_the_command_line() -> None:
    result = ppipe("printf 'a\\nb\\n' | -grep zzz | wc -l")
    assert result.stdout.strip() == b"0"
    assert result.returncode == 0


def test_timeout_gives_124() -> None:
    result = ppipe("--timeout", "0.5", "sleep 30 | cat")
    assert result.returncode == 124
    assert "timed out" in result.stderr.decode()


def test_126_and_127(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("echo hi\n")
    result = ppipe(f"{plain} | cat")
    assert result.returncode == 126
    assert "stage 1" in result.stderr.decode() and "permission denied" in result.stderr.decode()
    assert ppipe(f"{tmp_path}/missing").returncode == 127


def test_stdout_closed_early_is_quiet_and_prompt() -> None:
    result = subprocess.run(
        ["bash", "-c", f"{PPIPE} yes | head -1; echo status=${{PIPESTATUS[0]}}"],
        capture_output=True,
        timeout=30,
        env=ENV,
    )
    assert result.stdout == b"y\nstatus=0\n"
    assert result.stderr == b""


def test_explain_into_a_closed_pipe_is_quiet() -> None:
    long = " | ".join(["cat"] * 300)
    result = subprocess.run(
        ["bash", "-c", f"{PPIPE} --explain '{long}' | head -1"], capture_output=True, timeout=30, env=ENV
    )
    assert result.stdout.startswith(b"pipeline:")
    assert result.stderr == b""


def test_version_and_module_entry() -> None:
    assert ppipe("--version").stdout == f"ppipe {ppipe_module.__version__}\n".encode()
    result = subprocess.run([sys.executable, "-m", "ppipe", "seq 3 | wc -l"], capture_output=True, timeout=30)
    assert result.stdout.strip() == b"3"


def test_usage_errors_are_2() -> None:
    nothing = ppipe()  # no arguments: help, as a usage error
    assert nothing.returncode == 2
    assert b"PIPELINE" in nothing.stdout + nothing.stderr
    result = ppipe("--timeout", "abc", "true")
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr
    result = ppipe("--no-such-option", "true")
    assert result.returncode == 2


def test_binary_stdin_to_stdout() -> None:
    data = bytes(range(256)) * 1000
    result = ppipe("cat | cat", input=data)
    assert result.stdout == data


# ---------------------------------------------------------------- completion


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_completion_scripts_are_current(shell: str) -> None:
    checked_in = (ROOT / "completions" / SHELLS[shell]).read_text()
    assert checked_in == script(shell), "regenerate with: python -m ppipe.cli.completion write completions/"


def test_completion_offers_commands_then_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("x")
    (tmp_path / "dir").mkdir()
    assert "seq 3 | sort" in complete("seq 3 | sor")
    assert "grep" in complete("gre")
    assert complete("cat da") == ["cat data.csv"]
    assert complete("cat di") == ["cat dir/"]
    assert complete("cat < da") == ["cat < data.csv"]
    assert "seq 3 | { sort" in complete("seq 3 | { sor")  # a group's first stage
    assert "seq 3 | { cat ; sort" in complete("seq 3 | { cat ; sor")  # a later branch
    assert complete("seq 3 | { cat da") == ["seq 3 | { cat data.csv"]


def test_completion_protocol_through_the_entry_point() -> None:
    env = {**os.environ, "_PPIPE_COMPLETE": "complete_bash", "COMP_WORDS": "ppipe 'seq 3 | sor", "COMP_CWORD": "1"}
    result = subprocess.run([PPIPE], capture_output=True, env=env, timeout=30)
    assert "seq 3 | sort" in result.stdout.decode()


def test_unwritable_report_is_refused_before_running(tmp_path: Path) -> None:
    result = ppipe("--report", str(tmp_path / "missing" / "r.json"), f"touch {tmp_path}/ran")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("ppipe: cannot write the report to")
    assert not (tmp_path / "ran").exists()


def test_closed_stdout_fails_like_bash() -> None:
    ours = subprocess.run(["bash", "-c", f"{PPIPE} 'echo hi' >&-"], capture_output=True, timeout=30, env=ENV)
    theirs = subprocess.run(["bash", "-c", "echo hi >&-"], capture_output=True, timeout=30, env=ENV)
    assert ours.returncode == theirs.returncode == 1
    assert b"Bad file descriptor" in ours.stderr


def test_unreadable_input_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x\n")
    secret.chmod(0)
    if os.geteuid() == 0:
        pytest.skip("root reads any file; the redirection failure path is covered by missing files")
    result = ppipe(f"cat < {secret} | wc -l", env={**ENV, "HOME": str(tmp_path)})
    assert result.stdout.strip() == b"0"
    assert result.returncode == 1
    assert "Permission denied" in result.stderr.decode()


def test_failure_line_names_the_signal() -> None:
    result = ppipe("seq 3 | sh -c 'echo dying >&2; kill -9 $$' | cat")
    assert result.returncode == 137
    lines = result.stderr.decode().splitlines()
    assert "ppipe: stage 2 (sh -c 'echo dying >&2; kill -9 $$') failed: killed by SIGKILL" in lines
    assert lines.count("dying") == 1 and "  | dying" not in lines

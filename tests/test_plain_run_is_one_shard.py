"""Every run has one model: a plain run is one shard with one attempt, and only launch.py tells them apart."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import ppipe
from ppipe.results import Verdict
from ppipe.summary import failure_lines

SOURCE = Path(__file__).resolve().parent.parent / "pipes" / "ppipe"
#: Types whose isinstance test would tell a plain run from a sharded one.
RUN_KINDS = {"RunResult", "PipelineResult", "LocalRun", "ShardedExecution", "Execution", "ShardPlan"}


def test_a_plain_run_is_one_shard_with_one_attempt() -> None:
    result = ppipe.run("printf 'a\\nb\\n' | sh -c 'cat; exit 3'", stdout=ppipe.CAPTURE, count_lines=True)
    assert not result.sharded and len(result.shards) == 1
    (shard,) = result.shards
    (attempt,) = shard.attempts
    assert attempt.result is result.local and result.local is not None
    assert (shard.task_id, shard.tasks, shard.verdict) == (0, 1, Verdict.FAILED)
    assert result.exit_status == shard.exit_status == result.local.exit_status == 3
    assert (shard.bytes_out, shard.lines_out) == (4, 2)
    assert result.stages == result.local.stages and result.failures == (result.stages[1],)


def test_a_sharded_run_has_the_same_shape() -> None:
    result = ppipe.run("sh -c 'exit {task_id}'", fork=3)
    assert result.sharded and [s.task_id for s in result.shards] == [0, 1, 2]
    assert result.local is None  # its stages and edges are every shard's, as a plain run's are its own
    assert [s.stage.argv for s in result.stages] == [("sh", "-c", f"exit {i}") for i in range(3)]
    assert result.exit_status == 1 and [s.verdict for s in result.failed_shards] == [Verdict.FAILED] * 2
    assert [f.status for f in result.failures] == [1, 2]
    assert failure_lines(result)[0].startswith("ppipe: shard 1 failed after 1 attempt")


def test_both_reports_have_the_same_fields(tmp_path: Path) -> None:
    def report_of(*args: str) -> dict[str, object]:
        path = tmp_path / "report.json"
        subprocess.run([sys.executable, "-m", "ppipe", "--report", str(path), *args], check=False)
        data: dict[str, object] = json.loads(path.read_text())
        return data

    plain, sharded = report_of("true | true"), report_of("--fork", "2", "true")
    assert set(plain) <= set(sharded) and plain["shards"] == [] and len(sharded["shards"]) == 2  # type: ignore[arg-type]
    assert set(sharded) - set(plain) == {"input_undelivered", "output_error", "input_error"}


def test_only_the_launch_tells_a_plain_run_from_a_sharded_one() -> None:
    offenders = []
    for path in SOURCE.rglob("*.py"):
        if path.name == "launch.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
                named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                if named & RUN_KINDS:
                    offenders.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert offenders == [], "isinstance on a kind of run outside ppipe/launch.py: " + ", ".join(offenders)

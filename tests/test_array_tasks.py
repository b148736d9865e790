"""A job array's task: which one it is, under every scheduler's variables, and its share of a file on stdin."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppipe.errors import UsageError
from ppipe.identity import cluster_identity
from ppipe.shards.portion import task_slice

from helpers import ENV, PPIPE, ppipe

#: Variables any of the schedulers set; a test's own are added to an environment without them.
_SCHEDULER_PREFIXES = ("SLURM_", "PBS_", "SGE_", "LSB_", "AWS_BATCH_", "JOB_COMPLETION_INDEX", "JOB_ID")


def task_env(**variables: str) -> dict[str, str]:
    clean = {k: v for k, v in ENV.items() if not k.startswith(_SCHEDULER_PREFIXES)}
    return {**clean, **variables}


def slurm_array(ident: int, first: int, last: int, step: int, count: int) -> dict[str, str]:
    values = {"ID": ident, "MIN": first, "MAX": last, "STEP": step, "COUNT": count}
    return task_env(**{f"SLURM_ARRAY_TASK_{name}": str(value) for name, value in values.items()}, SLURM_JOB_ID="5")


def ids(env: dict[str, str], *args: str) -> tuple[int, bytes, bytes]:
    result = ppipe(*args, "echo {task_id}/{tasks}", env=env)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (slurm_array(4, 0, 6, 2, 4), b"2/4\n"),  # --array=0-6:2
        (slurm_array(7, 1, 10, 3, 4), b"2/4\n"),  # --array=1-10:3
        (slurm_array(6, 5, 8, 1, 4), b"1/4\n"),  # --array=5-8
        (slurm_array(3, 1, 5, 2, 3), b"1/3\n"),  # --array=1-5:2
    ],
)
def test_a_slurm_array_task_is_placed_by_its_step(array: dict[str, str], expected: bytes) -> None:
    assert ids(array)[:2] == (0, expected)


@pytest.mark.parametrize("last", [5, 7])
def test_a_listed_array_is_refused_naming_the_options(last: int) -> None:
    """``--array=1,3,5`` and ``1,3,7``: Slurm says ``STEP=1`` for any list, so task 3's place cannot be told;
    a guess would run some work twice and some never."""
    status, out, err = ids(slurm_array(3, 1, last, 1, 3))
    assert (status, out) == (2, b"")
    assert b"--task-id" in err and b"--tasks" in err
    assert ids(slurm_array(3, 1, last, 1, 3), "--task-id", "1", "--tasks", "3")[:2] == (0, b"1/3\n")


def test_srun_steps_are_tasks_and_inside_an_array_each_has_its_own_id() -> None:
    step = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "2"}
    assert ids(task_env(**step))[:2] == (0, b"1/2\n")
    assert ids({**slurm_array(2, 0, 3, 1, 4), **step})[:2] == (0, b"5/8\n")  # array position 2 × 2 + 1
    batch = {"SLURM_STEP_ID": "4294967294", "SLURM_PROCID": "0", "SLURM_NTASKS": "2"}  # the batch script itself
    assert ids(task_env(**batch))[:2] == (0, b"{task_id}/{tasks}\n")


def test_explicit_options_win_over_the_environment() -> None:
    array = slurm_array(2, 0, 3, 1, 4)
    assert ids(array, "--tasks", "8")[:2] == (0, b"2/8\n")
    assert ids(array, "--task-id", "6", "--tasks", "8")[:2] == (0, b"6/8\n")


@pytest.mark.parametrize(
    ("variables", "args", "expected"),
    [
        ({"PBS_ARRAY_INDEX": "3"}, ("--tasks", "5"), b"3/5\n"),
        ({"PBS_ARRAYID": "2"}, ("--tasks", "5"), b"2/5\n"),
        ({"SGE_TASK_ID": "5", "SGE_TASK_FIRST": "1", "SGE_TASK_LAST": "9", "SGE_TASK_STEPSIZE": "2"}, (), b"2/5\n"),
        ({"SGE_TASK_ID": "undefined"}, (), b"{task_id}/{tasks}\n"),  # an SGE job that is not an array
        ({"LSB_JOBINDEX": "4", "LSB_JOBINDEX_END": "6"}, (), b"3/6\n"),
        ({"LSB_JOBINDEX": "0"}, (), b"{task_id}/{tasks}\n"),  # an LSF job that is not an array
        ({"AWS_BATCH_JOB_ARRAY_INDEX": "9"}, ("--tasks", "10"), b"9/10\n"),
        ({"JOB_COMPLETION_INDEX": "1"}, ("--tasks", "3"), b"1/3\n"),
    ],
)
def test_every_scheduler_s_array_variables_are_read(
    variables: dict[str, str], args: tuple[str, ...], expected: bytes
) -> None:
    assert ids(task_env(**variables), *args)[:2] == (0, expected)


@pytest.mark.parametrize("variable", ["PBS_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", "JOB_COMPLETION_INDEX"])
def test_a_scheduler_that_does_not_say_how_many_tasks_needs_tasks(variable: str) -> None:
    status, out, err = ids(task_env(**{variable: "1"}))
    assert (status, out) == (2, b"")
    assert b"--tasks N" in err
    plain = ppipe("seq 3 | wc -l", env=task_env(**{variable: "1"}))  # never asks which task it is: runs whole
    assert (plain.returncode, plain.stdout.strip()) == (0, b"3")


def test_explain_shows_the_identity_and_the_variables_it_came_from() -> None:
    result = ppipe("--explain", "echo {task_id}", env=slurm_array(4, 0, 6, 2, 4))
    assert result.returncode == 0
    first = result.stdout.decode().splitlines()[0]
    assert first.startswith("this process: task 2 of 4")
    assert "SLURM_ARRAY_TASK_ID=4" in first and "SLURM_ARRAY_TASK_STEP=2" in first


# ---------------------------------------------------------------- a file shared out among tasks


def task_output(path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """ppipe with ``path`` on its stdin, as a task of an array submitted with ``< path``."""
    with path.open("rb") as stdin:
        return subprocess.run([PPIPE, *args], stdin=stdin, capture_output=True, timeout=60, env=task_env())


def shares(path: Path, tasks: int, *args: str, pipeline: str = "cat") -> list[bytes]:
    outputs = []
    for task in range(tasks):
        result = task_output(path, "--task-id", str(task), "--tasks", str(tasks), *args, pipeline)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    return outputs


def test_tasks_given_the_same_file_see_every_line_exactly_once(tmp_path: Path) -> None:
    data = b"".join(b"line %d %s\n" % (i, b"x" * (i % 50)) for i in range(20000))
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    parts = shares(path, 3)
    assert b"".join(parts) == data
    assert all(part.endswith(b"\n") and len(part) < len(data) for part in parts)


def test_a_fork_inside_a_task_splits_the_task_s_share_again(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(100000)))
    parts = shares(path, 2, "--fork", "2", "--block", "16k")
    lines = sorted(b"".join(parts).splitlines(), key=int)
    assert lines == [b"%d" % i for i in range(100000)]


def test_the_header_goes_to_every_task_before_its_share(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    rows = [b"%d,%d" % (i, i * i) for i in range(3000)]
    path.write_bytes(b"a,b\n" + b"\n".join(rows) + b"\n")
    parts = shares(path, 3, "--header", "1")
    assert all(part.startswith(b"a,b\n") for part in parts)
    assert b"".join(part[4:] for part in parts).splitlines() == rows


def test_a_pipe_on_stdin_is_refused_unless_every_task_reads_all_of_it() -> None:
    result = ppipe("--task-id", "0", "--tasks", "2", "wc -l", input=b"1\n2\n", env=task_env())
    assert (result.returncode, result.stdout) == (2, b"")
    assert b"--whole-input" in result.stderr
    whole = ppipe("--task-id", "0", "--tasks", "2", "--whole-input", "wc -l", input=b"1\n2\n", env=task_env())
    assert (whole.returncode, whole.stdout.strip()) == (0, b"2")
    own = ppipe("--task-id", "0", "--tasks", "2", "wc -l < /dev/null", input=b"1\n", env=task_env())
    assert (own.returncode, own.stdout.strip()) == (0, b"0")  # no stage reads the pipe: nothing to refuse


def test_an_srun_step_s_pipe_is_refused_only_with_input_waiting_on_it() -> None:
    """srun gives every step's task a pipe, usually empty; data on it would reach every task alike."""
    step = task_env(SLURM_STEP_ID="0", SLURM_PROCID="1", SLURM_STEP_NUM_TASKS="2")
    empty = ppipe("wc -l", input=b"", env=step)
    assert (empty.returncode, empty.stdout.strip()) == (0, b"0")
    given = ppipe("wc -l", input=b"1\n2\n", env=step)
    assert (given.returncode, given.stdout) == (2, b"")
    assert b"--whole-input" in given.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(st.binary(max_size=40), max_size=60),
    separator=st.sampled_from([b"\n", b"\0", b"\r\n", b"--"]),
    tasks=st.integers(1, 9),
    header=st.integers(0, 3),
    tail=st.booleans(),
)
def test_shares_are_whole_records_and_together_the_file_exactly_once(
    records: list[bytes], separator: bytes, tasks: int, header: int, tail: bool
) -> None:
    records = [r.replace(separator[:1], b"") for r in records]
    data = separator.join(records) + (separator if tail and records else b"")
    head_end = 0
    for _ in range(header):
        found = data.find(separator, head_end)
        head_end = len(data) if found == -1 else found + len(separator)
    head = data[:head_end]
    with tempfile.TemporaryFile() as handle:
        handle.write(data)
        handle.seek(0)
        fd = handle.fileno()
        texts = [
            b"".join(
                os.pread(fd, end - start, start) for start, end in task_slice(fd, task, tasks, separator, header).ranges
            )
            for task in range(tasks)
        ]
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0  # the offset, which other tasks may share, never moved
    assert all(text.startswith(head) for text in texts)
    bodies = [text[len(head) :] for text in texts]
    assert b"".join(bodies) == data[len(head) :]
    overlapping = any(separator[:k] == separator[-k:] for k in range(1, len(separator)))
    if not overlapping:  # "--" in "---": a run of such a separator may be cut inside (see shards/portion.py)
        filled = [text for text in bodies if text]
        assert all(text.endswith(separator) for text in filled[:-1])  # whole records; the file's last may be open


_VALUES = st.one_of(st.integers(-3, 12).map(str), st.sampled_from(["", "x", "undefined", "4294967294", " 1", "1e3"]))


@settings(max_examples=300, deadline=None)
@given(
    env=st.dictionaries(
        st.sampled_from(
            [
                "SLURM_ARRAY_TASK_ID",
                "SLURM_ARRAY_TASK_MIN",
                "SLURM_ARRAY_TASK_MAX",
                "SLURM_ARRAY_TASK_STEP",
                "SLURM_ARRAY_TASK_COUNT",
                "SLURM_STEP_ID",
                "SLURM_PROCID",
                "SLURM_STEP_NUM_TASKS",
                "SLURM_NTASKS",
                "PBS_ARRAY_INDEX",
                "PBS_ARRAYID",
                "SGE_TASK_ID",
                "SGE_TASK_FIRST",
                "SGE_TASK_LAST",
                "SGE_TASK_STEPSIZE",
                "LSB_JOBINDEX",
                "LSB_JOBINDEX_STEP",
                "LSB_JOBINDEX_END",
                "AWS_BATCH_JOB_ARRAY_INDEX",
                "JOB_COMPLETION_INDEX",
            ]
        ),
        _VALUES,
    ),
    task_id=st.none() | st.integers(0, 9),
    tasks=st.none() | st.integers(1, 9),
)
def test_any_scheduler_environment_gives_a_task_among_the_tasks_or_a_usage_error(
    env: dict[str, str], task_id: int | None, tasks: int | None
) -> None:
    """Whatever a scheduler (or a user) left in the environment: a place among the tasks, nothing, or a sentence."""
    try:
        identity = cluster_identity(env, task_id, tasks)
    except UsageError as error:
        assert str(error) and "Traceback" not in str(error)
        return
    if identity is not None:
        assert 0 <= identity.task_id < identity.tasks
        if task_id is not None:
            assert identity.task_id == task_id
        if tasks is not None:
            assert identity.tasks == tasks

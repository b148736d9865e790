"""``{slot}``, the number of the local slot running a shard (GNU parallel's ``{%}``), and the tag before its lines.

Real shards in real slots: a shard holds its slot's scratch directory while
it runs, so two shards given the same slot at once would collide on it.
"""

from __future__ import annotations

from pathlib import Path

import ppipe

from helpers import ppipe as run_ppipe

#: Takes the slot's scratch directory for the shard's whole run (a tenth of a second of work, so that shards
#: overlap): mkdir fails if another shard holds it.
HOLD_SLOT = "sh -c 'mkdir scratch/{slot} && echo {slot} {item} && sleep 0.1 && rmdir scratch/{slot}'"


def items(directory: Path, *lines: str) -> Path:
    path = directory / "items"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_each_running_shard_has_a_slot_of_its_own_numbered_from_1_to_jobs(tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    listed = items(tmp_path, *(f"i{n}" for n in range(30)))
    done = run_ppipe("--each", str(listed), "-j", "3", HOLD_SLOT, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.decode().splitlines()]
    assert sorted(item for _, item in lines) == sorted(f"i{n}" for n in range(30))
    assert {slot for slot, _ in lines} <= {"1", "2", "3"}
    assert list((tmp_path / "scratch").iterdir()) == []  # every shard let its slot's directory go


def test_slot_fills_a_variable_as_cuda_visible_devices_takes_it(tmp_path: Path) -> None:
    done = run_ppipe("--fork", "6", "-j", "2", "CUDA_VISIBLE_DEVICES={slot} printenv CUDA_VISIBLE_DEVICES")
    assert done.returncode == 0, done.stderr
    slots = done.stdout.decode().split()
    assert len(slots) == 6 and set(slots) <= {"1", "2"}


def test_tag_with_each_puts_the_item_before_every_output_and_stderr_line(tmp_path: Path) -> None:
    listed = items(tmp_path, "a b.txt", "c")
    stage = "sh -c 'echo out {item}; echo err {item} >&2'"
    done = run_ppipe("--each", str(listed), "--tag", "--keep-order", stage)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"a b.txt\tout a b.txt\nc\tout c\n"
    assert sorted(done.stderr.splitlines()) == [b"a b.txt\terr a b.txt", b"c\terr c"]


def test_tag_with_fork_puts_the_task_id(tmp_path: Path) -> None:
    done = run_ppipe("--fork", "2", "--tag", "--keep-order", "echo x")
    assert done.stdout == b"0\tx\n1\tx\n", done.stderr


def test_tag_format_fills_placeholders_and_implies_tag(tmp_path: Path) -> None:
    listed = items(tmp_path, "p", "q")
    done = run_ppipe(
        "--each",
        str(listed),
        "-j",
        "1",
        "--keep-order",
        "--tag-format",
        "[{slot} {task_num}/{tasks}] {item}",
        "echo hi",
    )
    assert done.stdout == b"[1 1/2] p\thi\n[1 2/2] q\thi\n", done.stderr


def test_tag_format_comes_from_the_api_too() -> None:
    result = ppipe.run(
        "echo {item}", items=["x", "y"], jobs=1, keep_order=True, tag_format="{item}@{slot}", stdout=ppipe.CAPTURE
    )
    assert result.ok and result.stdout == b"x@1\tx\ny@1\ty\n"


def test_explain_shows_slot_and_tag_filled(tmp_path: Path) -> None:
    listed = items(tmp_path, "p", "q")
    done = run_ppipe(
        "--explain", "--each", str(listed), "-j", "2", "--tag-format", "{item}:{slot}", "work {slot} {item}"
    )
    text = done.stdout.decode()
    assert "{slot} = the number of the slot running it, 1 … 2 (shown: 1)" in text
    assert "shard 0 (item 'p', tag 'p:1'): ['work', '1', 'p']" in text
    assert "shard 1 (item 'q', tag 'q:1'): ['work', '1', 'q']" in text


def test_slot_stays_as_written_in_a_plain_run() -> None:
    done = run_ppipe("echo {slot}")
    assert done.returncode == 0 and done.stdout == b"{slot}\n"


def test_slot_on_a_slurm_array_is_refused_before_anything_is_submitted(tmp_path: Path) -> None:
    """A Slurm array's tasks run in no slot of ppipe's: every task would get the same number."""
    done = run_ppipe("--on", "slurm", "--fork", "2", "CUDA_VISIBLE_DEVICES={slot} work", cwd=str(tmp_path))
    assert done.returncode == 2
    assert b"{slot} numbers the slots of shards run here" in done.stderr and b"--gpus-per-task" in done.stderr
    assert not (tmp_path / "ppipe-runs").exists()


def test_slot_in_the_tag_format_of_a_slurm_array_is_refused_too(tmp_path: Path) -> None:
    done = run_ppipe("--on", "slurm", "--fork", "2", "--tag-format", "{slot}", "echo hi", cwd=str(tmp_path))
    assert done.returncode == 2 and b"{slot} numbers the slots of shards run here" in done.stderr

"""What ppipe keeps on disk for a while — a fan-in's long line, a shard's turn under --keep-order —
fails the run, saying so, when it cannot be kept; it never passes with data missing or torn."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import ENV, PPIPE

#: A 20 MB line: far more than a merge keeps in memory, and than the small TMPDIR holds.
LONG_LINE = "head -c 20000000 /dev/zero"


def run(script: str, tmpdir: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        timeout=120,
        env={**ENV, "TMPDIR": str(tmpdir)},
        stdin=subprocess.DEVNULL,
    )


def test_a_fan_in_that_cannot_keep_a_long_line_fails_and_says_why(small_tmpdir: Path) -> None:
    done = run(f"'{PPIPE}' '{{ {LONG_LINE} ; {LONG_LINE} }}' | wc -c; exit ${{PIPESTATUS[0]}}", small_tmpdir)
    assert done.returncode == 1, done.stderr
    assert b"cannot keep an unfinished line for a merge: No space left on device" in done.stderr
    assert f"TMPDIR={small_tmpdir}".encode() in done.stderr
    assert b"Traceback" not in done.stderr and b"internal error" not in done.stderr


def test_a_fan_in_with_room_merges_the_long_lines_whole(tmp_path: Path) -> None:
    done = run(f"'{PPIPE}' '{{ {LONG_LINE} ; {LONG_LINE} }}' | wc -c", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == b"40000000"


def test_keep_order_that_cannot_keep_a_turn_fails_and_never_passes_torn(small_tmpdir: Path) -> None:
    # Shard 0 holds its turn a second after its output, so shard 1's 15 MB must wait, whatever the scheduling.
    shard = 'sh -c "seq {task_num} 2 4000000; [ {task_id} = 1 ] || sleep 1"'
    done = run(f"'{PPIPE}' --fork 2 --keep-order '{shard}' | wc -l; exit ${{PIPESTATUS[0]}}", small_tmpdir)
    assert done.returncode == 1, done.stderr
    assert b"cannot keep its output: No space left on device" in done.stderr


def test_keep_order_with_room_is_exact(tmp_path: Path) -> None:
    done = run(f"'{PPIPE}' --fork 2 --keep-order 'seq {{task_num}} 2 400000' | md5sum", tmp_path)
    expected = run("{ seq 1 2 400000; seq 2 2 400000; } | md5sum", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected.stdout


def test_stderr_held_for_a_pager_still_falls_through_when_it_cannot_be_kept(small_tmpdir: Path) -> None:
    """Held stderr is for the eyes: out of turn rather than lost."""
    script = f"'{PPIPE}' --pager 'sh -c \"head -c 3000000 /dev/zero | tr \\\\\\\\0 e >&2; echo out\" | cat'"
    done = run(script, small_tmpdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"out\n"
    assert done.stderr.count(b"e") >= 3000000

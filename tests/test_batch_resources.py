"""What a batch holds while it runs: no zombies in its slots, and memory that does not grow with the items done.

Real ppipe processes; figures read from ``/proc``, never timings.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import helpers
from helpers import command_of, descendants_of, poll, wait_until

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads /proc")


def zombies_under(root: int) -> int:
    """How many of ``root``'s descendants are zombies."""
    return list(descendants_of(root).values()).count("Z")


def start(*args: str) -> subprocess.Popen[bytes]:
    return helpers.start(*args, stdout=subprocess.DEVNULL)


# ---------------------------------------------------------------- zombies


def test_a_slot_reaps_the_orphans_it_adopts_between_attempts(tmp_path: Path) -> None:
    """Each item leaves a background child that outlives its attempt; none stays a zombie once it ends."""
    items = tmp_path / "items"
    items.write_text("".join(f"{i}\n" for i in range(120)))
    run = start("--each", str(items), "-j", "2", "sh -c '(sleep 0.05 &); sleep 0.02'")
    try:
        most = 0
        deadline = time.monotonic() + 60
        while run.poll() is None and time.monotonic() < deadline:
            most = max(most, zombies_under(run.pid))
            time.sleep(0.2)
        assert run.wait(timeout=60) == 0, run.stderr.read() if run.stderr else b""
    finally:
        run.kill()
        run.wait()
    # A zombie may be caught in the instant between its end and its reaping; a pile-up is dozens.
    assert most <= 4, f"{most} zombies under the slots"


def test_a_slot_reaps_the_orphans_of_an_attempt_still_running(tmp_path: Path) -> None:
    """Orphans that end while their attempt goes on are reaped then, not at its end."""
    stage = "sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do (true &); done; sleep 30'"
    run = start("--fork", "2", stage)
    try:
        # Each attempt forks its orphans before its sleep: once both sleeps run all forty exist, and end at once,
        # while their attempts go on for 30 s. A slot that reaps them only at an attempt's end never gets to 0.
        def sleeping() -> bool:
            return [command_of(pid) for pid in descendants_of(run.pid)].count("sleep") == 2

        wait_until(sleeping, "both attempts at their sleep")
        zombies = poll(lambda: zombies_under(run.pid), lambda found: found == 0, timeout=3)
    finally:
        run.terminate()
        run.wait(timeout=30)
    assert zombies == 0, f"{zombies} zombies under the slots while the attempts run"


# ---------------------------------------------------------------- memory


def peak_rss_of_batch(items: Path, count: int) -> int:
    """ppipe's own peak resident memory (bytes, ``VmHWM``) over a batch of ``count`` items of ``true``."""
    items.write_text("".join(f"{i}\n" for i in range(count)))
    run = start("--each", str(items), "-j", "2", "true {item}")
    peak = 0
    try:
        while run.poll() is None:
            try:
                with open(f"/proc/{run.pid}/status") as handle:
                    for line in handle:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        assert run.wait() == 0
    finally:
        run.kill()
        run.wait()
    return peak


def test_a_batch_does_not_keep_memory_for_each_item_done(tmp_path: Path) -> None:
    """A finished attempt keeps its counts and its result, not its pumps' buffers: some KiB, not hundreds."""
    small = peak_rss_of_batch(tmp_path / "small", 500)
    large = peak_rss_of_batch(tmp_path / "large", 2000)
    per_item = (large - small) / 1500
    # Kept pump buffers cost ~270 KiB an item (0.4 GB more here); the shard records themselves are a few KiB.
    assert per_item < 16 * 1024, f"{per_item / 1024:.0f} KiB more per item ({small >> 20} -> {large >> 20} MiB)"

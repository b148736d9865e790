"""A sharded or batch run that ppipe stops: what the job log says of it, and how fast it ends.

Real ppipe processes, real signals, real pipes with a reader that has
stalled; no timings are asserted beyond "it ended, and soon enough".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import ENV, PPIPE, wait_for_lines, wait_for_stalled_pipe
from helpers import ppipe as run_ppipe


def joblog_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def exit_status(returncode: int) -> int:
    """As a shell tells it: ppipe ends by the signal that stopped it, which is 128+N."""
    return 128 - returncode if returncode < 0 else returncode


# ---------------------------------------------------------------- --resume after a stop


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "--timeout", "--halt"])
def test_resume_runs_again_every_shard_that_ppipe_stopped(tmp_path: Path, how: str) -> None:
    """Shards stopped by ppipe are logged not final; a resumed run runs exactly those and the never-started."""
    log, done = tmp_path / "log", tmp_path / "done"
    done.mkdir()
    # Items 0..23, six rounds of four: nearly twice the --timeout. Item 5 fails at once (for --halt), the rest
    # take a while and note that they finished.
    stage = f"sh -c 'test {{item}} != 5 || exit 3; sleep 0.3; touch {done}/{{item}}'"
    items = tmp_path / "items"
    items.write_text("".join(f"{i}\n" for i in range(24)))
    extra = {"--timeout": ["--timeout", "1"], "--halt": ["--halt", "now,fail=1"]}.get(how, [])
    process = subprocess.Popen(
        [PPIPE, "--each", str(items), "-j", "4", "--joblog", str(log), *extra, stage],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    if how.startswith("SIG"):
        wait_for_lines(log, 6)  # the header and some attempts: others are running now
        process.send_signal(getattr(signal, how))
    _, stderr = process.communicate(timeout=60)
    expected = {"SIGTERM": 143, "SIGINT": 130, "--timeout": 124, "--halt": 3}[how]
    assert exit_status(process.returncode) == expected, stderr
    lines = joblog_lines(log)[1:]
    stopped = [line for line in lines if line["status"] not in (0, 3)]
    assert stopped, f"nothing was running when ppipe stopped: {lines}"
    assert not any(line["final"] for line in stopped), stopped
    final = {str(line["item"]) for line in lines if line["final"]}
    assert final >= {str(name) for name in os.listdir(done)} - {str(line["item"]) for line in stopped}
    resumed = run_ppipe("--each", str(items), "-j", "4", "--joblog", str(log), "--resume", stage)
    assert resumed.returncode == 0, resumed.stderr
    assert {int(str(name)) for name in os.listdir(done)} == set(range(24)) - {5}
    ran_again = {line["item"] for line in joblog_lines(log)[1 + len(lines) :]}
    assert ran_again == {str(i) for i in range(24)} - final  # the stopped and the never started, nothing else


# ---------------------------------------------------------------- a stop with a reader that stalled


def stalled_run(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    """ppipe writing into a pipe whose reader never reads (kept open, so no EPIPE): the read end too."""
    read_end, write_end = os.pipe()
    run = subprocess.Popen([PPIPE, *args], stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE, env=ENV)
    os.close(write_end)
    return run, read_end


@pytest.mark.parametrize(
    ("options", "sig", "expected"),
    [
        (["--fork", "2", "--timeout", "1"], None, 124),
        (["--fork", "2", "--keep-order"], signal.SIGTERM, 143),
        (["--each", "ITEMS", "-j", "2"], signal.SIGINT, 130),
    ],
)
def test_a_stop_ends_the_run_although_nobody_reads_its_output(
    tmp_path: Path, options: list[str], sig: signal.Signals | None, expected: int
) -> None:
    """What the stalled reader has not taken is dropped after --kill-after, said in one line, and ppipe exits."""
    items = tmp_path / "items"
    items.write_text("3000000\n3000000\n")
    options = [str(items) if option == "ITEMS" else option for option in options]
    pipeline = "seq {item}" if "--each" in options else "seq 3000000"
    run, read_end = stalled_run(*options, "--kill-after", "1", pipeline)
    try:
        if sig is not None:  # (--timeout stops the run by itself)
            wait_for_stalled_pipe(read_end)  # the shards' output is more than the pipe holds: ppipe stalls
            assert run.poll() is None  # blocked on its output, as it should be until the stop
            run.send_signal(sig)
        _, stderr = run.communicate(timeout=20)  # hung for ever before
    finally:
        run.kill()
        run.wait()
        os.close(read_end)
    assert exit_status(run.returncode) == expected, stderr
    dropped = [line for line in stderr.splitlines() if b"of the shards' output were not written" in line]
    assert len(dropped) == 1 and dropped[0].startswith(b"ppipe: stopped; "), stderr


# ---------------------------------------------------------------- an error in ppipe itself


def test_an_error_in_the_coordinator_ends_the_run_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A MemoryError where ppipe follows an attempt's end (injected: the shards run for real) is raised, not logged.

    Before, asyncio logged it and went on, and the run ended as if nothing had happened (or waited for ever).
    """
    import ppipe
    from ppipe.shards import dispatch

    real = dispatch.LocalSlots._ended
    calls = 0

    def failing(self: dispatch.LocalSlots, shard: object, attempt: object, **kwargs: bool) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise MemoryError
        real(self, shard, attempt, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dispatch.LocalSlots, "_ended", failing)
    started = time.monotonic()
    with pytest.raises(MemoryError):
        ppipe.run("sleep 0.05", items=[str(i) for i in range(40)], jobs=2, timeout=60)
    assert time.monotonic() - started < 30  # the 60 s timeout is not what ended it

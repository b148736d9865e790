"""Runs that must end: background descendants, a reader of ppipe's stderr that left, signals while draining."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import ENV, PPIPE, children, killed_at_end, ppipe, start, wait_for_lines, wait_for_stalled_pipe, wait_until


def test_a_background_descendant_writing_to_stderr_does_not_keep_the_run_alive() -> None:
    """bash returns at once; ppipe delivers what the stage wrote and ends, the ticker left to its SIGPIPE."""
    result = ppipe("sh -c 'while :; do echo tick >&2; sleep 0.2; done & exit 0'", timeout=20)
    assert result.returncode == 0


def test_a_background_descendant_streaming_stdout_does_not_keep_the_run_alive() -> None:
    """Every stage has exited; the descendant's endless output through ppipe is cut off, whole lines kept."""
    result = ppipe("{ sh -c 'yes &' ; true }", timeout=30)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split(b"\n")[:-1]) <= {b"y"}


def test_what_the_stages_wrote_is_delivered_in_full_before_the_run_ends() -> None:
    """A descendant holding the pipe must not cut off what the stage itself wrote before it exited."""
    text = "{ sh -c 'head -c 900000 /dev/zero; (while :; do echo tick; sleep 0.01; done) & exit 0' ; true }"
    result = ppipe(text, timeout=30)
    assert result.returncode == 0
    assert result.stdout[:900000] == bytes(900000)
    assert set(result.stdout[900000:].split(b"\n")[:-1]) <= {b"tick"}


def test_stderr_whose_reader_left_stops_the_stage() -> None:
    """`ppipe "yes >&2" 2>&1 | head -1`: yes gets SIGPIPE as under bash, and the run ends."""
    result = subprocess.run(
        ["bash", "-c", f"'{PPIPE}' 'yes >&2' 2>&1 | head -1; echo \"${{PIPESTATUS[0]}}\""],
        capture_output=True,
        timeout=20,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    assert result.stdout == b"y\n0\n"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ends_a_run_whose_stages_are_gone_but_whose_output_is_stuck(sig: signal.Signals) -> None:
    """The stages have exited and ppipe's stdout is never read: only the signal can end it, and it must."""
    with killed_at_end(start("{ head -c 900000 /dev/zero ; true }")) as process:
        assert process.stdout is not None
        wait_for_stalled_pipe(process.stdout.fileno())  # 900 kB is more than the pipe holds
        wait_until(lambda: not children(process.pid), "the stages ended")
        assert process.poll() is None  # stuck writing into a pipe nobody reads
        process.send_signal(sig)
        status = process.wait(timeout=10)
    assert status == -sig  # re-raised, as for every signal that stops a run
    assert b"Traceback" not in process.stderr.read()  # type: ignore[union-attr]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ends_a_run_held_open_by_a_busy_descendant(sig: signal.Signals) -> None:
    busy = "sh -c '(while :; do echo tick >&2; sleep 0.01; done) & sleep 30'"
    with killed_at_end(start("--display", "never", busy)) as process:
        assert process.stderr is not None
        assert process.stderr.readline() == b"tick\n"  # the stage and its busy descendant are running
        process.send_signal(sig)
        status = process.wait(timeout=10)
    assert status == -sig  # re-raised, as for every signal that stops a run


def test_a_busy_descendant_behind_a_slow_reader_is_cut_off_once() -> None:
    """What the pipe held when the grace ran out is delivered, then the run ends: the limit is not
    moved on each time ppipe looks again, or a reader slower than the descendant would never see the end."""
    with killed_at_end(start("{ sh -c '(yes &) ; exit 0' ; true }")) as process:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while process.stdout.read1(65536) and time.monotonic() < deadline:
            time.sleep(0.02)  # about 3 MB/s: far slower than yes
        assert time.monotonic() < deadline, "ppipe kept pumping what the descendant wrote after its stages ended"
        assert process.wait(timeout=10) == 0


def test_a_consumers_child_still_reading_gets_everything(tmp_path: Path) -> None:
    out = tmp_path / "wc.out"
    script = f"exec 3<&0; (sleep 0.3; wc -l <&3 > {out}) &"
    assert ppipe(f"seq 1 1000000 | sh -c '{script}'").returncode == 0
    assert wait_for_lines(out, 1).strip() == "1000000"

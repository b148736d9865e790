"""Signals and clean-up: no stage outlives ppipe, and ppipe exits as the signal says."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

import helpers
from helpers import ENV, PPIPE, python_stage, wait_for_children, wait_gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def start(*args: str) -> subprocess.Popen[bytes]:
    return helpers.start(*args, stdin=None)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_reaches_every_stage_and_is_reraised(sig: signal.Signals, tmp_path: Path) -> None:
    proc = start("--report", str(tmp_path / "r.json"), "sleep 100 | sleep 100 | cat")
    stages = wait_for_children(proc.pid, 3)
    proc.send_signal(sig)
    proc.wait(timeout=20)
    assert proc.returncode == -sig  # re-raised: a calling shell sees 128+N and stops its loop
    assert wait_gone(stages, 2) == []
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["interrupted_by"] == sig.name
    assert report["exit_status"] == 128 + sig
    assert {s["verdict"] for s in report["stages"]} == {"terminated"}


def test_sigkill_of_ppipe_takes_the_stages_down() -> None:
    proc = start("sleep 100 | sleep 100")
    stages = wait_for_children(proc.pid, 2)
    proc.kill()
    proc.wait(timeout=10)
    assert wait_gone(stages, 1.0) == []


def test_stubborn_stage_is_killed_after_the_grace() -> None:
    stubborn = python_stage(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True); time.sleep(100)"
    )
    proc = start("--kill-after", "0.5", f"{stubborn} | cat")
    stages = wait_for_children(proc.pid, 2)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # its handler is in place
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    assert proc.returncode == -signal.SIGTERM
    assert wait_gone(stages, 2) == []


def test_second_signal_kills_at_once() -> None:
    stubborn = python_stage(
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True); time.sleep(100)"
    )
    proc = start("--kill-after", "60", stubborn)
    stages = wait_for_children(proc.pid, 1)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # its handler is in place
    proc.send_signal(signal.SIGINT)
    # Not a wait for something to happen but a span in which something must not: ppipe must still be running
    # some time into the 60 s grace (a ppipe that ended at the first SIGINT ends well within this).
    time.sleep(0.3)
    assert proc.poll() is None  # still in the grace period
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGINT
    assert wait_gone(stages, 2) == []


def test_ctrl_c_in_a_terminal() -> None:
    child = pexpect.spawn(PPIPE, ["sleep 100 | sleep 100"], env=ENV, timeout=20)
    stages = wait_for_children(child.pid, 2)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus == signal.SIGINT
    assert wait_gone(stages, 2) == []
    assert b"Traceback" not in (child.before or b"")


def test_ctrl_c_stops_a_calling_shell_loop() -> None:
    loop = f'for i in 1 2 3; do {PPIPE} "sleep 100"; echo "after $i"; done; echo loop-done'
    child = pexpect.spawn("bash", ["--norc", "--noprofile", "-c", loop], env=ENV, timeout=20)
    (first,) = wait_for_children(child.pid, 1)
    wait_for_children(first, 1)  # ppipe's stage is running: its handlers are in place
    child.sendintr()
    child.expect(pexpect.EOF)
    output = (child.before or b"").decode()
    assert "after 1" not in output
    assert "loop-done" not in output


def test_ignored_sighup_stays_ignored() -> None:
    """Under nohup ppipe and its stages keep ignoring SIGHUP, as a shell's children would."""
    proc = subprocess.Popen(["nohup", PPIPE, "sleep 1 | cat"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    wait_for_children(proc.pid, 2)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=20) == 0


def test_interrupt_loses_no_output_already_flowing() -> None:
    producer = python_stage("import sys, time\nfor i in range(1000):\n    print(i, flush=True); time.sleep(0.005)\n")
    proc = start(f"{producer} | cat")
    wait_for_children(proc.pid, 2)
    assert proc.stdout is not None
    first = proc.stdout.readline() + proc.stdout.readline()  # output is flowing through ppipe
    proc.send_signal(signal.SIGTERM)
    out = first + proc.stdout.read()  # through the same buffer: communicate() would skip what readline() holds
    proc.wait(timeout=20)
    numbers = [int(x) for x in out.split()]
    assert numbers == list(range(len(numbers)))  # a prefix, in order, nothing torn or dropped
    assert numbers


def test_a_signal_noted_before_the_run_stops_it_as_soon_as_its_handlers_are_in_place() -> None:
    """A Ctrl-C Python swallowed while ppipe was loading (see ppipe.interrupts) is not lost: the run takes it."""
    import time

    import ppipe
    from ppipe import interrupts

    interrupts.note(signal.SIGTERM)
    started = time.monotonic()
    result = ppipe.run("sleep 20", handle_signals=True, kill_after=1)
    assert time.monotonic() - started < 10
    assert (result.exit_status, result.interrupted_by) == (143, "SIGTERM")
    assert not interrupts.pending()


def test_signalling_a_stage_that_just_exited_does_not_hang() -> None:
    """Popen.send_signal would reap the stage behind tornado's back and wait_for_exit never returned."""
    result = subprocess.run(
        [PPIPE, "--kill-after", "1", "sh -c 'kill -TERM $PPID; exit 0'"], capture_output=True, timeout=30, env=ENV
    )
    assert result.returncode == -15

"""Runs that must end: background descendants, a reader of ppipe's stderr that left, signals while draining."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from conftest import ENV, PPIPE


def test_a_background_descendant_writing_to_stderr_does_not_keep_the_run_alive() -> None:
    """bash returns at once; ppipe delivers what the stage wrote and ends, the ticker left to its SIGPIPE."""
    result = subprocess.run(
        [PPIPE, "sh -c 'while :; do echo tick >&2; sleep 0.2; done & exit 0'"],
        capture_output=True,
        timeout=20,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0


def test_a_background_descendant_streaming_stdout_does_not_keep_the_run_alive() -> None:
    """Every stage has exited; the descendant's endless output through ppipe is cut off, whole lines kept."""
    result = subprocess.run(
        [PPIPE, "{ sh -c 'yes &' ; true }"],
        capture_output=True,
        timeout=30,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split(b"\n")[:-1]) <= {b"y"}


def test_what_the_stages_wrote_is_delivered_in_full_before_the_run_ends() -> None:
    """A descendant holding the pipe must not cut off what the stage itself wrote before it exited."""
    text = "{ sh -c 'head -c 900000 /dev/zero; (while :; do echo tick; sleep 0.01; done) & exit 0' ; true }"
    result = subprocess.run([PPIPE, text], capture_output=True, timeout=30, env=ENV, stdin=subprocess.DEVNULL)
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
    process = subprocess.Popen(
        [PPIPE, "{ head -c 900000 /dev/zero ; true }"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)
        assert process.poll() is None  # stuck writing into a pipe nobody reads
        process.send_signal(sig)
        status = process.wait(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert status == -sig  # re-raised, as for every signal that stops a run
    assert b"Traceback" not in process.stderr.read()  # type: ignore[union-attr]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ends_a_run_held_open_by_a_busy_descendant(sig: signal.Signals) -> None:
    process = subprocess.Popen(
        [PPIPE, "--display", "never", "sh -c '(while :; do echo tick >&2; sleep 0.01; done) & sleep 30'"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        process.send_signal(sig)
        status = process.wait(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert status == -sig  # re-raised, as for every signal that stops a run

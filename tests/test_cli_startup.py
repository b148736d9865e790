"""Signals and a closed stdout at any moment of start-up: ppipe ends quietly, with the status a shell expects."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sysconfig
from pathlib import Path

import pytest

from conftest import ENV

#: The console script itself: the ``ppipe`` on PATH may be a wrapper (pyenv's shim is a bash script).
SCRIPT = str(Path(sysconfig.get_path("scripts")) / "ppipe")
#: ppipe's own modules. Python's start-up (``site`` and ``.pth`` files: "init_import_site") and the console
#: script's lines before it imports ppipe run before any of ppipe's code and are not ppipe's to handle;
#: nor is the package's ``__init__``, which Python runs before the entry module (see the report).
_OWN_FRAME = re.compile(r'File "[^"]*/ppipe/(?!__init__\.py)[^"]*\.py"')
#: What Python says when the interrupt lands in its own start-up, before any of ppipe's code: its
#: traceback through ``site``, or the runpy line "failed to set __main__.__loader__".
_BEFORE_PPIPE = ("init_import_site", "Traceback", "__main__.__loader__")


def interrupted_at_random(sig: signal.Signals, runs: int) -> list[subprocess.CompletedProcess[bytes]]:
    results = []
    for _ in range(runs):
        process = subprocess.Popen(
            [SCRIPT, "sleep 5 | cat"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
        )
        random_delay = random.uniform(0, 0.08)
        try:
            process.wait(timeout=random_delay)
        except subprocess.TimeoutExpired:
            process.send_signal(sig)
        out, err = process.communicate(timeout=30)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


@pytest.mark.skipif(not os.path.exists(SCRIPT), reason="needs the installed console script")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_ends_ppipe_quietly(sig: signal.Signals) -> None:
    """Killed by the signal (a shell shows 130 or 143) or, once the run had started, the run's own 128+N."""
    for result in interrupted_at_random(sig, 40):
        stderr = result.stderr.decode(errors="replace")
        assert not _OWN_FRAME.search(stderr), stderr
        if any(mark in stderr for mark in _BEFORE_PPIPE):
            continue  # the interrupt landed before ppipe's code ran (see _OWN_FRAME)
        assert result.returncode in (-sig, 128 + sig), stderr
        assert "Exception ignored" not in stderr
        assert stderr in ("", f"ppipe: interrupted by {sig.name}; every stage was stopped\n"), stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["--help"],
        ["--explain", "seq 3 | cat"],
        ["seq 100000"],
        ["--fork", "2", "seq 100000"],
        ["seq", "1", "3"],
        ["--bogus", "x"],
    ],
)
def test_a_closed_stdout_never_prints_a_traceback(argv: list[str]) -> None:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [SCRIPT, *argv], stdout=writer, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60, env=ENV
        )
    finally:
        os.close(writer)
    assert b"Traceback" not in result.stderr and b"internal error" not in result.stderr, result.stderr
    assert b"Exception ignored" not in result.stderr

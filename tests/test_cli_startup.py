"""Signals and a closed stdout at any moment of start-up: ppipe ends quietly, with the status a shell expects."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sysconfig
import threading
from pathlib import Path

import pytest

import ppipe

from helpers import ENV, SEED, seeded

#: The console script itself: the ``ppipe`` on PATH may be a wrapper (pyenv's shim is a bash script).
SCRIPT = str(Path(sysconfig.get_path("scripts")) / "ppipe")
#: ppipe's own modules. Python's start-up (``site`` and ``.pth`` files: "init_import_site") and the console
#: script's lines before it imports ppipe run before any of ppipe's code and are not ppipe's to handle;
#: nor is the package's ``__init__``, which Python runs before the entry module (see the report).
#: Its files, by the package's own directory: a checkout named ``ppipe`` holds a venv whose files are not ppipe's.
_OWN_FRAME = re.compile(rf'File "{re.escape(str(Path(ppipe.__file__).parent))}/(?!__init__\.py")[^"]*\.py"')
#: What Python says when the interrupt lands in its own start-up, before any of ppipe's code: its
#: traceback through ``site``, or the runpy line "failed to set __main__.__loader__".
_BEFORE_PPIPE = ("init_import_site", "Traceback", "__main__.__loader__")


def before_ppipe(stderr: str) -> bool:
    """Whether the interrupt landed before any of ppipe's code ran: Python's own traceback or runpy's line, or
    the bare ``KeyboardInterrupt`` Python prints when it comes before any Python frame (reading the script)."""
    return any(mark in stderr for mark in _BEFORE_PPIPE) or stderr == "KeyboardInterrupt\n"


def interrupted_at_random(
    sig: signal.Signals, runs: int, rng: random.Random, latest: float = 0.08, at_once: int = 1
) -> list[subprocess.CompletedProcess[bytes]]:
    """``runs`` starts of ``ppipe "sleep 5 | cat"``, each sent ``sig`` after a random delay up to ``latest``
    seconds (from ``rng``), ``at_once`` of them at a time; the delay of each is its ``args[-1]``."""
    delays = [rng.uniform(0, latest) for _ in range(runs)]
    results: list[subprocess.CompletedProcess[bytes]] = []

    def one(delay: float) -> None:
        process = subprocess.Popen(
            [SCRIPT, "sleep 5 | cat"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
        )
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(sig)
        out, err = process.communicate(timeout=30)
        results.append(subprocess.CompletedProcess([*process.args, f"{delay:.4f}"], process.returncode, out, err))

    def some(share: list[float]) -> None:
        for delay in share:
            one(delay)

    threads = [threading.Thread(target=some, args=(delays[k::at_once],)) for k in range(at_once)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.skipif(not os.path.exists(SCRIPT), reason="needs the installed console script")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_ends_ppipe_quietly(sig: signal.Signals) -> None:
    """Killed by the signal (a shell shows 130 or 143) or, once the run had started, the run's own 128+N."""
    for result in interrupted_at_random(sig, 40, seeded(f"{sig.name} during start-up")):
        stderr = result.stderr.decode(errors="replace")
        where = f"PPIPE_TEST_SEED={SEED}, {sig.name} after {result.args[-1]} s: {stderr}"
        assert not _OWN_FRAME.search(stderr), where
        if before_ppipe(stderr):
            continue  # the interrupt landed before ppipe's code ran (see _OWN_FRAME)
        assert result.returncode in (-sig, 128 + sig), where
        assert "Exception ignored" not in stderr, where
        assert stderr in ("", f"ppipe: interrupted by {sig.name}; every stage was stopped\n"), where


@pytest.mark.skipif(not os.path.exists(SCRIPT), reason="needs the installed console script")
def test_ctrl_c_at_any_moment_of_start_up_is_never_an_internal_error() -> None:
    """A SIGINT while Python is half way through an import comes out of it as KeyboardInterrupt, or wrapped (a
    dataclass's fields: "Error calling __set_name__"), or as a module left half made; each time it is the
    interrupt, never a bug. It came once in 50 to 150 starts, so this sends it at random moments of the first
    quarter second (most of start-up) to 240 starts, four at a time."""
    results = interrupted_at_random(signal.SIGINT, 240, seeded("Ctrl-C during start-up"), latest=0.25, at_once=4)
    for result in results:
        stderr = result.stderr.decode(errors="replace")
        where = f"PPIPE_TEST_SEED={SEED}, SIGINT after {result.args[-1]} s: {stderr}"
        assert "internal error" not in stderr, where
        assert not _OWN_FRAME.search(stderr), where
        if before_ppipe(stderr):
            continue
        assert result.returncode in (-signal.SIGINT, 128 + signal.SIGINT), where


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

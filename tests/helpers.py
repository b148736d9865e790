"""What the tests share: run the installed ``ppipe`` for real, wait for a condition instead of sleeping, read the
process table from ``/proc``, mount a small disk, and seed what is random so a failure can be replayed.

Every wait polls the real thing (a file, a line, a process in ``/proc``) until a deadline and fails saying what
never happened; no test sleeps to let something happen.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import random
import shlex
import shutil
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

import ppipe as ppipe_api

T = TypeVar("T")

# What decides whether ppipe draws its view, and how: CI runs the suite with CI=true, a developer may run
# it under make -j or with PPIPE_DISPLAY set. The tests choose for themselves (a pty, --display ...):
# none of it is inherited, so the suite behaves the same wherever it runs. Done here, before ENV is taken.
for _name in ("CI", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PPIPE_DISPLAY", "PPIPE_PROGRESS", "NO_COLOR"):
    os.environ.pop(_name, None)
if os.environ.get("TERM") == "dumb":
    del os.environ["TERM"]

#: The installed console script; the CLI tests go through it, as a user would.
PPIPE = shutil.which("ppipe") or "ppipe"
#: A predictable environment for comparisons with bash.
ENV = {**os.environ, "LC_ALL": "C", "LANG": "C"}
#: How often a wait looks again: often enough that a test waits no longer than the thing takes.
POLL = 0.01


# ---------------------------------------------------------------- running ppipe and bash


def ppipe(
    *args: str,
    input: bytes | None = None,
    timeout: float = 60,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Runs the installed ``ppipe`` with ``args`` and returns what it did."""
    return subprocess.run(
        [PPIPE, *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        env=env or ENV,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def write_report(directory: Path, name: str, *args: str) -> Path:
    """Runs ppipe quietly in ``directory`` with ``--report NAME.json`` and ``args``; the report's path."""
    report = directory / f"{name}.json"
    result = ppipe("-q", "--report", str(report), *args, cwd=str(directory))
    assert report.exists(), result.stderr
    return report


def peak_rss_of_run(pipeline: str) -> tuple[bytes, int]:
    """Runs ``pipeline`` with ``ppipe.run`` in a fresh interpreter: its captured output, and the interpreter's
    peak resident memory in MiB (what ppipe held while it moved the bytes)."""
    code = (
        "import ppipe\n"
        f"r = ppipe.run({pipeline!r}, stdout=ppipe.CAPTURE)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(int(hwm) // 1024)\n"
        "import sys; sys.stdout.flush(); sys.stdout.buffer.write(r.stdout)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=120)
    peak, output = done.stdout.split(b"\n", 1)
    return output, int(peak)


def start(
    *args: str, stdin: int | None = subprocess.DEVNULL, stdout: int | None = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """The installed ``ppipe`` with ``args`` in the background, its stderr piped; the caller waits for it."""
    return subprocess.Popen([PPIPE, *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=ENV)


@contextlib.contextmanager
def killed_at_end(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """``process`` for the block; killed and reaped when it ends, however (a failed wait leaves nothing behind)."""
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def run_captured(text: str, **kwargs: Any) -> ppipe_api.RunResult:
    """``ppipe.run(text)`` in this process, its stdout captured and the stages' stderr thrown away (unless given)."""
    kwargs.setdefault("stdout", ppipe_api.CAPTURE)
    kwargs.setdefault("stderr", os.open(os.devnull, os.O_WRONLY))
    return ppipe_api.run(text, **kwargs)


def verdicts(result: ppipe_api.RunResult) -> list[str]:
    """Each stage's verdict, in order (``ok``, ``failed``, ``broken-pipe`` ...)."""
    return [s.verdict.value for s in result.stages]


def bash(
    script: str, input: bytes | None = None, timeout: float = 60, cwd: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Runs ``script`` under ``bash -o pipefail -c``, the reference ppipe is compared with."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        env=ENV,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def python_stage(code: str) -> str:
    """A pipeline stage running ``code`` in this Python, quoted for the pipeline text."""
    return shlex.join([sys.executable, "-c", code])


# ---------------------------------------------------------------- waiting for a condition


def wait_until(condition: Callable[[], T], what: str, timeout: float = 10, interval: float = POLL) -> T:
    """Polls ``condition`` until it returns something true, and returns that; fails saying ``what`` never
    happened once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def poll(read: Callable[[], T], until: Callable[[T], bool], timeout: float, interval: float = POLL) -> T:
    """Reads ``read()`` until ``until`` holds for what it read or ``timeout`` seconds have passed, and returns the last
    reading, for the caller to assert on (so that a failure shows what was found, not only that time ran out)."""
    deadline = time.monotonic() + timeout
    while not until(value := read()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


def wait_for_lines(path: Path, count: int, timeout: float = 30) -> str:
    """The text of ``path`` once it holds ``count`` whole lines."""

    def text() -> str | None:
        with contextlib.suppress(FileNotFoundError):
            content = path.read_text()
            if content.count("\n") >= count:
                return content
        return None

    return wait_until(text, f"{path} never had {count} lines", timeout)


def queued_in_pipe(fd: int) -> int:
    """How many bytes the pipe whose read end is ``fd`` holds, unread."""
    queued = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, queued)
    return queued[0]


def wait_for_stalled_pipe(fd: int, timeout: float = 30, still: float = 0.2) -> int:
    """Waits until the pipe whose read end is ``fd`` holds data and has stopped filling (its writer is blocked on it,
    or has stopped writing) for ``still`` seconds; returns how many bytes it holds.

    "Full" cannot be read off the byte count: a pipe filled by splice(2) holds part-filled pages, so its writer
    blocks with far fewer bytes queued than the pipe's size.
    """
    deadline = time.monotonic() + timeout
    queued, since = -1, time.monotonic()
    while True:
        now, found = time.monotonic(), queued_in_pipe(fd)
        if found != queued:
            queued, since = found, now
        elif queued > 0 and now - since >= still:
            return queued
        if now > deadline:
            raise AssertionError(f"the pipe never stalled with data in it within {timeout} s ({queued} bytes)")
        time.sleep(POLL)


def written_by(pid: int) -> int | None:
    """How many bytes process ``pid`` has written in all (``wchar`` of ``/proc/<pid>/io``); None where unreadable."""
    try:
        with open(f"/proc/{pid}/io") as handle:
            fields = dict(line.split(": ", 1) for line in handle.read().splitlines())
    except (OSError, ValueError):
        return None
    return int(fields["wchar"])


def wait_for_stalled_writer(pid: int, timeout: float = 30, still: float = 0.2) -> int:
    """Waits until process ``pid`` has written nothing more for ``still`` seconds (it is blocked on a full pipe, or
    done writing); returns how many bytes it has written in all."""
    deadline = time.monotonic() + timeout
    written, since = -1, time.monotonic()
    while True:
        now, found = time.monotonic(), written_by(pid)
        assert found is not None, f"cannot read what process {pid} has written (/proc/{pid}/io)"
        if found != written:
            written, since = found, now
        elif now - since >= still:
            return written
        if now > deadline:
            raise AssertionError(f"process {pid} never stopped writing within {timeout} s ({written} bytes)")
        time.sleep(POLL)


# ---------------------------------------------------------------- the process table


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command (state, ppid, pgrp, session, ...), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def parent_of(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def session_of(pid: int) -> int:
    fields = stat_fields(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[3])


def pids_alive(pids: Sequence[int]) -> list[int]:
    """The pids in ``pids`` that still exist and are not zombies."""
    return [pid for pid in pids if (fields := stat_fields(pid)) is not None and fields[0] != "Z"]


def wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """The pids of ``pids`` still alive after up to ``timeout`` seconds for them to end (none, if all did)."""
    return poll(lambda: pids_alive(pids), lambda alive: not alive, timeout)


def children(pid: int) -> list[int]:
    """``pid``'s children, from ``/proc/<pid>/task/<pid>/children``; none if it is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def descendants(pid: int, generation: int) -> list[int]:
    """The processes ``generation`` levels below ``pid`` (1: its children)."""
    level = [pid]
    for _ in range(generation):
        level = [child for parent in level for child in children(parent)]
    return level


def wait_for_children(pid: int, count: int, timeout: float = 10) -> list[int]:
    """``pid``'s children once it has ``count`` of them."""
    return wait_until(
        lambda: found if len(found := children(pid)) >= count else None,
        f"{pid} did not start {count} children",
        timeout,
    )


def processes() -> dict[int, tuple[int, str]]:
    """Every process now: pid -> (parent, state)."""
    table: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := stat_fields(int(name))) is not None:
            table[int(name)] = (int(fields[1]), fields[0])
    return table


def descendants_of(root: int) -> dict[int, str]:
    """Every descendant of ``root`` now, with its state (``Z`` for a zombie)."""
    table = processes()
    below, found = [root], {}
    while below:
        pid = below.pop()
        for child, (parent, state) in table.items():
            if parent == pid and child not in found:
                found[child] = state
                below.append(child)
    return found


def command_of(pid: int) -> str:
    """``pid``'s command name (``/proc/<pid>/comm``), or ``""`` if it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def with_argument(argument: str) -> list[int]:
    """The living processes that have ``argument`` as one whole argument (a unique ``sleep`` duration, say)."""
    found = []
    wanted = argument.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if wanted in argv and (fields := stat_fields(int(name))) is not None and fields[0] != "Z":
            found.append(int(name))
    return found


def wait_for_argument(argument: str, count: int = 1, timeout: float = 10) -> list[int]:
    """The processes carrying ``argument`` once ``count`` of them have started."""
    return wait_until(
        lambda: found if len(found := with_argument(argument)) >= count else None,
        f"no {count} processes with {argument} started",
        timeout,
    )


def own_children_named(name: str) -> list[int]:
    """This process's children (zombies included) whose command is ``name``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        comm = data[data.index(b"(") + 1 : data.rindex(b")")].decode()
        if comm == name and int(data.rsplit(b")", 1)[1].split()[1]) == os.getpid():
            found.append(int(entry))
    return found


# ---------------------------------------------------------------- disks and seeds


@contextlib.contextmanager
def tmpfs(where: Path, size: str, options: str = "") -> Iterator[Path]:
    """A real tmpfs of ``size`` (``64k``, ``2m``) mounted on ``where``, unmounted whatever happens in the block.

    ``options`` are more mount options (``ro``: a disk nobody may write, root included). Skips the test where it
    cannot be mounted (not root, or no permission in this container).
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(exist_ok=True)
    given = f"size={size}" + (f",{options}" if options else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", given, "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


#: The seed of every random choice the tests make; ``PPIPE_TEST_SEED=n pytest ...`` replays a failure.
SEED = int(os.environ.get("PPIPE_TEST_SEED", "20261207"))


def seeded(name: str) -> random.Random:
    """A generator for the test called ``name``, from ``SEED``: the same choices on every run with the same seed.

    Prints the seed (shown with a failure) so a failing run can be replayed with ``PPIPE_TEST_SEED``.
    """
    print(f"{name}: PPIPE_TEST_SEED={SEED}")
    return random.Random(f"{SEED}:{name}")

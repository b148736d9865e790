#!/usr/bin/env python3
"""ppipe's benchmark runner: ppipe against bash and its other peers, interleaved, on this machine.

Every workload runs each of its variants once per repetition, round-robin
(bash, bash+pv, ppipe, bash, bash+pv, ppipe, ...), so that a slow minute of
the machine hurts every variant alike. The table gives medians and the
ratio to the workload's baseline (the first variant, bash or sh = 1.00).

What is measured, and how:

* wall time: from ``Popen`` to the moment the process has exited
  (``waitid(WNOWAIT)``, before it is reaped);
* tree CPU: user+sys of the process and every descendant it reaped, from
  ``wait4``'s rusage;
* ppipe's own CPU (user+sys of the ppipe process alone, not its stages):
  ``/proc/<pid>/stat`` utime+stime, sampled at ~20 Hz while it runs and read
  once more when it has exited but is not yet reaped (a zombie's stat still
  holds its final times; the stages' times are in cutime/cstime, apart).
  That exact final read is reported; the last 20 Hz sample is kept in the
  JSON as ``self_cpu_sampled`` and used when the final read fails;
* ppipe's peak RSS: ``VmHWM`` from ``/proc/<pid>/status``, sampled at ~20 Hz,
  last value before exit (a zombie has no memory left to report). wait4's
  ``ru_maxrss`` (the largest of ppipe and its stages) is in the JSON too;
* ppipe's own read()/write() calls and bytes: ``/proc/<pid>/task/<pid>/io``
  of the exited, unreaped main thread (``/proc/<pid>/io`` would include the
  stages ppipe reaped); printed as the average read size, a sign of how many
  trips through the event loop each MB costs.

Each run's output is checked (``wc -c`` must print the byte count, ...);
a wrong output, a non-zero exit or a timeout marks the run invalid, and
invalid runs are left out of the medians.

Only the standard library is used. Linux only (``/proc``, ``waitid``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MB = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_INTERVAL = 0.05  # 20 Hz
REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "LC_ALL": "C"}  # the same locale for every variant (grep is locale-sensitive)

Check = Callable[[bytes], "str | None"]


# --------------------------------------------------------------------------- measuring one run


@dataclass
class Run:
    """One process run and what was measured about it."""

    workload: str
    variant: str
    rep: int
    wall: float = 0.0
    returncode: int | None = None
    valid: bool = False
    reason: str = ""
    tree_cpu: float | None = None
    tree_maxrss_kib: int | None = None
    self_cpu: float | None = None
    self_cpu_sampled: float | None = None
    self_user: float | None = None
    self_sys: float | None = None
    peak_rss_kib: int | None = None
    self_reads: int | None = None
    self_read_bytes: int | None = None
    self_writes: int | None = None
    self_write_bytes: int | None = None
    samples: int = 0
    stdout: str = ""
    stderr_tail: str = ""


def _read_stat(pid: int) -> tuple[int, int, int, int] | None:
    """utime, stime, cutime, cstime of ``pid`` in clock ticks, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])


def _read_thread_io(pid: int) -> dict[str, int] | None:
    """The main thread's own I/O counters (rchar, syscr, ...): unlike /proc/<pid>/io, no reaped children's."""
    try:
        with open(f"/proc/{pid}/task/{pid}/io", encoding="ascii") as handle:
            return {key: int(value) for key, value in (line.split(":") for line in handle if ":" in line)}
    except (OSError, ValueError):
        return None


def _read_hwm_kib(pid: int) -> int | None:
    """``VmHWM`` (peak resident set) of ``pid`` in KiB, or None (gone, or a zombie)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class Sampler(threading.Thread):
    """Reads a process's own CPU time and peak RSS from /proc at ~20 Hz until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.halt = threading.Event()
        self.cpu_ticks: int | None = None
        self.hwm_kib: int | None = None
        self.samples = 0

    def run(self) -> None:
        while True:
            self.sample()
            if self.halt.wait(SAMPLE_INTERVAL):
                return

    def sample(self) -> None:
        stat = _read_stat(self.pid)
        if stat is not None:
            self.cpu_ticks = stat[0] + stat[1]
        hwm = _read_hwm_kib(self.pid)
        if hwm is not None:
            self.hwm_kib = hwm
        self.samples += 1

    def stop(self) -> None:
        self.halt.set()
        self.join()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def measure(
    run: Run, argv: Sequence[str], timeout: float, check: Check, sample: bool = False, stdin_path: str | None = None
) -> Run:
    """Runs ``argv`` once in its own process group, fills ``run`` in, and returns it."""
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(tempfile.TemporaryFile())
        err = stack.enter_context(tempfile.TemporaryFile())
        stdin = stack.enter_context(open(stdin_path, "rb")) if stdin_path else subprocess.DEVNULL
        timed_out = _execute(run, argv, timeout, sample, stdin, out, err)
        if run.returncode is None:  # never started
            return run
        out.seek(0)
        output = out.read(64 * KIB)
        err.seek(0)
        error_text = err.read()[-2 * KIB :].decode("utf-8", "replace").strip()
    run.stdout = output.decode("utf-8", "replace").strip()[:200]
    run.stderr_tail = error_text[-500:]
    if timed_out:
        run.reason = f"timed out after {timeout:g} s"
    elif run.returncode != 0:
        last = error_text.splitlines()[-1] if error_text else ""
        run.reason = f"exit status {run.returncode}" + (f": {last[:160]}" if last else "")
    else:
        run.reason = check(output) or ""
    run.valid = not run.reason
    return run


def _execute(
    run: Run, argv: Sequence[str], timeout: float, sample: bool, stdin: IO[bytes] | int, out: IO[bytes], err: IO[bytes]
) -> bool:
    """Starts, watches and reaps one process; fills ``run``'s measurements; returns whether it timed out."""
    timed_out = threading.Event()
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(list(argv), stdin=stdin, stdout=out, stderr=err, env=ENV, start_new_session=True)
    except OSError as error:
        run.reason = f"cannot start: {error}"
        return False
    sampler = Sampler(proc.pid) if sample else None
    if sampler:
        sampler.start()

    def on_timeout() -> None:
        timed_out.set()
        _kill_group(proc.pid)

    timer = threading.Timer(timeout, on_timeout)
    timer.daemon = True
    timer.start()
    final: tuple[int, int, int, int] | None = None
    io: dict[str, int] | None = None
    try:
        # Exited but not reaped: the pid (and the zombie's /proc/<pid>/stat) stay ours.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        run.wall = time.perf_counter() - start
        if sample:
            final = _read_stat(proc.pid)
            io = _read_thread_io(proc.pid)
    finally:
        timer.cancel()
        if sampler:
            sampler.stop()
        _kill_group(proc.pid)  # anything the run left behind (normally nothing)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    run.returncode = proc.returncode
    run.tree_cpu = usage.ru_utime + usage.ru_stime
    run.tree_maxrss_kib = usage.ru_maxrss
    if sampler:
        run.samples = sampler.samples
        run.peak_rss_kib = sampler.hwm_kib
        if sampler.cpu_ticks is not None:
            run.self_cpu_sampled = sampler.cpu_ticks / CLK_TCK
        if final is not None:
            run.self_user, run.self_sys = final[0] / CLK_TCK, final[1] / CLK_TCK
            run.self_cpu = round(run.self_user + run.self_sys, 3)
        else:
            run.self_cpu = run.self_cpu_sampled
        if io is not None:
            run.self_reads, run.self_read_bytes = io.get("syscr"), io.get("rchar")
            run.self_writes, run.self_write_bytes = io.get("syscw"), io.get("wchar")
    return timed_out.is_set()


# --------------------------------------------------------------------------- output checks


def expect_number(expected: int) -> Check:
    """The output must be exactly one integer, ``expected`` (what wc -c / wc -l print)."""

    def check(output: bytes) -> str | None:
        text = output.decode("utf-8", "replace").strip()
        return None if text == str(expected) else f"wrong output {text[:60]!r}, expected {expected}"

    return check


def expect_sum(expected: int) -> Check:
    """The output's integers (one per line, e.g. per-worker ``grep -c``) must add up to ``expected``."""

    def check(output: bytes) -> str | None:
        try:
            total = sum(int(line) for line in output.split())
        except ValueError:
            return f"non-numeric output {output[:60]!r}"
        return None if total == expected else f"counts add up to {total}, expected {expected}"

    return check


def expect_empty(output: bytes) -> str | None:
    return None if not output.strip() else f"unexpected output {output[:60]!r}"


def expect_in(needle: bytes) -> Check:
    """The output must hold ``needle`` (what a terminal showed last)."""

    def check(output: bytes) -> str | None:
        return None if needle in output else f"{needle!r} not in the output's last bytes"

    return check


def expect_prefix(prefix: str) -> Check:
    def check(output: bytes) -> str | None:
        text = output.decode("utf-8", "replace").strip()
        return None if text.startswith(prefix) else f"output {text[:60]!r} does not start with {prefix!r}"

    return check


def count_without_digit(n: int, digit: int) -> int:
    """How many of 0..n have no ``digit`` (1-9) in their decimal form."""
    text = str(n)
    count = 0
    for position, char in enumerate(text):
        value = int(char)
        free = len(text) - position - 1
        count += (value - (1 if digit < value else 0)) * 9**free
        if value == digit:
            return count
    return count + 1  # n itself


def lines_with_digit(n: int, digit: int) -> int:
    """How many lines of ``seq 1 n`` contain ``digit``: what ``grep DIGIT | wc -l`` prints."""
    return n + 1 - count_without_digit(n, digit)


def seq_bytes(n: int) -> int:
    """Size of ``seq 1 n``'s output."""
    total, digits = 0, 1
    while 10 ** (digits - 1) <= n:
        low, high = 10 ** (digits - 1), min(n, 10**digits - 1)
        total += (high - low + 1) * (digits + 1)
        digits += 1
    return total


def size_arg(nbytes: int) -> str:
    """``head -c`` spelling of a size: 2G, 256M or plain bytes."""
    for unit, suffix in ((GIB, "G"), (MIB, "M"), (KIB, "K")):
        if nbytes % unit == 0:
            return f"{nbytes // unit}{suffix}"
    return str(nbytes)


# --------------------------------------------------------------------------- workloads


@dataclass
class Variant:
    name: str
    argv: list[str]
    check: Check
    sample: bool = False  # is this ppipe? then measure its own CPU and RSS
    stdin_path: str | None = None


@dataclass
class Workload:
    name: str
    description: str
    kind: str  # "throughput" (MB/s, ratio = speed / baseline speed) or "time" (ratio = time / baseline time)
    variants: list[Variant] = field(default_factory=list)
    nbytes: int = 0  # bytes through the pipeline's first pipe, for MB/s
    repeat: int = 5
    timeout: float = 120.0
    unit: str = "s"  # "s" or "ms" for the median column
    skip: str = ""  # why the workload is not run
    notes: list[str] = field(default_factory=list)
    setup: Callable[[], None] | None = None
    runs: list[Run] = field(default_factory=list)


@dataclass
class Tools:
    ppipe: list[str]
    python: str
    bash: str
    pv: str | None
    parallel: str | None
    ppipe_help: str


def bash_variant(tools: Tools, name: str, pipeline: str, check: Check) -> Variant:
    return Variant(name, [tools.bash, "-c", pipeline], check)


def ppipe_variant(tools: Tools, pipeline: str, check: Check, *options: str) -> Variant:
    return Variant("ppipe", [*tools.ppipe, *options, pipeline], check, sample=True)


@dataclass(frozen=True)
class Sizes:
    """How big each workload is: full, or --quick."""

    two: int
    eight: int
    lines: int
    memory: int
    startup_repeat: int
    fork_lines: int
    batch_items: int
    batch_memory: int
    procsub: int  # bytes of each file procsub sorts

    @classmethod
    def pick(cls, quick: bool, repeat: int) -> Sizes:
        if quick:
            return cls(
                two=256 * MIB,
                eight=128 * MIB,
                lines=2_000_000,
                memory=256 * MIB,
                startup_repeat=10,
                fork_lines=1_000_000,
                batch_items=200,
                batch_memory=10_000,
                procsub=20 * MB,
            )
        return cls(
            two=2 * GIB,
            eight=1 * GIB,
            lines=20_000_000,
            memory=1 * GIB,
            startup_repeat=max(20, 4 * repeat),
            fork_lines=10_000_000,
            batch_items=1000,
            batch_memory=100_000,
            procsub=200 * MB,
        )


CATS = 8  # cat stages in throughput-8
MEMORY_RATE = "200M"  # pv -L: the slow consumer's pace


def throughput_2(tools: Tools, sizes: Sizes, repeat: int) -> Workload:
    """One pumped edge in ppipe (head -> ppipe -> wc); wc writes straight to ppipe's stdout."""
    size = sizes.two
    pipeline = f"head -c {size_arg(size)} /dev/zero | wc -c"
    w = Workload("throughput-2", pipeline, "throughput", nbytes=size, repeat=repeat)
    w.variants.append(bash_variant(tools, "bash", pipeline, expect_number(size)))
    if tools.pv:
        with_pv = f"head -c {size_arg(size)} /dev/zero | pv -q | wc -c"
        w.variants.append(bash_variant(tools, "bash+pv", with_pv, expect_number(size)))
    else:
        w.notes.append("bash+pv skipped: pv not found")
    w.variants.append(ppipe_variant(tools, pipeline, expect_number(size)))
    return w


def throughput_8(tools: Tools, sizes: Sizes, repeat: int) -> Workload:
    """head, 8 cats, wc: 10 stages, 9 pipes (9 pumped edges in ppipe)."""
    size = sizes.eight
    pipeline = f"head -c {size_arg(size)} /dev/zero | " + "cat | " * CATS + "wc -c"
    w = Workload("throughput-8", pipeline, "throughput", nbytes=size, repeat=repeat)
    w.variants.append(bash_variant(tools, "bash", pipeline, expect_number(size)))
    w.variants.append(ppipe_variant(tools, pipeline, expect_number(size)))
    return w


def lines_workload(tools: Tools, sizes: Sizes, repeat: int) -> Workload:
    """Many short lines; MB/s is of seq's output (the first pipe)."""
    pipeline = f"seq 1 {sizes.lines} | grep 7 | wc -l"
    expected = expect_number(lines_with_digit(sizes.lines, 7))
    w = Workload("lines", pipeline, "throughput", nbytes=seq_bytes(sizes.lines), repeat=repeat)
    w.variants.append(bash_variant(tools, "bash", pipeline, expected))
    w.variants.append(ppipe_variant(tools, pipeline, expected))
    return w


def view_cost(tools: Tools, sizes: Sizes, repeat: int) -> list[Workload]:
    """What the live view costs: ppipe with the view drawn (into a file) against ppipe without.

    The view counts every line (it shows them); the ``+view --no-lines``
    row leaves the counting out, so the difference between the two view
    rows is what the counters cost, and the rest is rich (importing it, ten
    redraws a second). ``+lines`` counts every line without the view.
    """
    workloads = []
    lines_pipeline = f"seq 1 {sizes.lines} | grep 7 | wc -l"
    bytes_pipeline = f"head -c {size_arg(sizes.eight)} /dev/zero | wc -c"
    for name, pipeline, nbytes, check in (
        ("view-lines", lines_pipeline, seq_bytes(sizes.lines), expect_number(lines_with_digit(sizes.lines, 7))),
        ("view-bytes", bytes_pipeline, sizes.eight, expect_number(sizes.eight)),
    ):
        w = Workload(name, pipeline, "throughput", nbytes=nbytes, repeat=repeat)
        w.variants.append(bash_variant(tools, "bash", pipeline, check))
        w.variants.append(Variant("ppipe", [*tools.ppipe, "--display", "never", pipeline], check, sample=True))
        w.variants.append(Variant("ppipe+view", [*tools.ppipe, "--display", "always", pipeline], check, sample=True))
        w.variants.append(
            Variant(
                "ppipe+view --no-lines",
                [*tools.ppipe, "--display", "always", "--no-lines", pipeline],
                check,
                sample=True,
            )
        )
        w.variants.append(
            Variant("ppipe+lines", [*tools.ppipe, "--display", "never", "--lines", pipeline], check, sample=True)
        )
        workloads.append(w)
    return workloads


#: The terminal the terminal workloads draw on: as wide and tall as the view's usual pane.
TERMINAL_SIZE = ("100", "30")


def terminal_output(tools: Tools, sizes: Sizes, repeat: int) -> list[Workload]:
    """Output to the terminal the live view is drawn on: what the view costs the pipeline's own output.

    ``terminal-pty`` drains a pseudo-terminal as fast as it is written (the
    commands' own cost); ``terminal-tmux`` draws every byte in a tmux pane, as
    a person's terminal does (skipped without tmux). bash, ppipe with the view
    and ppipe with ``--display never`` run the same pipeline; the output check
    reads the last number the terminal got.
    """
    lines = sizes.lines // 20
    pipeline = f"seq 1 {lines} | cat"
    runner = [tools.python, str(REPO / "benchmarks" / "terminal.py")]
    workloads = []
    for kind in ("pty", "tmux"):
        w = Workload(f"terminal-{kind}", f"{pipeline} on a {'x'.join(TERMINAL_SIZE)} {kind}", "time", repeat=repeat)
        if kind == "tmux" and shutil.which("tmux") is None:
            w.skip = "needs tmux"
        on_terminal = [*runner, kind, *TERMINAL_SIZE, "--"]
        check = expect_in(str(lines).encode())
        w.variants += [
            Variant("bash", [*on_terminal, tools.bash, "-c", pipeline], check),
            Variant("ppipe --display never", [*on_terminal, *tools.ppipe, "--display", "never", pipeline], check),
            Variant("ppipe (view)", [*on_terminal, *tools.ppipe, pipeline], check),
        ]
        workloads.append(w)
    return workloads


#: One line of the generated log the ``exact-lines/text`` workload reads (70 bytes, like a service's log).
LOG_LINE = "2026-12-07T02:10:{second:02d}Z INFO request {number:07d} served in {ms:03d} ms from cache\n"


def exact_lines(tools: Tools, sizes: Sizes, repeat: int, tmpdir: str) -> list[Workload]:
    """What exact line counts cost: bash, ppipe counting nothing, ``--lines``, and the view drawn into a file.

    Every line of every edge is counted under ``--lines`` and under the
    view, so the two rows cost the same counting; the view's row adds
    rich. ``text`` is a 2-stage stream of log lines read from a file
    (``cat FILE | wc -l``: one spliced edge, every byte of it text),
    ``zeros`` the same with no newline at all (the cost of copying alone),
    ``seq`` the many-short-lines pipeline of the ``lines`` workload.
    """
    text_path = os.path.join(tmpdir, "exact-lines.log")
    block = "".join(LOG_LINE.format(second=i % 60, number=i, ms=i % 997) for i in range(16384)).encode()
    blocks = max(1, sizes.two // len(block))
    text_pipeline = f"cat {shlex.quote(text_path)} | wc -l"
    zeros_pipeline = f"head -c {size_arg(sizes.two)} /dev/zero | wc -c"
    seq_pipeline = f"seq 1 {sizes.lines} | grep 7 | wc -l"
    workloads = []
    for name, pipeline, nbytes, check in (
        ("exact-lines/text", text_pipeline, blocks * len(block), expect_number(blocks * 16384)),
        ("exact-lines/zeros", zeros_pipeline, sizes.two, expect_number(sizes.two)),
        ("exact-lines/seq", seq_pipeline, seq_bytes(sizes.lines), expect_number(lines_with_digit(sizes.lines, 7))),
    ):
        w = Workload(name, pipeline, "throughput", nbytes=nbytes, repeat=repeat)
        w.variants += [
            bash_variant(tools, "bash", pipeline, check),
            Variant("ppipe", [*tools.ppipe, "--display", "never", pipeline], check, sample=True),
            Variant("ppipe --lines", [*tools.ppipe, "--display", "never", "--lines", pipeline], check, sample=True),
            Variant("ppipe+view", [*tools.ppipe, "--display", "always", pipeline], check, sample=True),
        ]
        workloads.append(w)

    def make_text() -> None:
        with open(text_path, "wb") as handle:
            for _ in range(blocks):
                handle.write(block)

    workloads[0].setup = make_text
    return workloads


def startup(tools: Tools, sizes: Sizes) -> Workload:
    """The cost of starting at all."""
    w = Workload(
        "startup", "start and exit, nothing else", "time", repeat=sizes.startup_repeat, timeout=30.0, unit="ms"
    )
    w.variants += [
        Variant("sh -c true", ["sh", "-c", "true"], expect_empty),
        Variant("python3 -c pass", [tools.python, "-c", "pass"], expect_empty),
        Variant("import tornado", [tools.python, "-c", "import tornado.ioloop"], expect_empty),
        Variant("ppipe --version", [*tools.ppipe, "--version"], expect_prefix("ppipe"), sample=True),
        Variant("ppipe true", [*tools.ppipe, "true"], expect_empty, sample=True),
    ]
    w.notes.append(f"python3 = {tools.python} (ppipe's own interpreter)")
    return w


def memory(tools: Tools, sizes: Sizes, repeat: int) -> Workload:
    """A fast producer and a rate-limited consumer: ppipe must not buffer what the consumer has not taken."""
    size = sizes.memory
    pipeline = f"head -c {size_arg(size)} /dev/zero | pv -q -L {MEMORY_RATE} | wc -c"
    w = Workload("memory", pipeline, "time", nbytes=size, repeat=repeat)
    if not tools.pv:
        w.skip = "skipped (no pv)"
        return w
    w.variants.append(bash_variant(tools, "bash", pipeline, expect_number(size)))
    w.variants.append(ppipe_variant(tools, pipeline, expect_number(size)))
    return w


def fork(tools: Tools, sizes: Sizes, repeat: int, tmpdir: str) -> list[Workload]:
    """Split input across 2 shards against GNU parallel (``--pipe`` from a pipe, ``--pipepart`` from a file).

    Each shard (or job) prints its own ``wc -l``; the counts must add up.
    GNU parallel ``--pipe`` starts a job per block; ppipe keeps 2 shards and
    deals blocks round-robin. Both use 1 MiB blocks.
    """
    count = sizes.fork_lines
    input_path = os.path.join(tmpdir, "fork-input.txt")
    expected = expect_sum(count)
    piped = Workload(
        "fork-pipe",
        f"seq 1 {count} | (2 workers) wc -l",
        "throughput",
        nbytes=seq_bytes(count),
        repeat=repeat,
        timeout=300.0,
    )
    filed = Workload(
        "fork-file",
        f"(2 workers) wc -l < a file of seq 1 {count}",
        "throughput",
        nbytes=seq_bytes(count),
        repeat=repeat,
        timeout=300.0,
    )
    starts = Workload("fork-start", "16 workers running true", "time", repeat=max(5, repeat), timeout=60.0, unit="ms")
    workloads = [piped, filed, starts]
    if "--fork" not in tools.ppipe_help:
        for w in workloads:
            w.skip = "skipped (no --fork)"
        return workloads
    if not tools.parallel:
        for w in workloads:
            w.skip = "skipped (no GNU parallel)"
        return workloads
    ppipe_line = " ".join(shlex.quote(a) for a in tools.ppipe)
    piped.variants += [
        bash_variant(tools, "bash (1 wc)", f"seq 1 {count} | wc -l", expected),
        bash_variant(
            tools, "parallel --pipe -j2", f"seq 1 {count} | {tools.parallel} --pipe -j2 --block 1M wc -l", expected
        ),
        bash_variant(tools, "ppipe --fork 2", f"seq 1 {count} | {ppipe_line} --fork 2 'wc -l'", expected),
    ]
    filed.variants += [
        Variant("wc -l (1 proc)", ["wc", "-l"], expected, stdin_path=input_path),
        Variant(
            "parallel --pipepart -j2",
            [tools.parallel, "--pipepart", "-a", input_path, "-j2", "--block", "1M", "wc", "-l"],
            expected,
        ),
        Variant("ppipe --fork 2", [*tools.ppipe, "--fork", "2", "wc -l"], expected, sample=True, stdin_path=input_path),
    ]
    starts.variants += [
        Variant("parallel -j16 true", [tools.parallel, "-j16", "true", ":::", *map(str, range(1, 17))], expect_empty),
        Variant("ppipe --fork 16 true", [*tools.ppipe, "--fork", "16", "true"], expect_empty, sample=True),
        Variant("ppipe true", [*tools.ppipe, "true"], expect_empty, sample=True),
    ]

    def make_input() -> None:
        with open(input_path, "wb") as handle:
            subprocess.run(["seq", "1", str(count)], stdout=handle, check=True)

    filed.setup = make_input
    return workloads


def batch(tools: Tools, sizes: Sizes, repeat: int, tmpdir: str) -> Workload:
    """Per-task overhead: 1000 items, 2 at a time, each running ``true``, against GNU parallel's per-job cost."""
    count = sizes.batch_items
    items = os.path.join(tmpdir, "batch-items.txt")
    w = Workload("batch", f"{count} items, -j 2, each running true", "time", repeat=max(3, repeat // 2), timeout=300.0)
    if "--each" not in tools.ppipe_help:
        w.skip = "skipped (no --each)"
        return w
    if not tools.parallel:
        w.skip = "skipped (no GNU parallel)"
        return w
    w.variants += [
        Variant("parallel -j2 true ::::", [tools.parallel, "-j2", "true", "{}", "::::", items], expect_empty),
        Variant(
            "ppipe --each -j 2", [*tools.ppipe, "--each", items, "-j", "2", "true {item}"], expect_empty, sample=True
        ),
    ]
    w.notes.append("per item: (median time) / items; both keep 2 running at once")

    def make_items() -> None:
        with open(items, "w") as handle:
            handle.writelines(f"{i}\n" for i in range(count))

    w.setup = make_items
    return w


def batch_memory(tools: Tools, sizes: Sizes, tmpdir: str) -> Workload:
    """ppipe's peak RSS over a long batch against one a tenth as long: flat means nothing is kept per item done."""
    count = sizes.batch_memory
    w = Workload(
        "batch-memory", f"{count} items of true {{item}}, -j 2, against {count // 10}", "time", repeat=1, timeout=1800.0
    )
    if "--each" not in tools.ppipe_help:
        w.skip = "skipped (no --each)"
        return w
    paths = {n: os.path.join(tmpdir, f"batch-memory-{n}.txt") for n in (count // 10, count)}
    for n, path in paths.items():
        w.variants.append(
            Variant(
                f"ppipe --each ({n} items)",
                [*tools.ppipe, "--each", path, "-j", "2", "true {item}"],
                expect_empty,
                sample=True,
            )
        )
    w.notes.append("compare the peak RSS of the two: within ~1.2x is flat; kept per-item state shows as 10x")

    def make_items() -> None:
        for n, path in paths.items():
            with open(path, "w") as handle:
                handle.writelines(f"{i}\n" for i in range(n))

    w.setup = make_items
    return w


def fan_out(tools: Tools, sizes: Sizes, repeat: int) -> Workload:
    """One producer copied to two consumers: ppipe's group against bash's ``tee >(...)``."""
    size = sizes.eight
    head = f"head -c {size_arg(size)} /dev/zero"
    w = Workload("fan-out", f"{head} copied to 2 x wc -c", "throughput", nbytes=size, repeat=repeat)
    w.variants += [
        bash_variant(tools, "bash tee >(...)", f"{head} | tee >(wc -c > /dev/null) | wc -c", expect_number(size)),
        ppipe_variant(tools, f"{head} | {{ wc -c ; wc -c }}", expect_sum(2 * size)),
    ]
    return w


def seq_lines_for(nbytes: int) -> int:
    """The smallest n whose ``seq 1 n`` is at least ``nbytes`` long."""
    low, high = 1, nbytes
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if seq_bytes(middle) < nbytes else (low, middle)
    return low


def procsub(tools: Tools, sizes: Sizes, repeat: int, tmpdir: str) -> Workload:
    """Two process substitutions into one stage: ``diff <(sort a) <(sort b)`` on two files of 200 MB.

    ``a`` is ``seq 1 N`` and ``b`` the same lines backwards, so both sorts
    do the whole work and ``diff`` finds them equal (exit 0, no output). In
    ppipe each sort's output is a counted edge into diff's /dev/fd/63 or 62.
    """
    count = seq_lines_for(sizes.procsub)
    a, b = os.path.join(tmpdir, "procsub-a.txt"), os.path.join(tmpdir, "procsub-b.txt")
    pipeline = f"diff <(sort {a}) <(sort {b})"
    described = f"diff <(sort a) <(sort b), a and b {seq_bytes(count) / MB:.0f} MB each (seq 1 {count}, two orders)"
    w = Workload("procsub", described, "time", repeat=repeat, timeout=900.0)
    w.variants += [bash_variant(tools, "bash", pipeline, expect_empty), ppipe_variant(tools, pipeline, expect_empty)]

    def make_input() -> None:
        with open(a, "wb") as forwards:
            subprocess.run(["seq", "1", str(count)], stdout=forwards, check=True)
        with open(b, "wb") as backwards:
            subprocess.run(["seq", str(count), "-1", "1"], stdout=backwards, check=True)

    w.setup = make_input
    return w


def file_progress(tools: Tools, sizes: Sizes, repeat: int, tmpdir: str) -> Workload:
    """A stage reading a file named as its argument, with its percent and ETA read from /proc ten times a second.

    ``bash+pv`` is how a shell user gets a percent today (pv reads the file
    and pumps it); ppipe reads grep's file position instead. ``+progress``
    reports JSON every 0.1 s, ``+view`` draws the view (into a file).
    """
    path = os.path.join(tmpdir, "file-progress.txt")
    pipeline = f"grep 7 {path} | wc -l"
    expected = expect_number(lines_with_digit(sizes.lines, 7))
    w = Workload("file-progress", f"grep 7 FILE | wc -l, FILE of seq 1 {sizes.lines}", "throughput", repeat=repeat)
    w.nbytes = seq_bytes(sizes.lines)
    w.variants.append(bash_variant(tools, "bash", pipeline, expected))
    if tools.pv:
        w.variants.append(bash_variant(tools, "bash+pv", f"pv -q {path} | grep 7 | wc -l", expected))
    else:
        w.notes.append("bash+pv skipped: pv not found")
    w.variants.append(Variant("ppipe", [*tools.ppipe, "--display", "never", pipeline], expected, sample=True))
    w.variants.append(
        Variant(
            "ppipe+progress",
            [*tools.ppipe, "--progress", "json", "--progress-interval", "0.1", pipeline],
            expected,
            sample=True,
        )
    )
    w.variants.append(Variant("ppipe+view", [*tools.ppipe, "--display", "always", pipeline], expected, sample=True))

    def make_input() -> None:
        with open(path, "wb") as handle:
            subprocess.run(["seq", "1", str(sizes.lines)], stdout=handle, check=True)

    w.setup = make_input
    return w


def build_workloads(tools: Tools, quick: bool, repeat: int, tmpdir: str) -> list[Workload]:
    sizes = Sizes.pick(quick, repeat)
    return [
        throughput_2(tools, sizes, repeat),
        throughput_8(tools, sizes, repeat),
        lines_workload(tools, sizes, repeat),
        startup(tools, sizes),
        memory(tools, sizes, repeat),
        *view_cost(tools, sizes, repeat),
        *terminal_output(tools, sizes, repeat),
        *fork(tools, sizes, repeat, tmpdir),
        batch(tools, sizes, repeat, tmpdir),
        batch_memory(tools, sizes, tmpdir),
        fan_out(tools, sizes, repeat),
        procsub(tools, sizes, repeat, tmpdir),
        file_progress(tools, sizes, repeat, tmpdir),
        *exact_lines(tools, sizes, repeat, tmpdir),
    ]


# --------------------------------------------------------------------------- running and summarizing


def _fmt_wall(seconds: float, unit: str) -> str:
    return f"{seconds * 1000:.1f}ms" if unit == "ms" else f"{seconds:.2f}s"


def run_workload(workload: Workload, warmup: int, timeout: float | None) -> None:
    """Runs every variant ``repeat`` times, round-robin; progress goes to stderr."""
    limit = timeout if timeout is not None else workload.timeout
    if workload.setup:
        workload.setup()
    for rep in range(-warmup, workload.repeat):
        parts = []
        for variant in workload.variants:
            run = measure(
                Run(workload.name, variant.name, rep),
                variant.argv,
                limit,
                variant.check,
                variant.sample,
                variant.stdin_path,
            )
            if rep >= 0:
                workload.runs.append(run)
            parts.append(f"{variant.name} {_fmt_wall(run.wall, workload.unit)}" + ("" if run.valid else " INVALID"))
        label = "warm-up" if rep < 0 else f"rep {rep + 1}/{workload.repeat}"
        print(f"[{workload.name}] {label}: " + ", ".join(parts), file=sys.stderr, flush=True)


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(workload: Workload) -> dict[str, dict[str, object]]:
    summary: dict[str, dict[str, object]] = {}
    for variant in workload.variants:
        runs = [r for r in workload.runs if r.variant == variant.name]
        good = [r for r in runs if r.valid]
        walls = [r.wall for r in good]
        entry: dict[str, object] = {"runs": len(runs), "valid": len(good)}
        if walls:
            median = statistics.median(walls)
            entry.update(
                median_wall=median,
                min_wall=min(walls),
                max_wall=max(walls),
                spread=(max(walls) - min(walls)) / median if median else 0.0,
                tree_cpu=_median([r.tree_cpu for r in good]),
            )
            if workload.kind == "throughput" and workload.nbytes:
                entry["mb_per_s"] = workload.nbytes / median / MB
            if variant.sample:
                cpu = _median([r.self_cpu for r in good])
                rss = [r.peak_rss_kib for r in good if r.peak_rss_kib is not None]
                entry.update(
                    self_cpu=cpu,
                    self_cpu_share=cpu / median if cpu is not None and median else None,
                    peak_rss_mib=max(rss) / KIB if rss else None,
                    self_reads=_median([r.self_reads for r in good]),
                    self_read_bytes=_median([r.self_read_bytes for r in good]),
                    self_writes=_median([r.self_writes for r in good]),
                )
        summary[variant.name] = entry
    base = summary.get(workload.variants[0].name, {}) if workload.variants else {}
    for entry in summary.values():
        if "median_wall" in entry and "median_wall" in base:
            if workload.kind == "throughput":
                entry["ratio"] = float(entry["mb_per_s"]) / float(base["mb_per_s"])  # type: ignore[arg-type]
            else:
                entry["ratio"] = float(entry["median_wall"]) / float(base["median_wall"])  # type: ignore[arg-type]
    return summary


def _cell(value: object, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render_table(workloads: list[Workload], summaries: dict[str, dict[str, dict[str, object]]]) -> str:
    header = [
        "workload",
        "variant",
        "median",
        "spread",
        "MB/s",
        "ratio",
        "tree CPU s",
        "ppipe CPU s",
        "ppipe RSS MiB",
        "valid",
    ]
    rows: list[list[str]] = []
    for workload in workloads:
        if workload.skip:
            rows.append([workload.name, workload.skip])  # spans the row; not counted in the widths
            continue
        for index, variant in enumerate(workload.variants):
            entry = summaries[workload.name][variant.name]
            median = entry.get("median_wall")
            kind = "speed" if workload.kind == "throughput" else "time"
            cpu = entry.get("self_cpu")
            share = entry.get("self_cpu_share")
            rows.append(
                [
                    workload.name if index == 0 else "",
                    variant.name,
                    "-" if median is None else _fmt_wall(float(median), workload.unit),  # type: ignore[arg-type]
                    _cell(entry.get("spread"), ".0%"),
                    _cell(entry.get("mb_per_s"), ".0f"),
                    "-" if "ratio" not in entry else f"{entry['ratio']:.2f} {kind}",
                    _cell(entry.get("tree_cpu"), ".2f"),
                    "" if not variant.sample else (_cell(cpu, ".2f") + ("" if share is None else f" ({share:.0%})")),
                    "" if not variant.sample else _cell(entry.get("peak_rss_mib"), ".1f"),
                    f"{entry['valid']}/{entry['runs']}",
                ]
            )
    widths = [max(len(row[i]) for row in [header, *rows] if len(row) == len(header)) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7, 8, 9}

    def line(cells: Sequence[str]) -> str:
        if len(cells) != len(header):
            return "  ".join([cells[0].ljust(widths[0]), *cells[1:]])
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells))

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(row).rstrip() for row in rows]
    return "\n".join(out)


LEGEND = """\
median: median wall time of the valid runs; spread: (max - min) / median.
MB/s: 10^6 bytes/s through the pipeline's first pipe, from the median time.
ratio: vs the workload's first row (= 1.00). "speed" = MB/s / baseline MB/s (higher is better);
       "time" = time / baseline time (lower is better).
tree CPU s: user+sys of the whole process tree (wait4 rusage), median.
ppipe CPU s: user+sys of the ppipe process alone (not its stages), median; (%) = share of one core over the run.
ppipe RSS MiB: ppipe's peak resident set (VmHWM), largest over the runs."""


# --------------------------------------------------------------------------- the machine


def _run_text(argv: Sequence[str], timeout: float = 30.0) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, env=ENV)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def _load() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / MIB:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def compile_ppipe(tools: Tools) -> str:
    """Compiles ppipe's modules where its interpreter imports them from, as ``pip install`` does; what was done.

    A regular install has every module compiled (pip runs compileall), and so
    has tornado, the startup workload's yardstick. An editable install writes
    a ``.pyc`` on a module's first import, unless ``PYTHONDONTWRITEBYTECODE``
    is set: then ppipe would compile ~8,000 lines at every start while
    tornado loads its bytecode, and the comparison would time Python's compiler.
    """
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return ""
    where = _run_text([tools.python, "-c", "import os, ppipe; print(os.path.dirname(ppipe.__file__))"])
    if not where:
        return "ppipe's package not found"
    done = subprocess.run(
        [tools.python, "-m", "compileall", "-q", where], env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""}, check=False
    )
    return f"python -m compileall {where}" if done.returncode == 0 else f"compileall {where} failed"


def machine_info(tools: Tools, compiled: str = "") -> dict[str, str]:
    commit = _run_text(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _run_text(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": f"{len(os.sched_getaffinity(0))} (of {os.cpu_count()})",
        "cpu": _cpu_model(),
        "memory": _mem_total(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": _run_text([tools.python, "-c", "import platform; print(platform.python_version())"]),
        "tornado": _run_text([tools.python, "-c", "import tornado; print(tornado.version)"]),
        "ppipe": _run_text([*tools.ppipe, "--version"]),
        "ppipe command": shlex.join(tools.ppipe),
        "load average": _load(),
        "bytecode": (
            "not written (PYTHONDONTWRITEBYTECODE set): modules without a .pyc compile at every start"
            if os.environ.get("PYTHONDONTWRITEBYTECODE")
            else "cached as usual"
        )
        + (f"; ppipe's modules compiled first ({compiled})" if compiled else ""),
        "commit": (commit + (" (modified)" if dirty else "")) if commit else "unknown",
        "pv": (_run_text([tools.pv, "--version"]).splitlines() or ["?"])[0] if tools.pv else "not found",
        "parallel": (_run_text([tools.parallel, "--version"]).splitlines() or ["?"])[0]
        if tools.parallel
        else "not found",
    }


def _real_command(path: str) -> str:
    """Sees through a pyenv shim (a shell script that costs ~0.1 s per start) to the real script."""
    if Path(path).parent.name == "shims" and shutil.which("pyenv"):
        real = _run_text(["pyenv", "which", Path(path).name])
        if real and os.access(real, os.X_OK):
            return real
    return path


def _interpreter_of(path: str) -> str:
    """The Python that runs ``path``: its shebang's, or this one's."""
    if Path(path).name.startswith("python"):
        return path
    try:
        with open(path, "rb") as handle:
            first = handle.readline().decode("utf-8", "replace").strip()
    except OSError:
        return sys.executable
    if first.startswith("#!"):
        words = first[2:].split()
        if words and Path(words[0]).name == "env" and len(words) > 1:
            return _real_command(shutil.which(words[1]) or sys.executable)
        if words and Path(words[0]).name.startswith("python"):
            return words[0]
    return sys.executable


def find_tools(ppipe_spec: str | None) -> Tools:
    argv = shlex.split(ppipe_spec) if ppipe_spec else ["ppipe"]
    found = shutil.which(argv[0])
    if not found:
        sys.exit(
            f"run.py: {argv[0]!r} not found on PATH. Install ppipe first (pip install -e . in {REPO}), "
            "or name the command with --ppipe."
        )
    argv[0] = _real_command(found)
    bash = shutil.which("bash")
    if not bash:
        sys.exit("run.py: bash not found on PATH; it is every workload's baseline.")
    help_text = _run_text([*argv, "--help"])
    return Tools(
        ppipe=argv,
        python=_interpreter_of(argv[0]),
        bash=bash,
        pv=shutil.which("pv"),
        parallel=shutil.which("parallel"),
        ppipe_help=help_text,
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark ppipe against bash (and pv, GNU parallel), interleaved, and print medians and ratios."
    )
    parser.add_argument("--repeat", type=int, default=5, metavar="N", help="repetitions per workload (default 5)")
    parser.add_argument(
        "--warmup", type=int, default=1, metavar="N", help="unrecorded rounds before the measured ones (default 1)"
    )
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run only these workloads")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--json", metavar="FILE", help="write every raw run and the summary to FILE")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="per-run time limit (default per workload)")
    parser.add_argument(
        "--ppipe", metavar="COMMAND", help="how to start ppipe (default: ppipe on PATH), e.g. 'python3 -m ppipe'"
    )
    parser.add_argument("--list", action="store_true", help="list the workloads and their commands, run nothing")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="time ppipe's modules as found: under PYTHONDONTWRITEBYTECODE, an editable install compiles them at "
        "every start (by default they are compiled first, as pip install does)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be at least 1 and --warmup at least 0")
    return args


def select(workloads: list[Workload], only: str | None) -> list[Workload]:
    if not only:
        return workloads
    wanted = [name.strip() for name in only.split(",") if name.strip()]

    # A group's name (``exact-lines``) selects each of its workloads (``exact-lines/text``, ...).
    def chosen(workload: Workload, name: str) -> bool:
        return workload.name == name or workload.name.startswith(name + "/")

    unknown = sorted(name for name in wanted if not any(chosen(w, name) for w in workloads))
    if unknown:
        sys.exit(f"run.py: unknown workload(s) {', '.join(unknown)}; known: {', '.join(w.name for w in workloads)}")
    return [w for w in workloads if any(chosen(w, name) for name in wanted)]


def print_list(workloads: list[Workload]) -> None:
    for workload in workloads:
        print(f"{workload.name}: {workload.description}" + (f"  [{workload.skip}]" if workload.skip else ""))
        for variant in workload.variants:
            stdin = f" < {variant.stdin_path}" if variant.stdin_path else ""
            print(f"    {variant.name}: {shlex.join(variant.argv)}{stdin}")


def run_all(workloads: list[Workload], warmup: int, timeout: float | None) -> bool:
    """Runs every workload in turn; returns True when Ctrl-C cut the run short."""
    for workload in workloads:
        if workload.skip:
            print(f"[{workload.name}] {workload.skip}", file=sys.stderr)
            continue
        try:
            run_workload(workload, warmup, timeout)
        except KeyboardInterrupt:
            print(f"[{workload.name}] interrupted; summarizing what was measured", file=sys.stderr)
            return True
    return False


def print_details(workloads: list[Workload], summaries: dict[str, dict[str, dict[str, object]]]) -> None:
    """The exact commands, notes, ppipe's own I/O, and why runs were invalid."""
    for workload in workloads:
        if workload.skip or not workload.variants:
            continue
        print(f"\n{workload.name}: {workload.description}")
        for variant in workload.variants:
            print(f"    {variant.name}: {shlex.join(variant.argv)}")
        for note in workload.notes:
            print(f"    note: {note}")
        for variant in workload.variants:
            entry = summaries[workload.name][variant.name]
            reads, nbytes, writes = entry.get("self_reads"), entry.get("self_read_bytes"), entry.get("self_writes")
            if variant.sample and reads and nbytes is not None and writes is not None:
                print(
                    f"    {variant.name} itself (median): {reads:.0f} read() calls, {writes:.0f} write() calls, "
                    f"{float(nbytes) / float(reads) / KIB:.1f} KiB per read"
                )  # type: ignore[arg-type]
        for reason in sorted({f"{r.variant}: {r.reason}" for r in workload.runs if not r.valid}):
            print(f"    INVALID {reason}")


def write_json(
    path: str,
    machine: dict[str, str],
    args: argparse.Namespace,
    interrupted: bool,
    workloads: list[Workload],
    summaries: dict[str, dict[str, dict[str, object]]],
) -> None:
    document = {
        "machine": machine,
        "args": vars(args),
        "interrupted": interrupted,
        "workloads": {
            w.name: {
                "description": w.description,
                "kind": w.kind,
                "nbytes": w.nbytes,
                "repeat": w.repeat,
                "skip": w.skip,
                "notes": w.notes,
                "commands": {v.name: v.argv for v in w.variants},
                "runs": [asdict(r) for r in w.runs],
                "summary": summaries.get(w.name, {}),
            }
            for w in workloads
        },
    }
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nraw runs and summary written to {path}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        sys.exit(f"run.py: cannot write {args.json}: no such directory")
    tools = find_tools(args.ppipe)
    with tempfile.TemporaryDirectory(prefix="ppipe-bench-") as tmpdir:
        workloads = select(build_workloads(tools, args.quick, args.repeat, tmpdir), args.only)
        if args.list:
            print_list(workloads)
            return 0
        machine = machine_info(tools, "" if args.no_compile else compile_ppipe(tools))
        width = max(len(key) for key in machine)
        print("\n".join(f"{key:<{width}}  {value}" for key, value in machine.items()))
        startup_repeat = next((w.repeat for w in workloads if w.name == "startup"), "-")
        print(
            f"{'repeat':<{width}}  {args.repeat} (startup: {startup_repeat}), warm-up {args.warmup}, "
            f"interleaved{', QUICK sizes' if args.quick else ''}",
            flush=True,
        )
        interrupted = run_all(workloads, args.warmup, args.timeout)

    summaries = {w.name: summarize(w) for w in workloads if not w.skip}
    machine["load average at end"] = _load()
    print(f"\nload average at end: {machine['load average at end']} (other work on the machine skews every row)")
    print(render_table(workloads, summaries))
    print()
    print(LEGEND)
    print_details(workloads, summaries)
    if args.json:
        write_json(args.json, machine, args, interrupted, workloads, summaries)
    invalid = any(not r.valid for w in workloads for r in w.runs)
    return 130 if interrupted else (1 if invalid else 0)


if __name__ == "__main__":
    sys.exit(main())

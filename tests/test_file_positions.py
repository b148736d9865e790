"""How far a stage has read its files, read from a real process's /proc fd and fdinfo; and the rate meter."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppipe.cli.rates import InputRates, RateMeter
from ppipe.engine.positions import FilePositions
from ppipe.flow import StageFlow
from ppipe.snapshots import StageSnapshot, StageState

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fdinfo"), reason="reads /proc")

#: A process that opens, seeks and closes files as told on its stdin, and answers "ok" after each step.
HOLDER = """
import os, sys
held = {}
for line in sys.stdin:
    verb, *rest = line.split()
    if verb == "open":
        name, mode, offset = rest
        flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[mode]
        held[name] = os.open(name, flags | (os.O_NONBLOCK if mode == "rw" else 0))
        if int(offset):
            os.lseek(held[name], int(offset), os.SEEK_SET)
    elif verb == "close":
        os.close(held.pop(rest[0]))
    print("ok", flush=True)
"""


class Holder:
    """A real process holding files open at chosen offsets."""

    def __init__(self, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd
        )
        self.pid = self.process.pid

    def __call__(self, *step: object) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(" ".join(map(str, step)) + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "ok\n"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, int]:
    """Three files a, b, c of 1000, 2000 and 4000 bytes."""
    sizes = {"a": 1000, "b": 2000, "c": 4000}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
    return sizes


@pytest.fixture
def holder(tmp_path: Path, files: dict[str, int]) -> Iterator[Holder]:
    process = Holder(tmp_path)
    yield process
    process.stop()


def positions_of(holder: Holder, tmp_path: Path, argv: list[str] | None = None) -> FilePositions:
    return FilePositions(holder.pid, argv or ["cat", "a", "b", "c"], str(tmp_path), None)


def test_files_are_summed_in_argument_order(holder: Holder, tmp_path: Path) -> None:
    positions = positions_of(holder, tmp_path)
    assert positions.files == 3 and positions.total() == 7000
    assert positions.read() == (0, 7000)  # nothing opened yet counts nothing
    holder("open", "a", "r", 400)
    assert positions.read() == (400, 7000)
    holder("close", "a")
    assert positions.read() == (1000, 7000)  # opened, then closed: read whole
    holder("open", "c", "r", 100)
    assert positions.read() == (1000 + 2000 + 100, 7000)  # b comes before the file now open
    holder("close", "c")
    assert positions.read() == (7000, 7000)


def test_several_files_open_at_once_each_count_their_offset(holder: Holder, tmp_path: Path) -> None:
    positions = positions_of(holder, tmp_path)
    holder("open", "a", "r", 10)
    holder("open", "c", "r", 20)
    # paste a b c, sort -m: what is open counts its offset, b (never seen, before c) whole.
    assert positions.read() == (10 + 2000 + 20, 7000)


def test_a_file_opened_for_writing_only_leaves_the_total(holder: Holder, tmp_path: Path) -> None:
    positions = positions_of(holder, tmp_path)
    holder("open", "c", "w", 0)
    assert positions.read() == (0, 3000)
    assert positions.files == 2
    holder("open", "b", "rw", 500)  # read and written: still an input
    assert positions.read() == (1000 + 500, 3000)


def test_a_file_named_twice_counts_twice(holder: Holder, tmp_path: Path) -> None:
    positions = positions_of(holder, tmp_path, ["cat", "a", "a"])
    assert positions.total() == 2000
    holder("open", "a", "r", 900)
    assert positions.read() == (900, 2000)
    holder("close", "a")
    holder("open", "a", "r", 100)  # its offset went back: the second reading
    assert positions.read() == (1100, 2000)


def test_stdin_counts_only_once_read_when_arguments_name_files(tmp_path: Path, files: dict[str, int]) -> None:
    code = "import os, sys, time\nsys.stdin.readline()\nos.read(0, 10)\nprint('ok', flush=True)\ntime.sleep(60)"
    with open(tmp_path / "c", "rb") as stdin:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert process.stdin is not None and process.stdout is not None
        info = os.fstat(stdin.fileno())
        positions = FilePositions(process.pid, ["grep", "-f", "a", "b"], str(tmp_path), (info, 0))
        alone = FilePositions(process.pid, ["wc", "-l"], str(tmp_path), (info, 0))
        try:
            # ``grep -f a b`` with c as its stdin (never read): c does not count; ``wc -l < c`` reads it.
            assert positions.read() == (0, 3000) and positions.files == 2
            assert alone.total() == 4000
        finally:
            process.kill()
            process.wait()
        # Gone: no figure, and no error.
        assert positions.read() is None


def test_stdin_counts_once_its_offset_moves(tmp_path: Path, files: dict[str, int]) -> None:
    code = "import os, time\nos.read(0, 10)\nprint('ok', flush=True)\ntime.sleep(60)"
    with open(tmp_path / "c", "rb") as stdin:
        info = os.fstat(stdin.fileno())
        process = subprocess.Popen([sys.executable, "-c", code], stdin=stdin, stdout=subprocess.PIPE)
        assert process.stdout is not None
        try:
            positions = FilePositions(process.pid, ["prog", "a"], str(tmp_path), (info, 0))
            assert positions.read() is not None
            assert positions.total() == 1000
            assert process.stdout.readline() == b"ok\n"
            assert positions.read() == (10, 5000)  # a never opened: 0; then 10 bytes of stdin
            assert positions.files == 2
        finally:
            process.kill()
            process.wait()


def test_what_was_read_stands_once_the_process_has_gone(holder: Holder, tmp_path: Path) -> None:
    """A stage that has exited and is not reaped yet has no /proc/PID/fd: its last reading is kept for the view."""
    positions = positions_of(holder, tmp_path)
    holder("open", "b", "r", 700)
    assert positions.read() == positions.last == (1000 + 700, 7000)
    holder.stop()
    assert positions.read() is None and positions.last == (1700, 7000)


def test_no_proc_entry_is_no_progress(tmp_path: Path, files: dict[str, int]) -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    positions = FilePositions(process.pid, ["cat", "a"], str(tmp_path), None)
    assert positions.read() is None
    assert positions.total() == 1000
    assert FilePositions(process.pid, ["cat", "missing", "."], str(tmp_path), None).read() is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(
        st.one_of(
            st.sampled_from(["a", "b", "dir", "fifo", "secret", "gone", "link", "/dev/null", "-", "../", ""]),
            st.text(max_size=30),
            st.text(alphabet="/.ab", max_size=300),
        ),
        max_size=8,
    ),
    remove=st.booleans(),
    pid=st.sampled_from(["holder", "dead", "init"]),
)
def test_the_position_reader_never_raises(
    tmp_path: Path, holder: Holder, words: list[str], remove: bool, pid: str
) -> None:
    for name in ("a", "b", "secret", "gone"):
        (tmp_path / name).write_bytes(b"y" * 100)
    (tmp_path / "dir").mkdir(exist_ok=True)
    if not (tmp_path / "fifo").exists():
        os.mkfifo(tmp_path / "fifo")
        (tmp_path / "link").symlink_to("gone")
    (tmp_path / "secret").chmod(0)
    holder("open", "fifo", "rw", 0)
    holder("open", "gone", "r", 50)
    number = {"holder": holder.pid, "dead": 2**22 + 1, "init": 1}[pid]
    positions = FilePositions(number, ["cmd", *words], str(tmp_path), None)
    first = positions.read()
    if remove:
        (tmp_path / "gone").unlink()
    for _ in range(2):
        read = positions.read()
        assert read is None or 0 <= read[0] <= read[1]
    assert first is None or 0 <= first[0] <= first[1]
    holder("close", "fifo")
    holder("close", "gone")
    (tmp_path / "gone").write_bytes(b"y" * 100)


# -- the rate meter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_steady_stream_gives_a_steady_rate() -> None:
    clock = Clock()
    meter = RateMeter(clock)
    count, rates = 0, []
    # 10 MB/s read in 128 KiB steps, sampled ten times a second: a frame sees 6, 7 or 8 steps.
    for frame in range(300):
        clock.now += 0.1
        count = int(clock.now * 10_000_000) // 131072 * 131072
        meter.update(count)
        if frame and meter.rate is not None:
            rates.append(meter.rate)
        assert frame < 1 or (meter.rate or 0) > 0  # never 0 B/s while bytes move
    assert all(0.95e7 < rate < 1.05e7 for rate in rates[5:])
    assert max(max(a, b) / min(a, b) for a, b in itertools.pairwise(rates)) < 1.5


def test_a_burst_moves_the_rate_a_bounded_step() -> None:
    clock = Clock()
    meter = RateMeter(clock)
    count = 0
    for _ in range(100):
        clock.now += 0.1
        count += 1_000_000
        meter.update(count)
    before = meter.rate
    assert before is not None and abs(before - 1e7) < 1
    clock.now += 0.1
    meter.update(count + 50_000_000)  # fifty frames' worth at once (a reader catching up)
    after = meter.rate
    assert after is not None and 1.0 < after / before < 3.0
    for _ in range(10):  # and a stall: the rate falls but stays above 0
        clock.now += 0.1
        meter.update(count + 50_000_000)
    assert meter.rate is not None and 0 < meter.rate < after


def test_the_rate_starts_at_the_true_rate_and_eta_follows_it() -> None:
    clock = Clock()
    meter = RateMeter(clock)
    meter.update(0)
    assert meter.rate is None and meter.eta(100) is None
    clock.now += 0.5
    meter.update(5_000_000)
    assert meter.rate == pytest.approx(1e7)
    assert meter.eta(20_000_000) == pytest.approx(2.0)
    assert meter.eta(0) == 0.0
    clock.now += 0.1
    meter.update(1_000)  # the count went back (a file read again): nothing moved
    assert meter.rate is not None and meter.rate < 1e7


def stage(sid: int, read: int | None, size: int | None, state: StageState = StageState.RUNNING) -> StageSnapshot:
    flow = StageFlow.of([], [])
    return StageSnapshot(sid, "cmd", state, 1, None, None, flow, 1.0, size, read, 1 if size else 0)


def test_the_run_eta_is_the_first_stage_upstream_still_reading() -> None:
    clock = Clock()
    rates = InputRates(clock)
    for second in range(1, 4):
        clock.now += 1
        rates.measure([stage(1, 100 * second, 1000), stage(2, None, None), stage(3, 10 * second, 1000)])
    stages = [stage(1, 300, 1000), stage(2, None, None), stage(3, 30, 1000)]
    leading = rates.leading(stages)
    assert leading is not None and leading.stage == 1 and leading.eta == pytest.approx(7.0)
    finished = [stage(1, 1000, 1000, StageState.DONE), stage(2, None, None), stage(3, 30, 1000)]
    leading = rates.leading(finished)
    assert leading is not None and leading.stage == 3 and leading.eta == pytest.approx(97.0)
    assert rates.leading([stage(1, None, None)]) is None

"""Lines on a fast spliced edge under the view: sampled, never frozen, estimated from the sample.

The pump runs for real between a real producer and a real consumer; only
the budget (``count_lines_below``) is made small, so that a modest edge is
"fast" for it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys

import pytest

from ppipe.engine.counting import Counter
from ppipe.engine.descriptors import make_pipe
from ppipe.engine.splice import SPLICE_AVAILABLE, SplicePump
from ppipe.engine.tee import tee_function

pytestmark = pytest.mark.skipif(not SPLICE_AVAILABLE or tee_function() is None, reason="Linux splice and tee")

#: 100 lines of 100 bytes each per write, 40 writes a second, for about 2.5 seconds: 4 MB/s, 10 MB.
PRODUCER = (
    "import sys, time\n"
    "block = (b'x' * 99 + b'\\n') * 1000\n"
    "for _ in range(100):\n"
    "    sys.stdout.buffer.write(block); sys.stdout.buffer.flush(); time.sleep(0.025)\n"
)
LINES = 100 * 1000
BYTES = LINES * 100


async def pump_with_watch(budget: int) -> tuple[Counter, list[int], bytes]:
    """Runs PRODUCER | wc -c through a counting SplicePump; returns its counter, the line figure
    the view would have shown every quarter second (estimate, else lower bound), and wc's output."""
    source_read, source_write = make_pipe()
    target_read, target_write = make_pipe()
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER], stdout=source_write)
    consumer = subprocess.Popen(["wc", "-c"], stdin=target_read, stdout=subprocess.PIPE)
    os.close(source_write)
    os.close(target_read)
    pump = SplicePump(source_read, target_write, count_lines=True, count_lines_below=budget)
    counter = pump.counters[0]
    seen: list[int] = []

    async def watch() -> None:
        while True:
            await asyncio.sleep(0.25)
            estimate = counter.lines_estimate
            seen.append(estimate if estimate is not None else counter.lines)

    watcher = asyncio.ensure_future(watch())
    try:
        await pump.run()
    finally:
        watcher.cancel()
        producer.wait()
        output, _ = consumer.communicate()
    return counter, seen, output


def test_a_fast_edge_keeps_counting_a_sample_and_estimates_from_it() -> None:
    counter, seen, output = asyncio.run(pump_with_watch(budget=256 * 1024))
    assert output.split() == [str(BYTES).encode()]
    assert counter.nbytes == BYTES  # bytes stay exact
    assert not counter.lines_complete
    # Counting went on past the first second's budget: the lower bound is more than two seconds' sample.
    assert 2 * 256 * 1024 // 100 < counter.lines < LINES
    estimate = counter.lines_estimate
    assert estimate is not None and abs(estimate - LINES) <= LINES // 50
    # Never frozen: while bytes flowed, every figure the view would have drawn was larger than the last.
    flowing = seen[:-2]
    assert len(flowing) >= 5 and all(b > a for a, b in itertools.pairwise(flowing)), seen


def test_an_edge_within_the_budget_is_counted_exactly() -> None:
    counter, _, output = asyncio.run(pump_with_watch(budget=64 * 1024 * 1024))
    assert output.split() == [str(BYTES).encode()]
    assert counter.lines_complete
    assert counter.lines == counter.lines_estimate == LINES

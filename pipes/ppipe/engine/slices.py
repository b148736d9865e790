"""Part of a regular file as a run's input: :class:`FileSlice`, and reading it without touching the rest.

A job array's task reads only its share of a file that every task was
given (see :func:`ppipe.shards.portion.task_slice`). The share is read with
``pread`` at the offsets it names: nothing before or after it is read, and
the descriptor's own offset, which other tasks on the same open file may
share, is never moved.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ppipe.engine.descriptors import CHUNK


@dataclass(frozen=True)
class FileSlice:
    """Byte ranges ``[start, end)`` of the regular file open on ``fd``, read in order as one input.

    Usually one range; two when a header (the file's first records) comes
    before a share that starts later in the file.
    """

    fd: int
    ranges: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return sum(end - start for start, end in self.ranges)


async def read_slice(piece: FileSlice) -> AsyncIterator[bytes]:
    """The slice's bytes, chunk by chunk; a file that shrank under it ends the input early, as ``cat`` would."""
    for start, end in piece.ranges:
        offset = start
        while offset < end:
            chunk = os.pread(piece.fd, min(4 * CHUNK, end - offset), offset)
            if not chunk:
                return
            offset += len(chunk)
            yield chunk
            await asyncio.sleep(0)

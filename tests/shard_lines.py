"""Writes, or checks, lines that prove they arrived whole: ``python shard_lines.py write TAG COUNT``.

Each line is ``TAG:N:LENGTH:`` followed by LENGTH copies of one letter
(chosen by N) and a newline. Most lines are short; every 500th is long, up
to 64 KiB, and is written in several pieces with pauses, so that a merge
that tore lines would show it. ``check`` reads lines on stdin and prints
``TAG COUNT`` per tag, failing on the first torn or altered line.
"""

from __future__ import annotations

import collections
import sys
import time


def length_of(number: int) -> int:
    return (number * 7919) % (64 * 1024) if number % 500 == 0 else (number * 31) % 80


def line_of(tag: str, number: int) -> bytes:
    length = length_of(number)
    letter = chr(ord("a") + number % 26)
    return f"{tag}:{number}:{length}:{letter * length}\n".encode()


def write(tag: str, count: int) -> None:
    out = sys.stdout.buffer
    batch = bytearray()
    for number in range(count):
        line = line_of(tag, number)
        if len(line) > 4096:
            out.write(batch)
            batch.clear()
            for start in range(0, len(line), 8192):  # a long line in pieces, with gaps
                out.write(line[start : start + 8192])
                out.flush()
                time.sleep(0.0005)
        else:
            batch += line
            if len(batch) > 65536:
                out.write(batch)
                batch.clear()
    out.write(batch)


def check() -> None:
    counts: collections.Counter[str] = collections.Counter()
    for raw in sys.stdin.buffer:
        tag, number, _length, _payload = raw.decode().split(":", 3)
        if raw != line_of(tag, int(number)):
            sys.exit(f"torn or altered line: {raw[:80]!r}...")
        counts[tag] += 1
    for tag in sorted(counts):
        print(tag, counts[tag])


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]))
    else:
        check()

"""The bottom of a terminal, owned for the length of a run: output scrolls above, one frame stays below.

:class:`Screen` is what makes the live view cost the pipeline's own output
nothing. Output bytes are kept as they come (:meth:`Screen.above`) and go to
the terminal in one write with the frame (:meth:`Screen.paint`): erase the
frame, the output, the frame again. The frame is drawn only when someone
calls :meth:`Screen.show` (the view, ten times a second), never per chunk of
output, and a paint between two frames redraws the last one as it is.

Every paint is one ``write`` framed by the synchronized-update sequences
(DEC mode 2026), so a terminal that supports them shows no half-drawn frame;
one that does not ignores them, as terminals ignore every private mode they
do not know. The cursor is hidden while the frame is up and always shown
again by :meth:`Screen.close`.

Resizes: the frame's lines are drawn no wider than the terminal, so none
wraps as it is drawn. A terminal made narrower later re-wraps them (tmux,
VTE, kitty, iTerm2 and Windows Terminal all do), so the frame is erased by
the rows its lines take at the width of the moment. A frame taller than the
terminal cannot be erased: the view never draws one (:attr:`Screen.rows` is
the room it has), and a terminal made shorter than the frame on screen
pushes its top into the scrollback, where no terminal lets it be erased.

Nothing here imports rich: it writes bytes to a descriptor.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Sequence

BEGIN_UPDATE = b"\x1b[?2026h"
END_UPDATE = b"\x1b[?2026l"
HIDE_CURSOR = b"\x1b[?25l"
SHOW_CURSOR = b"\x1b[?25h"
#: The whole row the cursor is on. Rows are erased one by one, never with "erase below" (ED): tmux, on
#: an ED from the screen's first cell, moves the whole screen into its scrollback (``scroll-on-clear``).
ERASE_ROW = b"\x1b[2K"
DOWN = b"\x1b[B"
#: The most written in one call: a slow terminal then holds the loop for one such write at most.
WRITE_AT_MOST = 64 * 1024

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def visible_width(line: str, cell_width: Callable[[str], int] = len) -> int:
    """The cells ``line`` takes on a terminal, its escape sequences left out."""
    return cell_width(_ESCAPE.sub("", line))


class Screen:
    """The terminal behind ``fd`` while a run draws a frame at its bottom.

    ``size`` gives the terminal's (columns, rows) at the moment; it is asked
    at every paint, so a resize is seen at the next one. ``cell_width``
    measures a line's cells (the view passes rich's, which knows wide
    characters). Errors writing to the terminal (it went away) end the
    drawing quietly: the run goes on without its view.
    """

    def __init__(
        self,
        fd: int,
        *,
        size: Callable[[], tuple[int, int]] | None = None,
        cell_width: Callable[[str], int] = len,
    ) -> None:
        self.fd = fd
        self._size = size or self._terminal_size
        self._cell_width = cell_width
        #: Output waiting for the next paint.
        self._pending: list[bytes] = []
        self.pending_bytes = 0
        #: The frame to draw: its lines, and the cells each takes.
        self._frame: tuple[bytes, ...] = ()
        self._widths: tuple[int, ...] = ()
        #: The cells each line of the frame on the terminal now takes (empty: none is drawn).
        self._drawn: tuple[int, ...] = ()
        #: Whether the last byte of output left the cursor at the start of a line.
        self._at_line_start = True
        self._cursor_hidden = False
        self.closed = False

    # -- what the run calls

    @property
    def size(self) -> tuple[int, int]:
        """(columns, rows) now, at least (1, 1)."""
        columns, rows = self._size()
        return max(1, columns), max(1, rows)

    def above(self, data: bytes) -> None:
        """Keeps output to be written above the frame at the next paint; nothing is written yet."""
        if data and not self.closed:
            self._pending.append(data)
            self.pending_bytes += len(data)

    def show(self, lines: Sequence[str]) -> None:
        """Makes ``lines`` the frame and paints it, with the output kept so far above it."""
        columns, _ = self.size
        widths = [visible_width(line, self._cell_width) for line in lines]
        self._frame = tuple(line.encode("utf-8", "replace") for line in lines)
        self._widths = tuple(min(width, columns) for width in widths)
        self.paint()

    def paint(self) -> None:
        """Writes the output kept so far above the frame, and the frame below it, in one update."""
        if self.closed:
            return
        parts = [BEGIN_UPDATE]
        if not self._cursor_hidden:
            parts.append(HIDE_CURSOR)
            self._cursor_hidden = True
        parts.append(self._erase())
        parts.extend(self._take_output())
        if self._frame:
            if not self._at_line_start:
                parts.append(b"\n")
                self._at_line_start = True
            parts.append(b"\r\n".join(self._frame))
            self._drawn = self._widths
        parts.append(END_UPDATE)
        self._write(b"".join(parts))

    def close(self) -> None:
        """Erases the frame, writes the output still kept, and shows the cursor; the terminal is the run's no more.

        What is printed next (the summary) starts at the beginning of a line.
        """
        if self.closed:
            return
        parts = [BEGIN_UPDATE, self._erase(), *self._take_output()]
        if not self._at_line_start:
            parts.append(b"\n")
        parts += [SHOW_CURSOR, END_UPDATE]
        self._frame, self._widths = (), ()
        self._write(b"".join(parts))
        self.closed = True

    # -- how

    def _erase(self) -> bytes:
        """Every row of the frame cleared, and the cursor back at the first (nothing if none is drawn)."""
        if not self._drawn:
            return b""
        columns, _ = self.size
        rows = sum(max(1, -(-width // columns)) for width in self._drawn)
        self._drawn = ()
        up = f"\x1b[{rows - 1}A".encode() if rows > 1 else b""
        return b"\r" + up + ERASE_ROW + (DOWN + ERASE_ROW) * (rows - 1) + up

    def _take_output(self) -> list[bytes]:
        taken, self._pending, self.pending_bytes = self._pending, [], 0
        for chunk in reversed(taken):
            if chunk:
                self._at_line_start = chunk.endswith(b"\n")
                break
        return taken

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view[:WRITE_AT_MOST])
                view = view[written:]
        except BlockingIOError:
            # A terminal shared with a stage that made it non-blocking: wait for room, then go on.
            import select

            select.select([], [self.fd], [])
            self._write(bytes(view))
        except OSError:
            self.closed = True  # the terminal is gone (hung up, closed): the run goes on without its view

    def _terminal_size(self) -> tuple[int, int]:
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(self.fd)
            return size.columns, size.lines
        return 80, 24

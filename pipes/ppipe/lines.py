"""A run's output cut into lines as it comes: whole records, each with its end, as a file's ``readline`` gives them.

``ppipe.stream`` gets the output in chunks of whatever size the pumps
deliver. :class:`LineCutter` keeps the unfinished line of one chunk until
the next ones finish it, and gives each whole line as soon as its end has
come; the last line of the output may have no end. :class:`Lines` adds the
decoding for ``encoding=``: chunks are decoded as they come (a character
split between two chunks is decoded whole) and the text is cut at the line
end as that encoding writes it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from typing import AnyStr, Generic


class LineCutter(Generic[AnyStr]):
    """Cuts a stream of chunks into lines that end with ``end`` (kept, as ``readline`` keeps the newline).

    :meth:`feed` the chunks in order, taking every :meth:`lines` before
    the next; at the end of the stream, :meth:`rest` is the last line if it
    had no end. An end of several characters may be split between chunks. Time
    is linear in the data, even for a line longer than many chunks; memory
    is one chunk and the unfinished line, however long (as ``readline``).
    """

    def __init__(self, end: AnyStr) -> None:
        if not end:
            raise ValueError("a line end cannot be empty")
        self.end: AnyStr = end
        #: The unfinished line's earlier pieces, none holding an end (joined once, when the end comes).
        self._held: list[AnyStr] = []
        self._chunk: AnyStr = end[:0]
        self._at = 0

    def feed(self, chunk: AnyStr) -> None:
        """Adds the next chunk, once :meth:`lines` has given every line of the previous ones."""
        rest = self._chunk[self._at :]
        # An end split between two chunks: its first characters are the old chunk's last ones,
        # so those are searched again with the new chunk.
        kept = max(0, len(rest) - (len(self.end) - 1))
        if kept:
            self._held.append(rest[:kept])
        self._chunk = rest[kept:] + chunk
        self._at = 0

    def lines(self) -> Iterator[AnyStr]:
        """Each whole line there is now, its end included; the unfinished rest is kept for the next chunks.

        A generator, so that a run's many short lines each cost one ``find``
        and a slice; it gives nothing more once :meth:`feed` has been called.
        """
        chunk, end, size = self._chunk, self.end, len(self.end)
        while self._chunk is chunk and (found := chunk.find(end, self._at)) >= 0:
            stop = found + size
            line = chunk[self._at : stop]
            self._at = stop
            if self._held:
                self._held.append(line)
                line = self._joined()
            yield line

    def rest(self) -> AnyStr | None:
        """At the end of the stream: the last line, which has no end; None when the stream ended with an end."""
        self._held.append(self._chunk[self._at :])
        self._chunk, self._at = self.end[:0], 0
        return self._joined() or None

    def _joined(self) -> AnyStr:
        """The held pieces as one, and none held any more."""
        whole: AnyStr = self.end[:0].join(self._held)
        self._held.clear()
        return whole


class Lines(Generic[AnyStr]):
    """Output chunks in, lines out: bytes as they are (:func:`byte_lines`) or decoded text (:func:`text_lines`)."""

    def __init__(self, end: AnyStr, decode: Callable[[bytes, bool], AnyStr]) -> None:
        self._cutter: LineCutter[AnyStr] = LineCutter(end)
        self._decode: Callable[[bytes, bool], AnyStr] = decode
        self.ended = False

    def add(self, chunk: bytes) -> None:
        """The next chunk of output."""
        self._cutter.feed(self._decode(chunk, False))

    def end(self) -> None:
        """The output has ended: :meth:`lines` gives what is left, the last line without its end too.

        Raises :class:`UnicodeDecodeError` (with ``errors="strict"``) when
        the output ends in the middle of a character.
        """
        if not self.ended:
            self.ended = True
            self._cutter.feed(self._decode(b"", True))

    def lines(self) -> Iterator[AnyStr]:
        """Each whole line there is now (see :meth:`LineCutter.lines`); once the output has ended, the last one too."""
        yield from self._cutter.lines()
        if self.ended and (last := self._cutter.rest()) is not None:
            yield last


def byte_lines(end: bytes = b"\n") -> Lines[bytes]:
    """Lines as bytes, each ending with ``end`` (``b"\\0"``: ``--null``'s records)."""
    return Lines(end, _as_they_are)


def text_lines(encoding: str, errors: str = "strict", end: bytes = b"\n") -> Lines[str]:
    """Lines decoded from ``encoding``, cut where ``end`` (bytes, as ``record_end`` is given) is in that encoding.

    Raises :class:`LookupError` for an encoding Python does not know and
    :class:`ValueError` when ``end`` is not text in it (``b"\\n"`` in
    UTF-16 is ``b"\\n\\0"``); decoding errors follow ``errors``, as for
    :func:`open`.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    try:
        text_end = end.decode(encoding)
    except UnicodeDecodeError:
        raise ValueError(f"record_end {end!r} is not text in {encoding}: give it as {encoding} writes it") from None
    return Lines(text_end, decoder.decode)


def _as_they_are(chunk: bytes, final: bool) -> bytes:
    return chunk

"""How far a stage has read the regular files it reads, from its open files' positions, as ``pv -d PID:FD`` finds them.

A stage's input files are the regular files its arguments name (resolved
against its working directory, in argument order) and the regular file it
has as its stdin (a ``< file`` redirection, or ppipe's own stdin), last:
``grep -f patterns < big.log`` reads its patterns before the rest. A stage
has its stdin open from the start whether it reads it or not, so the stdin
file counts only when no argument names a file, or once the stage has
moved its offset (``grep x app.log`` run with some file as ppipe's stdin
is not held below 100% by a file it never reads).
Each tick :meth:`FilePositions.read` lists ``/proc/PID/fd``, matches each
open descriptor to those files by device and inode, and reads the offset
(``pos:``) of each match from ``/proc/PID/fdinfo/N``. The files are summed
in order: one the stage had open and has closed, or that comes before the
latest file it has opened, counts as read whole; one not opened yet counts
nothing.

Linux only: where ``/proc`` is missing, the process has gone, or anything
else goes wrong, the answer is None ("no progress"), never an error.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

#: A file as the kernel names it: (device, inode).
FileKey = tuple[int, int]


class FilePositions:
    """The reading progress of one stage's input files; see the module's docstring.

    ``stdin`` is the stat of the stage's stdin as it was started and its
    offset then (None when it is not a regular file). The arguments are
    looked at once, at the first :meth:`read` (or :meth:`total`): a file
    created later is not an input. A file named twice counts twice (``cat a
    a``): its offset going back marks the second reading. A file the stage
    is seen to have open for writing only (``sort -o out in``, ``tee log``)
    is not an input and leaves the total.
    """

    def __init__(
        self, pid: int, argv: Sequence[str], cwd: str | None, stdin: tuple[os.stat_result, int] | None
    ) -> None:
        self.pid = pid
        self._argv = tuple(argv[1:])
        self._cwd = os.path.abspath(cwd or os.curdir)
        self._stdin = stdin
        #: The input files in reading order, their sizes (kept up to date while open), and where each is.
        self._keys: list[FileKey] | None = None
        #: The latest answer :meth:`read` gave, for the moment a process is exiting and /proc says nothing.
        self.last: tuple[int, int] | None = None
        self._sizes: list[int] = []
        #: Each file's places (several when named several times), and which of them it is read at now.
        self._place: dict[FileKey, list[int]] = {}
        self._current: dict[FileKey, int] = {}
        self._offsets: dict[int, int] = {}
        #: Files seen open before (and so read whole once closed); the latest place seen open.
        self._seen: set[int] = set()
        self._reached = -1
        self._written: set[int] = set()
        #: The stdin file's place, and whether it counts yet (see the module's docstring).
        self._stdin_place: int | None = None
        self._stdin_counts = False

    @property
    def files(self) -> int:
        """How many input files the stage has (0: none, so no progress)."""
        return len(self._counted())

    def total(self) -> int | None:
        """The input files' summed size in bytes; None when the stage has none."""
        counted = self._counted()
        return sum(self._sizes[place] for place in counted) if counted else None

    def _counted(self) -> list[int]:
        """The places of the files that count now: not written, the stdin file only once it counts."""
        keys = self._inputs()
        return [
            place
            for place in range(len(keys))
            if place not in self._written and (place != self._stdin_place or self._stdin_counts)
        ]

    def read(self) -> tuple[int, int] | None:
        """``(done, total)``: bytes of the input files read so far, and their size; None when unknown.

        None when the stage has no input file, or its descriptors cannot be
        read (no ``/proc``, another user's process, the process has exited).
        ``done`` never passes ``total``.
        """
        if not self._inputs():
            return None
        directory = f"/proc/{self.pid}/fd"
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        positions: dict[int, int] = {}
        for name in names:
            try:
                info = os.stat(f"{directory}/{name}")
            except OSError:  # closed since the listing, or a link to something gone
                continue
            key = (info.st_dev, info.st_ino)
            if key not in self._place:
                continue
            found = _offset(self.pid, name)
            if found is None:
                continue
            offset, writing = found
            place = self._place_of(key, offset)
            if writing:
                self._written.update(self._place[key])
                continue
            if place in self._written:
                continue
            self._sizes[place] = info.st_size  # a file may grow while it is read (a log)
            positions[place] = max(positions.get(place, 0), offset)
        # Inherited, stdin is open from the start: that it is open says nothing of the files before it.
        opened = [place for place in positions if place != self._stdin_place]
        self._seen.update(opened)
        self._reached = max([self._reached, *opened])
        start = self._stdin[1] if self._stdin is not None else 0
        if self._stdin_place in positions and positions[self._stdin_place] != start:
            self._stdin_counts = True
        total = self.total()
        if total is None:
            return None
        done = 0
        for place in self._counted():
            size = self._sizes[place]
            if place in positions:
                done += min(positions[place], size)
            elif place in self._seen or place < self._reached:
                done += size
        self.last = (min(done, total), total)
        return self.last

    def _place_of(self, key: FileKey, offset: int) -> int:
        """The place the file is read at: the next of its places once its offset went back."""
        places = self._place[key]
        index = self._current.get(key, 0)
        if offset < self._offsets.get(places[index], 0) and index + 1 < len(places):
            self._seen.add(places[index])
            index += 1
            self._current[key] = index
        self._offsets[places[index]] = offset
        return places[index]

    def _inputs(self) -> list[FileKey]:
        if self._keys is None:
            self._keys = []
            for word in self._argv:
                # /dev/fd/63 (a process substitution) is the stage's own descriptor, not ppipe's
                own = f"/proc/{self.pid}/fd/{word[len('/dev/fd/') :]}" if word.startswith("/dev/fd/") else word
                self._add(_regular(os.path.join(self._cwd, own)))
            self._stdin_counts = not self._keys
            if self._stdin is not None:
                self._stdin_place = self._add(self._stdin[0], again=False)
        return self._keys

    def _add(self, info: os.stat_result | None, again: bool = True) -> int | None:
        """Adds a file to the inputs, at the end; its place (None when it is not a regular file).

        ``again`` False: a file already there is not added again (the stdin
        file then counts as the argument naming it does).
        """
        assert self._keys is not None
        if info is None or not stat.S_ISREG(info.st_mode):
            return None
        key = (info.st_dev, info.st_ino)
        if key in self._place and not again:
            return None
        place = len(self._keys)
        self._place.setdefault(key, []).append(place)
        self._keys.append(key)
        self._sizes.append(info.st_size)
        return place


def _regular(path: str) -> os.stat_result | None:
    """The stat of ``path`` when it names a regular file; None for anything else or any error."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # missing, unreadable directory, a NUL byte, a name too long
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _offset(pid: int, fd: str) -> tuple[int, bool] | None:
    """The descriptor's offset, and whether it is open for writing only; None when it cannot be read."""
    try:
        handle = os.open(f"/proc/{pid}/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(handle, 256)
    except OSError:
        return None
    finally:
        os.close(handle)
    # "pos:\t1234\nflags:\t0100000\n...": the offset in decimal, the open flags in octal.
    fields = dict(line.split(b":", 1) for line in text.splitlines()[:2] if b":" in line)
    try:
        offset = int(fields[b"pos"])
        flags = int(fields[b"flags"], 8)
    except (KeyError, ValueError):
        return None
    return offset, flags & os.O_ACCMODE == os.O_WRONLY

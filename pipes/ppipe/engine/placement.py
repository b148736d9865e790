"""A stage's descriptors beyond 0, 1 and 2 (a process substitution's ``/dev/fd/63``), put at their numbers.

``subprocess`` gives a child its 0, 1 and 2 from any descriptors, but any
other only at the number it has in ppipe (``pass_fds``). A stage told to
open ``/dev/fd/63`` must find its pipe end at 63, whatever ppipe holds
there. So, for the spawn, each end is copied to its number in ppipe when
that number is free there, and closed right after; when ppipe holds the
number itself (a process with many files open: a shard's slot, a caller of
the library), the child moves the end there after its fork, before exec
(a ``preexec_fn``, which costs a ``fork`` instead of a ``vfork``). ppipe
runs from one thread, so nothing can take a number between the copy and
the spawn.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ppipe.graph import FIRST_SUBSTITUTION_FD


@dataclass(frozen=True)
class Placement:
    """What the spawn needs: the numbers the child keeps, and the moves it makes itself (``(source, number)``)."""

    pass_fds: tuple[int, ...] = ()
    child_moves: tuple[tuple[int, int], ...] = ()

    def child_hook(self) -> Callable[[], None] | None:
        """The moves, run in the child before exec; None when ppipe could place every descriptor itself."""
        if not self.child_moves:
            return None
        moves = self.child_moves

        def move() -> None:
            for source, number in moves:
                os.dup2(source, number)  # inheritable: it must survive the exec

        return move


@contextlib.contextmanager
def placed(extra: Mapping[int, int]) -> Iterator[Placement]:
    """Puts ``extra`` (number in the child -> ppipe's descriptor) where the child will find them, for the block.

    Raises ``OSError`` (EMFILE) when ppipe has no descriptor left for a
    copy; whatever it made is closed again, as it is after the block.
    """
    if not extra:
        yield Placement()
        return
    made: list[int] = []
    try:
        moves = []
        for number, source in extra.items():
            if source == number:
                continue  # there already
            if _free(number):
                os.dup2(source, number, inheritable=False)  # pass_fds makes the child's copy inheritable
                made.append(number)
            else:
                moves.append((source, number))
        child_moves = []
        for source, number in moves:
            # A copy above every number first, so that no move in the child overwrites
            # a source another move still needs (63 -> 62 while 62 -> 63).
            copy = fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, FIRST_SUBSTITUTION_FD + 1)
            made.append(copy)
            child_moves.append((copy, number))
        yield Placement(tuple(extra), tuple(child_moves))
    finally:
        for fd in made:
            with contextlib.suppress(OSError):
                os.close(fd)


def _free(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return True
    return False

"""What each stage's process gets as its descriptors, and ppipe's copies of them until it has started.

The wiring fills a table per stage (0, 1, 2, and its process substitutions'
numbers: 63 for ``/dev/fd/63``); as the stage starts, its redirections are
applied to a copy of that table, left to right as a shell applies them, and
once it has started (or failed to) ppipe closes every copy it held for it,
so that its neighbours see EOF and EPIPE when it goes.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping

from ppipe.graph import Graph, RedirectOp, Stage


class StageDescriptors:
    """Per stage: ``table`` (number in the child -> ppipe's descriptor) and ``owned`` (what ppipe closes
    after the spawn; ppipe's own stdin and stdout, handed over, are in the table but not owned)."""

    def __init__(self, graph: Graph, cwd: str | None) -> None:
        self.graph = graph
        self.cwd = cwd
        self.table: dict[int, dict[int, int]] = {s.id: {} for s in graph}
        self.owned: dict[int, set[int]] = {s.id: set() for s in graph}

    def give(self, sid: int, fd: int, own: int) -> None:
        """The stage's process gets ``own`` as its descriptor ``fd``; ppipe closes its copy once it has started."""
        self.table[sid][fd] = own
        self.owned[sid].add(own)

    def for_spawn(self, stage: Stage) -> dict[int, int]:
        """The descriptors the stage's process gets, its redirections applied left to right, then ``|&``.

        Raises ``OSError`` (its ``filename`` the target) when a redirection
        cannot be opened; what it opened is closed again.
        """
        fds = dict(self.table[stage.id])
        substitutions = {f"/dev/fd/{number}": fd for number, fd in fds.items() if number > 2}
        self.owned[stage.id].update(apply_redirects(stage, fds, self.cwd, substitutions))
        if any(e.with_stderr for e in self.graph.outputs(stage.id)):
            fds[2] = fds[1]
        return fds

    def release(self, sid: int) -> None:
        """Closes ppipe's copies of what the stage's process got (or never will), so that its
        neighbours see EOF and EPIPE when it goes."""
        for fd in self.owned[sid]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.owned[sid] = set()

    def release_all(self) -> None:
        for sid in self.owned:
            self.release(sid)


def apply_redirects(
    stage: Stage, fds: dict[int, int], cwd: str | None, substitutions: Mapping[str, int] | None = None
) -> list[int]:
    """Applies the stage's redirections to ``fds`` left to right, as a shell does; returns what it opened.

    A target that is one of the stage's ``substitutions`` (``< /dev/fd/63``
    from ``< <(...)``) is that descriptor, as the stage itself would find it
    once started; it is not opened in ppipe, where 63 is something else.
    Raises ``OSError`` (its ``filename`` the target) when one cannot be
    opened, having closed what it opened before.
    """
    opened: list[int] = []
    try:
        for redirect in stage.redirects:
            if redirect.op is RedirectOp.DUP:
                assert redirect.source_fd is not None
                fds[redirect.fd] = fds[redirect.source_fd]
                continue
            assert redirect.target is not None
            if redirect.error:
                raise OSError(errno.EINVAL, redirect.error, redirect.target)
            if substitutions and redirect.target in substitutions:
                fds[redirect.fd] = substitutions[redirect.target]
                continue
            fd = os.open(os.path.join(cwd or "", redirect.target), _OPEN_FLAGS[redirect.op] | os.O_CLOEXEC, 0o666)
            opened.append(fd)
            fds[redirect.fd] = fd
    except OSError as error:
        error.filename = redirect.target
        for fd in opened:
            os.close(fd)
        raise
    return opened


_OPEN_FLAGS = {
    RedirectOp.READ: os.O_RDONLY,
    RedirectOp.WRITE: os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    RedirectOp.APPEND: os.O_WRONLY | os.O_CREAT | os.O_APPEND,
}

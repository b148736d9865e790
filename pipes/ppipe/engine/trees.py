"""Process trees: stopping a stage stops everything it started, however it left home.

A stage's descendants are not in any list ppipe keeps: a shell stage forks
its commands, a daemon-like one double-forks (``sh -c '(sleep 45 &); cat'``:
the subshell exits at once and ``sleep`` is orphaned), and some call
``setsid`` and leave the process group, so neither the stage's pid nor a
group signal reaches them. On Linux this module finds them all:

- while a run lasts, the process running the engine is a *child subreaper*
  (``PR_SET_CHILD_SUBREAPER``, :func:`subreaper`): an orphan anywhere below
  it is reparented to it instead of to init, so it stays findable;
- a walk of ``/proc/*/stat`` (parent links, :class:`ProcessTable`) gives
  every descendant of each stage, and of each *stray*: a child of this
  process that is neither a stage nor was its child before the run began,
  which can only be an orphan it adopted (:class:`RunTrees`);
- SIGKILL first freezes the tree with SIGSTOP, walking it again until no new
  member appears, so nothing forks its way out between the walk and the
  kill; other signals (SIGTERM, the forwarded SIGINT/SIGHUP) are sent to the
  members of one walk, and the SIGKILL after the grace walks again.

Strays are reaped here with ``waitpid`` on their own pids, ``WNOHANG``; never
``waitpid(-1)``, which would take tornado's stages' statuses from it.

Where there is no ``/proc`` (not Linux) every function falls back to the
root pids alone, which is what ppipe did before: stages are signalled, their
descendants are their business. :func:`signal_tree` and :func:`tree` are for
whoever must stop a tree it does not own as a child (the sharded run's
coordinator, stopping a shard attempt and everything under it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

#: Where the process table is read from; a missing one means "no trees here" (ppipe then signals stages only).
PROC = "/proc"

#: How often the end of a stopped run looks again for descendants still alive.
POLL_INTERVAL = 0.02

#: How long, after SIGKILL, ppipe waits for a tree to be gone before it gives up (a member it may not kill).
KILL_LIMIT = 5.0

#: Walks at most this many times while freezing a tree: each walk may find children forked during the last.
FREEZE_ROUNDS = 50

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


class ProcessTable:
    """One reading of the process table: every process's parent, and which processes are zombies.

    A zombie has exited: it cannot be signalled, and its children were
    already handed to a reaper, so it is never a member of a tree; but a
    zombie stray still has to be reaped, so it stays in :attr:`parents`.
    """

    def __init__(self, parents: dict[int, int], zombies: frozenset[int]) -> None:
        self.parents = parents
        self.zombies = zombies
        self._children: dict[int, list[int]] = {}
        for pid, parent in parents.items():
            self._children.setdefault(parent, []).append(pid)

    @classmethod
    def read(cls) -> ProcessTable | None:
        """The table as ``/proc`` says it is now; None where there is none (or it cannot be read)."""
        parents: dict[int, int] = {}
        zombies: set[int] = set()
        try:
            entries = os.listdir(PROC)
        except OSError:
            return None
        for name in entries:
            if not name.isdigit():
                continue
            try:
                with open(f"{PROC}/{name}/stat", "rb") as handle:
                    data = handle.read()
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited and reaped since the listing
            except OSError:
                return None  # out of descriptors, say: a partial table would miss members silently
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
            fields = data[data.rfind(b")") + 2 :].split(b" ", 2)
            if len(fields) < 3 or not fields[1].isdigit():
                continue  # not what a stat line looks like: read as it vanished
            pid = int(name)
            parents[pid] = int(fields[1])
            if fields[0] in (b"Z", b"X"):
                zombies.add(pid)
        return cls(parents, frozenset(zombies))

    def children(self, pid: int) -> list[int]:
        """The processes whose parent is ``pid``, zombies included."""
        return self._children.get(pid, [])

    def tree(self, roots: Iterable[int]) -> list[int]:
        """The living ``roots`` that exist and all their living descendants, each once, parents before children."""
        found: list[int] = []
        seen: set[int] = set()
        queue = deque(pid for pid in roots if pid in self.parents)
        while queue:
            pid = queue.popleft()
            if pid in seen:
                continue
            seen.add(pid)
            if pid not in self.zombies:
                found.append(pid)
            queue.extend(self.children(pid))
        return found


def tree(root_pid: int) -> list[int]:
    """``root_pid`` and its living descendants now, parents first; ``[root_pid]`` where there is no ``/proc``.

    Empty once the root has exited (its children then belong to another
    reaper) and nothing living is left under it. A coordinator can poll it
    after :func:`signal_tree` to learn when a tree it stopped is over.
    """
    table = ProcessTable.read()
    if table is None:
        return [root_pid]
    return table.tree([root_pid])


def signal_tree(root_pid: int, sig: int) -> list[int]:
    """Sends ``sig`` to ``root_pid`` and to every descendant of it; returns the pids it was sent to.

    The caller need not be the root's parent: the tree is found in
    ``/proc``. SIGKILL freezes the tree first (:func:`freeze`), so a member
    forking meanwhile cannot leave a child behind; other signals go to the
    members of one walk, parents first. Where there is no ``/proc``, only
    ``root_pid`` gets it. Members gone meanwhile, or that this process may
    not signal, are skipped.

    Call it while the root still runs: once a process has exited its
    children belong to the nearest subreaper above it (or to init), and no
    walk from its pid finds them. A root running ppipe's engine is itself a
    subreaper, so its stages' orphans are under it until it dies.
    """
    if not os.path.isdir(f"{PROC}/self"):
        send(root_pid, sig)
        return [root_pid]
    return deliver(lambda: tree(root_pid), sig)


def kill_trees(roots: Callable[[], Iterable[int]]) -> list[int]:
    """SIGKILLs the trees of whatever ``roots()`` lists at each walk (frozen first); returns the pids killed.

    For a process seeing out what it leaves behind (its own children, the
    orphans it adopted), where :func:`signal_tree` would stop the caller too.
    Where there is no ``/proc``, the roots alone.
    """

    def members() -> list[int]:
        table = ProcessTable.read()
        return list(roots()) if table is None else table.tree(roots())

    return deliver(members, signal.SIGKILL)


def deliver(members: Callable[[], list[int]], sig: int) -> list[int]:
    """Sends ``sig`` to what ``members()`` lists; for SIGKILL, freezes it first and kills all it froze."""
    targets = freeze(members) if sig == signal.SIGKILL else members()
    for pid in targets:
        send(pid, sig)
    return targets


def freeze(members: Callable[[], list[int]]) -> list[int]:
    """SIGSTOPs what ``members()`` lists, again and again until a walk finds nothing new; returns it all.

    A stopped process cannot fork, so once a walk finds no new member the
    tree is complete; a fork under way when SIGSTOP came shows up in the
    next walk and is stopped in turn. For SIGKILL only (which needs no
    SIGCONT after): a process stopped and then sent SIGTERM would hold the
    signal until continued, and its parent may have been told it stopped.
    """
    stopped: dict[int, None] = {}
    for _ in range(FREEZE_ROUNDS):
        fresh = [pid for pid in members() if pid not in stopped]
        if not fresh:
            break
        for pid in fresh:
            send(pid, signal.SIGSTOP)
            stopped[pid] = None
    return list(stopped)


def send(pid: int, sig: int) -> None:
    """``os.kill``, quiet when the process is gone or not ours to signal (a setuid descendant)."""
    # os.kill, never Popen.send_signal: that one polls, and a poll that reaps
    # a stage leaves tornado's wait_for_exit hanging.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


# -- the subreaper


@functools.cache
def prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` through ctypes (the standard library has no binding), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return function


def child_subreaper() -> bool | None:
    """Whether this process is a child subreaper now (``PR_GET_CHILD_SUBREAPER``); None where it cannot say."""
    call = prctl()
    if call is None:
        return None
    import ctypes

    value = ctypes.c_int(0)
    if call(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) != 0:
        return None
    return bool(value.value)


def _set_child_subreaper(on: bool) -> bool:
    call = prctl()
    return call is not None and call(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def adopt_orphans() -> bool:
    """Makes this process a child subreaper for the rest of its life (not inherited by its forks); whether it is.

    For a process that never runs the engine itself (a sharded run's
    supervisor), so :func:`subreaper` 's bookkeeping, which its forks would
    inherit, stays untouched.
    """
    return _set_child_subreaper(True)


#: Blocks inside :func:`subreaper` now (runs may overlap on one loop), and the flag found by the first.
_subreaper_depth = 0
_subreaper_before: bool | None = None


@contextlib.contextmanager
def subreaper() -> Iterator[bool]:
    """Makes this process a child subreaper for the block; yields whether it is one.

    Orphans below it are then reparented to it rather than to init, so a
    double-forked descendant of a stage stays in reach of :class:`RunTrees`.
    The flag is per process and the engine may run inside someone's program
    (``ppipe.run``): the value found on entry (``PR_GET_CHILD_SUBREAPER``)
    is put back when the last overlapping block ends. The flag is not
    inherited across ``fork``, so stages do not become subreapers. False
    where there is no such thing (not Linux, a kernel before 3.4).
    """
    global _subreaper_depth, _subreaper_before
    if _subreaper_depth == 0:
        _subreaper_before = child_subreaper()
        if _subreaper_before is False:
            _set_child_subreaper(True)
    _subreaper_depth += 1
    try:
        yield bool(child_subreaper())
    finally:
        _subreaper_depth -= 1
        if _subreaper_depth == 0 and _subreaper_before is False:
            _set_child_subreaper(False)


# -- one run's trees

#: The children every run in this process started on purpose (its stages), or that someone :func:`claim` ed.
_claimed: set[int] = set()


def claim(pid: int) -> None:
    """Says that ``pid``, a child of this process started during a run, is no stray for any run to stop.

    The engine claims its stages; someone starting children of their own
    while a ppipe run is going on in the same process should claim them too.
    """
    _claimed.add(pid)


def unclaim(pid: int) -> None:
    """Forgets a :func:`claim` once the child has been reaped (its pid may be reused)."""
    _claimed.discard(pid)


def reap_unclaimed() -> None:
    """Collects the exit of every child of this process that has ended and that no run claimed.

    For a process whose only children are its runs' stages and the orphans
    it adopted as their subreaper (a shard's slot): the adopted ones are
    nobody's to wait for, and would stay zombies, each holding a process of
    the user's ``ulimit -u``. Claimed stages are left to tornado's SIGCHLD
    handler, which needs their statuses; pids are waited for one by one,
    never with ``waitpid(-1)``.
    """
    children = children_of_self()
    if children:
        _reap(children - _claimed)


def children_of_self() -> frozenset[int] | None:
    """The children of this process now, zombies included; None where ``/proc`` cannot say.

    Read from each thread's ``/proc/self/task/*/children`` (a few
    microseconds: no walk of every process); a kernel without that file
    (``CONFIG_PROC_CHILDREN``) gets the full walk instead.
    """
    own: set[int] = set()
    try:
        for tid in os.listdir(f"{PROC}/self/task"):
            with open(f"{PROC}/self/task/{tid}/children") as handle:
                own.update(int(pid) for pid in handle.read().split())
    except FileNotFoundError:
        table = ProcessTable.read()
        if table is None:
            return None
        return frozenset(table.children(os.getpid()))
    except OSError:
        return None
    return frozenset(own)


class RunTrees:
    """The process trees of one run: its stages', and those of the orphans it adopted while it ran.

    :meth:`adopting` spans the run. :meth:`signal` sends a signal to the
    trees of the stages given and of every stray; once a run was stopped,
    :meth:`settle` sees the strays out. A run that ends without being
    stopped leaves its stages' background descendants alone, as bash does.

    A stray is a child of this process that no run claimed and that was not
    one before this run began. A child the caller starts during the run
    without :func:`claim` looks the same, and so do the orphans of another
    run going on in the same process: a stopped run stops those too.
    """

    def __init__(self) -> None:
        #: This process's children before the run; None outside :meth:`adopting`, or without ``/proc``.
        self.before: frozenset[int] | None = None
        #: When the first signal of a stop went out (monotonic), and whether SIGKILL has.
        self.stopped_at: float | None = None
        self.killed = False
        self._mine: set[int] = set()

    @contextlib.contextmanager
    def adopting(self) -> Iterator[None]:
        """The run's span: this process is a subreaper (:func:`subreaper`), and knows its earlier children."""
        with subreaper():
            self.before = children_of_self()
            try:
                yield
            finally:
                self.before = None
                for pid in self._mine:
                    unclaim(pid)
                self._mine.clear()

    def claim(self, pid: int) -> None:
        """A stage started: it is a root of its own tree, not a stray."""
        self._mine.add(pid)
        claim(pid)

    def release(self, pid: int) -> None:
        """A stage was reaped: its pid is free again."""
        self._mine.discard(pid)
        unclaim(pid)

    def stopping(self) -> None:
        """A stop began without ppipe sending the first signal (the terminal sent Ctrl-C to the group)."""
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()

    def signal(self, stages: Iterable[int], sig: int) -> None:
        """Sends ``sig`` to the ``stages`` (their pids) and everything under them, and to every stray's tree.

        Without ``/proc``, to the stages alone.
        """
        self.stopping()
        self.killed = self.killed or sig == signal.SIGKILL
        roots = list(stages)
        before = self.before
        if before is None:  # no /proc: the stages alone, as before ppipe knew trees
            for pid in roots:
                send(pid, sig)
        else:
            deliver(lambda: self._members(roots, before), sig)

    def _members(self, roots: list[int], before: frozenset[int]) -> list[int]:
        table = ProcessTable.read()
        if table is None:
            return roots
        return table.tree([*roots, *self._strays(table, before)])

    @staticmethod
    def _strays(table: ProcessTable, before: frozenset[int]) -> list[int]:
        return [pid for pid in table.children(os.getpid()) if pid not in before and pid not in _claimed]

    async def settle(self, kill_after: float) -> None:
        """After a stop, once the stages are gone: sees every stray's tree out, and reaps the strays.

        Waits for them until ``kill_after`` from the stop's first signal (the
        grace the stages had), then kills what is left, walking again each
        time, for at most :data:`KILL_LIMIT` more. A run never stopped
        returns at once: its background descendants are left to run.
        """
        before = self.before
        if self.stopped_at is None or before is None:
            return
        killed_at = time.monotonic() if self.killed else None
        while (table := ProcessTable.read()) is not None:
            strays = self._strays(table, before)
            _reap(strays)
            if not table.tree(strays):
                return
            now = time.monotonic()
            if killed_at is None and (self.killed or now >= self.stopped_at + kill_after):
                killed_at = now
            if killed_at is not None:
                if now > killed_at + KILL_LIMIT:
                    return
                self.signal([], signal.SIGKILL)
            await asyncio.sleep(POLL_INTERVAL)


def _reap(pids: Iterable[int]) -> None:
    """Collects the exit of each of ``pids`` that has ended; never blocks, never touches another child."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

"""Starting a sharded run's supervisor: a fork of ppipe before its event loop, or else a fresh interpreter.

``tornado.process.fork_processes`` must be called from a process with no
event loop and no threads. The command line and :func:`ppipe.run` start a
sharded run before their loop exists, so the supervisor is simply a fork of
ppipe taken then (:func:`fork_supervisor`): no interpreter to start, no
module to import again, and ppipe's own state is never touched again in the
child, which ends with ``os._exit``. Where a loop is already running (the
async API) or threads exist, forking is not safe, and the supervisor is a
new ``python -c`` that imports :mod:`ppipe.shards.supervisor` from this
ppipe's own package root (:func:`spawn_supervisor`); its spec goes through a
pipe on its stdin, not argv: Linux takes at most 128 KiB in one argument.

Either way the supervisor ignores the signals ppipe handles for it (ppipe
passes stops on over each attempt's control socket), dies with ppipe
(``PR_SET_PDEATHSIG``), and holds none of ppipe's descriptors but the
doorbell.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.process import Subprocess

from ppipe.engine import trees
from ppipe.engine.descriptors import make_pipe, readable, stream
from ppipe.engine.options import RunOptions
from ppipe.engine.processes import FORWARDED_SIGNALS, parent_death_hook
from ppipe.shards import supervisor as supervisor_module
from ppipe.shards.input import write_all
from ppipe.shards.plan import ShardPlan

_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from ppipe.shards.supervisor import main; main()"


def supervisor_spec(
    text: str, plan: ShardPlan, options: RunOptions, *, split: bool, snapshot_every: float | None
) -> dict[str, Any]:
    """What the supervisor and every attempt need to know: ``split`` gives each attempt a pipe for its
    share of ppipe's input; ``snapshot_every`` is the seconds between an attempt's snapshots (None: no
    one watches)."""
    ignored = {sig for sig in FORWARDED_SIGNALS if signal.getsignal(sig) == signal.SIG_IGN}
    return {
        "pipeline": text,
        "slots": plan.slots,
        "split": split,
        "no_fail": options.no_fail,
        "kill_after": options.kill_after,
        "count_lines": options.count_lines,
        "snapshot_every": snapshot_every,
        # Every start after a slot's first is a restart to tornado; its global count is only a
        # backstop, ppipe decides (see ppipe.shards.dispatch).
        "bound": plan.local * (plan.max_restarts + 1) + 2 * plan.slots + 3,
        "default_signals": [int(sig) for sig in FORWARDED_SIGNALS if sig not in ignored],
    }


class Supervisor:
    """A started supervisor: its pid, its end, and killing it (which ends its shards and their stages)."""

    pid: int
    returncode: int | None = None

    async def wait(self) -> int:
        """Its exit status, once it has exited."""
        raise NotImplementedError

    def kill(self) -> None:
        """Kills it and every process under it: its slots, their stages, and those stages' descendants."""
        if self.returncode is None:
            trees.signal_tree(self.pid, signal.SIGKILL)

    def release(self) -> None:
        """Lets go of what ppipe still holds for it, once the run is over."""
        trees.unclaim(self.pid)


def can_fork() -> bool:
    """Whether this process may fork a supervisor now: no event loop running, no other thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return threading.active_count() == 1
    return False


def fork_supervisor(spec: dict[str, Any], doorbell: socket.socket, options: RunOptions) -> Supervisor:
    """Forks the supervisor now, before any event loop; ``doorbell`` is its end, closed here in ppipe."""
    parent = os.getpid()
    death = parent_death_hook(parent)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; it never returns
        # Objects ppipe left for the collector must never be finalized here: one holding a descriptor
        # would close whatever number the supervisor has reused by then.
        gc.freeze()
        try:
            _become_supervisor(death, doorbell.fileno(), options)
            supervisor_module.serve({**spec, "doorbell": doorbell.fileno()}, doorbell)
        finally:
            os._exit(1)
    doorbell.close()
    trees.claim(pid)  # ours: never a stray of another run stopping in this process
    return _Forked(pid)


def _become_supervisor(death: Callable[[], None] | None, doorbell_fd: int, options: RunOptions) -> None:
    """In the fork: deaf to the forwarded signals, tied to ppipe's life, holding only the doorbell."""
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if death is not None:
        death()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    if options.stderr is not None:
        os.dup2(options.stderr, 2)
    os.closerange(3, doorbell_fd)
    os.closerange(doorbell_fd + 1, 1 << 16)
    if options.cwd is not None:
        os.chdir(options.cwd)
    if options.env is not None:
        os.environ.clear()
        os.environ.update(options.env)


class _Forked(Supervisor):
    """A supervisor forked from ppipe: not tornado's child, so its end is read from a pidfd (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    async def wait(self) -> int:
        while self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
                break
            await _exited(self.pid)
        return self.returncode


async def _exited(pid: int) -> None:
    """Returns once ``pid`` may have exited: its pidfd is readable, or after a short sleep where there is none."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        await asyncio.sleep(0.05)
        return
    try:
        await readable(asyncio.get_running_loop(), pidfd)
    finally:
        os.close(pidfd)


class _Spawned(Supervisor):
    """A supervisor started as a fresh interpreter, a tornado ``Subprocess``."""

    def __init__(self, process: Subprocess, handing_over: asyncio.Future[None]) -> None:
        self.process = process
        self.pid = process.pid
        self.handing_over = handing_over

    async def wait(self) -> int:
        self.returncode = await self.process.wait_for_exit(raise_error=False)
        return self.returncode

    def kill(self) -> None:
        self.returncode = self.returncode if self.returncode is not None else self.process.returncode
        super().kill()

    def release(self) -> None:
        super().release()
        self.handing_over.cancel()


def spawn_supervisor(spec: dict[str, Any], doorbell: socket.socket, options: RunOptions) -> Supervisor:
    """Starts the supervisor as a fresh interpreter, ``doorbell`` (closed here in ppipe) its only extra fd."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    doorbell_fd = doorbell.fileno()
    spec_read, spec_write = make_pipe(enlarge=False)
    try:
        process = Subprocess(
            [sys.executable, "-c", _BOOTSTRAP, package_root],
            stdin=spec_read,
            stdout=subprocess.DEVNULL,
            stderr=options.stderr,
            pass_fds=(doorbell_fd,),
            env=options.env,
            cwd=options.cwd,
            preexec_fn=_supervisor_hook(),
        )
    except BaseException:
        os.close(spec_write)
        raise
    finally:
        os.close(spec_read)
        doorbell.close()
    trees.claim(process.pid)
    data = json.dumps({**spec, "doorbell": doorbell_fd}).encode()
    return _Spawned(process, asyncio.ensure_future(_hand_over(spec_write, data)))


async def _hand_over(fd: int, data: bytes) -> None:
    """Writes ``data`` into the pipe ``fd``, then closes it; a reader gone (the supervisor died) says so by its exit."""
    target = stream(fd)
    try:
        await write_all(target, data)
    except StreamClosedError:
        pass
    finally:
        target.close()


def _supervisor_hook() -> Callable[[], None]:
    """The fresh supervisor's ``preexec_fn``: it dies with ppipe, and never of the signals ppipe handles for it.

    Ignoring them before exec (not once the interpreter is up) means a
    Ctrl-C during its start-up cannot kill it half-way; its shards take the
    usual dispositions back.
    """
    death = parent_death_hook()

    def hook() -> None:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if death is not None:
            death()

    return hook

"""Starting a sharded run's supervisor: a fresh interpreter that can call ``fork_processes``.

``tornado.process.fork_processes`` must be called from a process with no
event loop and no threads, and ppipe has both by the time it runs shards; so
the supervisor is a new ``python -c`` that imports
:mod:`ppipe.shards.supervisor` from this ppipe's own package root. Its spec
goes through a pipe on its stdin, not argv: Linux takes at most 128 KiB in
one argument, and a long pipeline's JSON is larger.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.process import Subprocess

from ppipe.engine.descriptors import make_pipe, stream
from ppipe.engine.options import RunOptions
from ppipe.engine.processes import FORWARDED_SIGNALS, parent_death_hook
from ppipe.shards.input import write_all
from ppipe.shards.plan import ShardPlan

_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from ppipe.shards.supervisor import main; main()"


def start_supervisor(
    text: str, plan: ShardPlan, options: RunOptions, *, doorbell_fd: int, split: bool, snapshot_every: float | None
) -> tuple[Subprocess, asyncio.Future[None]]:
    """Starts the supervisor of ``plan``'s shards of ``text``, with ``doorbell_fd`` as its only extra descriptor.

    ``split``: each attempt gets a pipe for its share of ppipe's input.
    ``snapshot_every``: seconds between an attempt's snapshots (None: no
    one watches). Returns the process and the task writing its spec (done
    once the supervisor has read it, or has died).
    """
    ignored = {sig for sig in FORWARDED_SIGNALS if signal.getsignal(sig) == signal.SIG_IGN}
    spec: dict[str, Any] = {
        "pipeline": text,
        "slots": plan.slots,
        "doorbell": doorbell_fd,
        "split": split,
        "no_fail": options.no_fail,
        "kill_after": options.kill_after,
        "count_lines": options.count_lines,
        "count_lines_below": options.count_lines_below,
        "snapshot_every": snapshot_every,
        # Every start after a slot's first is a restart to tornado; its global count is only a
        # backstop, ppipe decides (see ppipe.shards.dispatch).
        "bound": plan.local * (plan.max_restarts + 1) + 2 * plan.slots + 3,
        "default_signals": [int(sig) for sig in FORWARDED_SIGNALS if sig not in ignored],
    }
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec_read, spec_write = make_pipe(enlarge=False)
    try:
        supervisor = Subprocess(
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
    return supervisor, asyncio.ensure_future(_hand_over(spec_write, json.dumps(spec).encode()))


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
    """The supervisor's ``preexec_fn``: it dies with ppipe, and never of the signals ppipe handles for it.

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

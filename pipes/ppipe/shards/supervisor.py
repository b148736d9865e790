"""The shard side of a sharded run: a supervisor that calls ``fork_processes``, and each shard attempt.

ppipe (:mod:`ppipe.shards.execution`) starts this module as a fresh interpreter,
its spec (as JSON) on its stdin, because ``tornado.process.fork_processes``
must be called from a process with no event loop and no threads, and ppipe
itself has both by then. The supervisor imports the engine once (so that
each fork starts warm), ignores the signals ppipe handles for it, and calls
``fork_processes`` with one process per *slot* (``--jobs``, at most the
number of shards). From then on tornado owns it: it forks a slot again
whenever its process exits non-zero or is killed.

Each forked process is a *slot* (:func:`run_slot`) that runs attempts one
after another (:func:`run_attempt`): for each it makes its own pipes for
stdout, stderr and (when ppipe splits its input) stdin, and a control
socket, and hands ppipe their far ends with its hello on the shared
doorbell. ppipe answers with the shard to run (the next in task order, or a
failed one's restart once its delay has passed) or with none (no work is
left, or the run is stopping), and after the result whether the slot has
more work: if so the same process says hello again, if not it exits 0. So
which shard runs when, and every restart, is ppipe's decision
(:mod:`ppipe.shards.schedule`, :mod:`ppipe.policy`); tornado forks a slot
again only when its process dies, and its single global counter is only a
backstop here.

Two things tornado leaves to its caller are done here. The supervisor tells
ppipe how each slot's process ended (``os.wait`` is wrapped, since tornado
reaps the children and says nothing), so an attempt killed before it could
report still gets its true status. And nothing outlives ppipe: the
supervisor dies with ppipe (``PR_SET_PDEATHSIG``); each slot is sent
SIGUSR1 when the supervisor dies, and kills its stages' trees before it
goes; a slot's stages are not tied to it (a ``preexec_fn`` would cost a
fork of this interpreter per stage), so the supervisor, their subreaper,
kills the trees a slot leaves when it dies before its end. If tornado gives
up (``RuntimeError``), the supervisor exits and takes the slots with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import tornado.platform.asyncio  # noqa: F401  (IOLoop.current() imports it: once here, not in every attempt)
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.process import fork_processes

from ppipe.engine import trees
from ppipe.engine.descriptors import make_pipe
from ppipe.engine.execution import execute
from ppipe.engine.options import RunningPipeline, RunOptions
from ppipe.engine.processes import parent_death_hook, untie_stages, valid_signals_once
from ppipe.engine.sinks import Sink
from ppipe.engine.tornado_internals import also_on_sigchld
from ppipe.errors import PpipeError
from ppipe.language.parser import parse
from ppipe.shards import channel


def main() -> None:
    """The supervisor as a fresh interpreter: its spec on stdin, the doorbell's descriptor in it."""
    spec = _read_spec()
    serve(spec, socket.socket(fileno=spec["doorbell"]))


def serve(spec: dict[str, Any], doorbell: socket.socket) -> None:
    """Runs the slots until ppipe has no more work for them; never returns.

    SIGINT, SIGTERM and SIGHUP are ignored already (see
    :mod:`ppipe.shards.launcher`), so that a Ctrl-C during start-up cannot
    kill us half-way. Nothing here returns into the caller's Python: in a
    fork of ppipe that would run ppipe's own clean-up a second time.
    """
    supervisor = os.getpid()
    valid_signals_once()
    # tornado logs every restart as a warning; ppipe reports them itself.
    logging.getLogger("tornado.general").setLevel(logging.ERROR)
    trees.adopt_orphans()
    _watch_slots(doorbell)
    try:
        slot = fork_processes(spec["slots"], max_restarts=spec["bound"])
    except SystemExit as done:  # every slot ended with 0: tornado's way of saying all is done
        os._exit(done.code if isinstance(done.code, int) else 0)
    except RuntimeError:
        os._exit(1)  # the shards die with the supervisor (their death signal)
    run_slot(slot, spec, doorbell, supervisor)


def _read_spec() -> dict[str, Any]:
    """The spec ppipe writes on our stdin (not in argv, where one argument holds at most 128 KiB on Linux).

    Read to its end, then stdin becomes ``/dev/null``, so that no shard
    holds the pipe. A spec cut short means ppipe has gone: we go too.
    """
    data = bytearray()
    while chunk := os.read(0, 1 << 16):
        data += chunk
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        spec: dict[str, Any] = json.loads(data)
    except ValueError:
        os._exit(1)
    return spec


def _watch_slots(doorbell: socket.socket) -> None:
    """Makes tornado's ``os.fork`` note each slot, and its ``os.wait`` tell ppipe each one's raw wait status.

    The supervisor is the subreaper of the slots' stages: a slot's stages
    are not tied to it (see :func:`run_slot`), so when a slot dies before
    its end (killed, or crashed) they are reparented here, and killed here,
    trees and all. Orphans a slot that ended well left behind (background
    descendants of runs that ended by themselves) are left to run, as under
    bash.
    """
    fork, wait = os.fork, os.wait
    slots: set[int] = set()
    spared: set[int] = set()

    def fork_slot() -> int:
        pid = fork()
        if pid:
            slots.add(pid)
        return pid

    def wait_and_report() -> tuple[int, int]:
        pid, status = wait()
        spared.discard(pid)
        if pid in slots:
            slots.discard(pid)
            orphans = (trees.children_of_self() or frozenset()) - slots - spared
            if status == 0:
                spared.update(orphans)
            else:
                trees.kill_trees(lambda: (trees.children_of_self() or frozenset()) - slots - spared)
        with contextlib.suppress(OSError):  # ppipe has gone; the death signal ends us all
            channel.ring(doorbell, ("exited", pid, status))
        return pid, status

    os.fork, os.wait = fork_slot, wait_and_report


def run_slot(slot: int, spec: dict[str, Any], doorbell: socket.socket, supervisor: int) -> None:
    """A slot's process, forked by ``fork_processes``: one attempt after another while ppipe has work; never returns.

    The process lives on from one attempt to the next instead of exiting to
    be forked again: a fork of this interpreter costs milliseconds, as much
    as the attempt itself. Nothing of an attempt stays behind for the next:
    each makes its own pipes, control socket, event loop and engine, and the
    stages are processes of their own. It ends with 0 when ppipe has no more
    work for it, and tornado forks it afresh only when it dies.
    """
    for number in spec["default_signals"]:
        signal.signal(number, signal.SIG_DFL)
    signal.signal(_SUPERVISOR_DIED, _die_with_supervisor)
    hook = parent_death_hook(supervisor, _SUPERVISOR_DIED)
    if hook is not None:
        hook()
    untie_stages()
    while _reaping(lambda: run_attempt(slot, spec, doorbell)):
        pass
    os._exit(0)


def _reaping(attempt: Callable[[], bool]) -> bool:
    """Runs ``attempt`` while the slot reaps, as each ends, the orphans it adopts (it is a subreaper).

    A stage's background child (``sh -c '(sleep 1 &)'``) is reparented to
    the slot and would stay a zombie once it ends: nobody waits for it, and
    a batch of thousands of items runs out of processes. Between attempts a
    Python SIGCHLD handler reaps; during one the loop's handler does it
    after tornado's (see :class:`_Link`), since asyncio takes SIGCHLD over
    for the attempt and puts the default back at its end.
    """
    signal.signal(signal.SIGCHLD, _on_sigchld)
    trees.reap_unclaimed()  # those that ended while nothing listened
    try:
        return attempt()
    finally:
        signal.signal(signal.SIGCHLD, _on_sigchld)
        trees.reap_unclaimed()


def _on_sigchld(signum: int, frame: object) -> None:
    trees.reap_unclaimed()


#: What a slot gets when its supervisor dies (ppipe was killed): it kills its stages' trees, then itself.
_SUPERVISOR_DIED = signal.SIGUSR1


def _die_with_supervisor(signum: int, frame: object) -> None:
    """The slot's stages are not tied to it, and nobody above is left to see them out: it does, then ends."""
    trees.kill_trees(lambda: trees.children_of_self() or ())
    os._exit(128 + signum)


def run_attempt(slot: int, spec: dict[str, Any], doorbell: socket.socket) -> bool:
    """One attempt of whichever shard ppipe gives this slot; whether ppipe has another for it.

    ppipe's "go" names the shard (its index and placeholder values), or is
    None: no work is left for this slot, which then ends for good.
    """
    control, far_control = socket.socketpair()
    out_read, out_write = make_pipe()
    err_read, err_write = make_pipe(enlarge=False)
    in_read, in_write = make_pipe() if spec["split"] else (os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None)
    far_ends = [far_control.fileno(), out_read, err_read, *([in_write] if in_write is not None else [])]
    channel.ring(doorbell, ("hello", slot, os.getpid()), far_ends)
    for fd in far_ends:
        os.close(fd)
    far_control.detach()
    with control:
        work = _answer(control, "go")
        if not work:  # no work left for this slot, the run is stopping, or ppipe has gone
            for fd in (in_read, out_write, err_write):
                os.close(fd)
            return False
        message = _run(spec, work, control, (in_read, out_write, err_write))
        try:
            channel.send(control, message)
        except OSError:
            return False
        return bool(_answer(control, "again"))


def _run(spec: dict[str, Any], work: dict[str, Any], control: socket.socket, fds: tuple[int, int, int]) -> Any:
    """Runs the shard ``work`` names on the attempt's pipes ``fds`` (stdin, stdout, stderr): its report to ppipe."""
    observer = _Link(control, spec["snapshot_every"])
    try:
        # Filled into the parsed words, not the text: '{task_id}>f' stays a word, then a redirection.
        graph = parse(spec["pipeline"], placeholders=work["values"])
        options = RunOptions(
            stdin=fds[0],
            stdout=fds[1],
            stderr=fds[2],
            no_fail=spec["no_fail"],
            kill_after=spec["kill_after"],
            count_lines=spec["count_lines"],
            handle_signals=True,
            observer=observer,
        )
        result = asyncio.run(execute(graph, options))
    except PpipeError as error:  # a command missing on this shard only: running it again will not help
        return ("error", str(error), error.status)
    finally:
        # The pipes go now, before ppipe hears the result: it waits for their EOF to finish the attempt.
        for fd in fds:
            os.close(fd)
    return ("result", result)


def _answer(control: socket.socket, question: str) -> Any:
    """ppipe's answer to ``"go"`` (the work, or None) or ``"again"`` (a bool); ppipe gone means no.

    A ``"stop"`` or ``"timeout"`` before the go is moot: there is nothing to stop yet.
    """
    while (message := channel.receive(control)) is not None:
        if message[0] == question:
            return message[1]
        if message[0] in ("stop", "timeout") and question == "go":
            return None
    return None


class _Link:
    """The attempt's engine observer: takes ppipe's stop requests, and sends snapshots when ppipe shows a view.

    A stop request (ppipe got SIGINT, SIGTERM or SIGHUP, or ``--halt`` or
    ``--timeout`` stops the run) stops the engine as that signal would,
    without a second signal that the engine would take for "stop at once";
    a timeout request (``--shard-timeout``) stops it as its own ``--timeout``
    would, so that the attempt reports 124.
    """

    def __init__(self, control: socket.socket, snapshot_every: float | None) -> None:
        self.control = control
        self.every = snapshot_every
        self.execution: RunningPipeline | None = None
        self._timer: PeriodicCallback | None = None

    def stderr_sink(self, stage: object) -> Sink | None:
        return None

    def stdout_sink(self) -> Sink | None:
        return None

    def started(self, execution: RunningPipeline) -> None:
        self.execution = execution
        also_on_sigchld(asyncio.get_running_loop(), trees.reap_unclaimed)
        IOLoop.current().add_handler(self.control.fileno(), self._on_request, IOLoop.READ)
        if self.every:
            self._timer = PeriodicCallback(self.send, self.every * 1000)
            self._timer.start()
            self.send()

    def _on_request(self, fd: int, events: int) -> None:
        message = channel.receive(self.control)
        if message is None:
            IOLoop.current().remove_handler(fd)
        elif message[0] == "stop" and self.execution is not None:
            self.execution.stop_for(message[1])
        elif message[0] == "timeout" and self.execution is not None:
            self.execution.time_out(*message[1:2])  # the --shard-timeout that ran out

    def finished(self) -> None:
        IOLoop.current().remove_handler(self.control.fileno())
        if self._timer is not None:
            self._timer.stop()

    def send(self) -> None:
        if self.execution is not None:
            try:
                channel.send(self.control, ("snapshot", self.execution.snapshot()))
            except OSError:
                self.finished()


if __name__ == "__main__":
    main()

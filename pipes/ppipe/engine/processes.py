"""Processes: finding a stage's command, starting it, the SIGCHLD handler, signals, parent death.

Shared by plain runs and shards. Commands are resolved on ``PATH`` before
anything starts, so a missing one fails with 127 and nothing half-starts;
the checks are bash's (126 for a directory, no permission, or a binary for
another machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import signal
import stat
import termios
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping

from tornado.process import Subprocess

from ppipe import interrupts, stops
from ppipe.engine.placement import placed
from ppipe.engine.tornado_internals import (
    forget_stale_sigchld_handler,
    loop_signal_handlers,
    processes_still_awaited,
    sigchld_handler_installed,
)
from ppipe.engine.trees import prctl
from ppipe.errors import CommandError, CommandProblem, ExitStatus, PpipeError
from ppipe.graph import Graph
from ppipe.stops import StopReason

#: Signals that, sent to ppipe, are passed on to every stage.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def resolve_commands(graph: Graph, env: Mapping[str, str]) -> dict[int, str]:
    """Finds every stage's executable, or raises :class:`CommandError` naming each one that is missing.

    Mirrors the shell: a name with a ``/`` is used as a path; otherwise each
    ``PATH`` entry (from the stage's own ``PATH=`` if it sets one) is tried
    in order (an empty ``PATH`` runs the name from the working directory, as
    bash does). Not found → 127; found but a directory or not executable, or
    a path that cannot name a file (a component longer than ``NAME_MAX``, a
    file used as a directory) → 126.
    """
    paths: dict[int, str] = {}
    problems: list[CommandProblem] = []
    for stage in graph:
        path_var = dict(stage.env).get("PATH", env.get("PATH", os.defpath))
        found = _resolve(stage.argv[0], path_var)
        if isinstance(found, CommandProblem):
            problems.append(CommandProblem(stage.id, stage.argv[0], found.reason, found.status))
        else:
            paths[stage.id] = found
    if problems:
        raise CommandError(problems)
    return paths


def _resolve(command: str, path_var: str) -> str | CommandProblem:
    if not command:
        return CommandProblem(0, "''", "command not found", ExitStatus.NOT_FOUND)
    if "/" in command or not path_var:
        # bash runs a name itself when PATH is empty, as if it were a path in the working directory
        path = command if "/" in command else os.path.join(".", command)
        return _check_executable(path) or path
    unusable: CommandProblem | None = None
    for directory in path_var.split(os.pathsep):
        candidate = os.path.join(directory or ".", command)
        if not os.path.exists(candidate):
            continue
        problem = _check_executable(candidate)
        if problem is None:
            return candidate
        unusable = unusable or problem
    if unusable is not None:
        return unusable
    if command in SHELL_BUILTINS:
        reason = f"a shell builtin, which cannot be a stage of its own; run it in a shell: sh -c '{command} ...'"
        return CommandProblem(0, command, reason, ExitStatus.NOT_FOUND)
    return CommandProblem(0, command, "command not found", ExitStatus.NOT_FOUND)


#: Commands that exist only inside a shell (no program on PATH does their work): named as such when missing.
SHELL_BUILTINS = frozenset(
    [
        "cd",
        ".",
        "source",
        "export",
        "unset",
        "set",
        "alias",
        "unalias",
        "exit",
        "exec",
        "eval",
        "shift",
        "trap",
        "return",
        "break",
        "continue",
        "ulimit",
        "umask",
        "wait",
        "jobs",
        "fg",
        "bg",
        "disown",
        "history",
        "declare",
        "local",
        "readonly",
        "typeset",
        "let",
        "pushd",
        "popd",
        "dirs",
        "shopt",
        "builtin",
        "hash",
        "type",
        "getopts",
        "read",
    ]
)


def _check_executable(path: str) -> CommandProblem | None:
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        # bash's rule for a failed exec: only a missing file is "not found" (127); a name too long
        # (ENAMETOOLONG), a file used as a directory (ENOTDIR) or a symlink loop cannot be run (126)
        status = ExitStatus.NOT_FOUND if error.errno == errno.ENOENT else ExitStatus.NOT_EXECUTABLE
        return CommandProblem(0, path, error.strerror or "cannot be run", status)
    if stat.S_ISDIR(mode):
        return CommandProblem(0, path, "is a directory", ExitStatus.NOT_EXECUTABLE)
    if not os.access(path, os.X_OK):
        return CommandProblem(0, path, "permission denied (not executable)", ExitStatus.NOT_EXECUTABLE)
    return None


#: How much of a file bash reads to tell a script from a binary (``HASH_BANG_BUFSIZ``).
_SAMPLE_SIZE = 128


def is_binary_file(path: str) -> bool:
    """bash's ``check_binary_file``: an ELF header, or a NUL byte on the first line of the first 128 bytes.

    A file the kernel refused to run (ENOEXEC) is handed to ``sh`` only when
    this says it is text; an executable for another machine would otherwise
    be read as a shell script, and its text parts run as commands.
    """
    try:
        with open(path, "rb") as handle:
            sample = handle.read(_SAMPLE_SIZE)
    except OSError:
        return False  # sh then says what is wrong with it
    if sample.startswith(b"\x7fELF"):
        return True
    lines_checked = None if sample.startswith(b"#!") else 1  # after #!, a NUL anywhere in the sample
    first_lines = sample if lines_checked is None else sample.split(b"\n", 1)[0]
    return b"\0" in first_lines


def spawn(
    argv: list[str],
    path: str,
    fds: Mapping[int, int],
    env: Mapping[str, str],
    cwd: str | None,
    hook: Callable[[], None] | None,
) -> Subprocess:
    """Starts ``argv`` from the resolved ``path`` with ``fds`` as its descriptors: 0, 1 and 2, and any
    higher ones its process substitutions give it (63: ``/dev/fd/63``); nothing else of ppipe's.

    A file with no ``#!`` line that the kernel will not run (ENOEXEC) is run
    with ``sh``, as bash and ``execvp`` do; never a binary file. Raises
    ``OSError`` when exec fails, ``ValueError`` for a NUL byte in an
    argument or variable.
    """
    with placed({number: fd for number, fd in fds.items() if number > 2}) as placement:
        preexec = _both(hook, placement.child_hook())

        def start(args: list[str], executable: str) -> Subprocess:
            return Subprocess(
                args,
                executable=executable,
                stdin=fds[0],
                stdout=fds[1],
                stderr=fds[2],
                env=env,
                cwd=cwd,
                close_fds=True,
                pass_fds=placement.pass_fds,
                preexec_fn=preexec,
            )

        try:
            return start(argv, path)
        except OSError as error:
            if error.errno != errno.ENOEXEC:
                raise
        if is_binary_file(path):
            raise OSError(errno.ENOEXEC, "cannot execute binary file", path)
        return start(["sh", path, *argv[1:]], "/bin/sh")


def _both(first: Callable[[], None] | None, second: Callable[[], None] | None) -> Callable[[], None] | None:
    """One ``preexec_fn`` running both (either may be None); None when neither is needed (``vfork`` then)."""
    if first is None or second is None:
        return first or second

    def run_both() -> None:
        first()
        second()

    return run_both


def exec_failure(command: str, path: str, error: OSError) -> str:
    """What to say when exec refused a resolved command: bash's words, naming a missing interpreter."""
    interpreter = _interpreter(path) if error.errno == errno.ENOENT else None
    if interpreter is not None:
        return f"{command}: {interpreter}: bad interpreter: {error.strerror}"
    return f"{command}: {error.strerror}"


def _interpreter(path: str) -> str | None:
    """The program a ``#!`` line names, if the file has one."""
    try:
        with open(path, "rb") as handle:
            first = handle.read(_SAMPLE_SIZE)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].split(b"\n", 1)[0].split()
    return os.fsdecode(words[0]) if words else None


#: Runs using the SIGCHLD handler ppipe installed, by loop (0: installed by someone else).
_sigchld_runs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def sigchld_handler() -> Iterator[None]:
    """Makes sure tornado's SIGCHLD handler is installed on *this* loop for the run.

    tornado guards its handler with a class-level flag. After an earlier
    loop closed without ``Subprocess.uninitialize()``, the flag says
    "installed" while no loop listens, and ``wait_for_exit`` would hang for
    ever; so a stale flag is reset here, and the handler ppipe installs is
    removed again at the end so the next loop (the next ``ppipe.run``) gets
    its own. A handler someone else installed on this loop is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        raise PpipeError("ppipe must run pipelines from the main thread (it needs the SIGCHLD handler)")
    loop = asyncio.get_running_loop()
    handlers = loop_signal_handlers(loop)
    if sigchld_handler_installed() and handlers is not None and signal.SIGCHLD not in handlers:
        forget_stale_sigchld_handler()  # stale: installed on a loop that is gone
        _sigchld_runs.pop(loop, None)
    if loop not in _sigchld_runs:
        # 0 when someone else installed it (leave it to them), else ppipe's own count.
        _sigchld_runs[loop] = 0 if sigchld_handler_installed() else 1
        Subprocess.initialize()
    elif _sigchld_runs[loop]:
        _sigchld_runs[loop] += 1
    try:
        yield
    finally:
        # Concurrent runs on one loop share the handler; the last one out removes it.
        if _sigchld_runs.get(loop):
            _sigchld_runs[loop] -= 1
            if not _sigchld_runs[loop]:
                del _sigchld_runs[loop]
                if not processes_still_awaited():  # the caller's own Subprocesses still need it
                    Subprocess.uninitialize()


#: Whether the stages this process starts are tied to it (see :func:`untie_stages`).
_stages_tied = True


def untie_stages() -> None:
    """Starts this process's stages without tying them to it with ``PR_SET_PDEATHSIG``, from now on.

    The tie is a ``preexec_fn``, and with one ``subprocess`` forks the whole
    interpreter where it would otherwise use ``vfork`` (5 ms a stage against
    1 on a small VM). Only for a process whose own parent sees its stages
    out when it dies: a shard's slot (:mod:`ppipe.shards.supervisor`).
    """
    global _stages_tied
    _stages_tied = False


def stage_hook() -> Callable[[], None] | None:
    """The ``preexec_fn`` of this process's stages: the parent-death tie, unless :func:`untie_stages` was called."""
    return parent_death_hook() if _stages_tied else None


def parent_death_hook(parent: int | None = None, death: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A function that, run in a child, sends it ``death`` when its parent dies, even by SIGKILL (Linux only).

    Given to ``Popen`` as ``preexec_fn`` for stages, and called by shard
    processes right after their fork. ``parent`` is the pid the child must
    outlive no longer (default: the caller of this function). A child that
    must clean up before it goes (a shard's slot, whose stages are not tied
    to it) asks for a signal it handles instead of SIGKILL.
    """
    libc_prctl = prctl()
    if libc_prctl is None:
        return None
    parent = os.getpid() if parent is None else parent
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc_prctl(pr_set_pdeathsig, death, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the hook ran
            os._exit(128 + signal.SIGKILL)

    return hook


def in_terminal_foreground() -> bool:
    """True when ppipe runs in the terminal's foreground group, where Ctrl-C reaches the stages by itself."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


@contextlib.contextmanager
def terminal_modes_kept(fd: int | None) -> Iterator[None]:
    """Puts a terminal's modes (echo, line editing) back after the block if they changed.

    A pager killed by a signal (less by SIGKILL, more by SIGTERM) leaves them
    as it set them, and the user's shell with no echo; bash undoes that for
    its jobs, and so does ppipe. ``fd`` None, or not a terminal: nothing.
    """
    saved = None
    if fd is not None:
        with contextlib.suppress(OSError, termios.error):
            saved = termios.tcgetattr(fd)
    try:
        yield
    finally:
        if fd is not None and saved is not None:
            with contextlib.suppress(OSError, termios.error):
                if termios.tcgetattr(fd) != saved:
                    termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def handling_signals(
    loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None], enabled: bool = True
) -> Iterator[None]:
    """Sends SIGINT, SIGTERM and SIGHUP to ``on_signal`` on ``loop`` for the block; restores the handlers after.

    A signal ignored by whoever started ppipe (``nohup``) stays ignored. One
    that arrived before and was not acted on (:mod:`ppipe.interrupts`) is
    passed to ``on_signal`` as soon as the handlers are in place.
    """
    if not enabled:
        yield
        return
    installed: dict[int, signal._HANDLER] = {}
    for sig in FORWARDED_SIGNALS:
        previous = signal.getsignal(sig)
        if previous == signal.SIG_IGN:
            continue
        loop.add_signal_handler(sig, on_signal, sig)
        installed[sig] = previous
    for arrived in interrupts.take():
        loop.call_soon(on_signal, arrived)
    try:
        yield
    finally:
        for installed_sig, previous in installed.items():
            loop.remove_signal_handler(installed_sig)
            signal.signal(installed_sig, previous)


def valid_signals_once() -> None:
    """asyncio checks each ``add_signal_handler`` and ``remove_signal_handler`` against
    ``signal.valid_signals()``, which builds the set afresh, an enum per signal, at every call (~0.25 ms):
    eight calls a run, a sixth of a shard slot's time in a batch of short shards. The set cannot change
    in a process's life, so a process ppipe owns (the command line, a supervisor) asks for it once."""
    setattr(signal, "valid_signals", functools.cache(signal.valid_signals))  # noqa: B010 (mypy: no assigning to a def)


class Stopping:
    """What a pipeline's engine and a sharded run share as they stop: why, and the kill that ends the grace.

    A subclass says how to ask everything it runs to stop as a signal
    would (:meth:`stop_all`) and how to kill it (:meth:`kill_all`). A
    ``--timeout`` counts only when no signal came first: the signal's status
    wins. A second signal means "no more grace": everything is killed at once.
    """

    #: Why the run stops, once it does: the first cause that came (see :mod:`ppipe.stops`).
    stopped_by: StopReason | None = None
    #: The first signal that asked the run to stop (SIGINT, SIGTERM, SIGHUP), if one did: a second kills.
    signalled: int | None = None
    #: The limit that ran out when it was not the run's own ``--timeout`` (a shard's ``--shard-timeout``).
    timed_out_after: float | None = None
    _kill_timer: asyncio.TimerHandle | None = None

    @property
    def timed_out(self) -> bool:
        return stops.timed_out(self.stopped_by)

    def stop_all(self, sig: int) -> None:
        raise NotImplementedError

    def kill_all(self) -> None:
        raise NotImplementedError

    def time_out(self, after: float | None = None) -> None:
        """Stops everything as ``--timeout`` does when its time is up: the run then says 124.

        ``after`` is the limit that ran out, when someone else kept the time
        (``--shard-timeout``, for a shard): the result gives it as its
        ``timeout``, so that "timed out after" names the limit, not the
        time the stop took.
        """
        self.timed_out_after = after
        self._on_timeout(after)

    def _on_timeout(self, limit: float | None = None) -> None:
        self.stopped_by = stops.after(self.stopped_by, StopReason.timeout(limit))
        self.stop_all(signal.SIGTERM)

    def _first_stop_signal(self, sig: int) -> bool:
        """Whether ``sig`` is the first signal to stop the run: it is then recorded as why the run stops,
        and the caller stops it. A second one (Ctrl-C pressed again) kills everything at once instead."""
        if self.signalled is not None:
            self.kill_all()
            return False
        self.signalled = sig
        self.stopped_by = stops.after(self.stopped_by, StopReason.by_signal(sig))
        return True

    def _kill_after(self, grace: float) -> None:
        """Kills everything ``grace`` seconds from the first call, unless :meth:`_cancel_kill` comes first."""
        if self._kill_timer is None:
            self._kill_timer = asyncio.get_running_loop().call_later(grace, self.kill_all)

    def _cancel_kill(self) -> None:
        if self._kill_timer is not None:
            self._kill_timer.cancel()

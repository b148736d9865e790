"""Signals that reached ppipe before a run's own handler was in place, kept until one takes them.

The command line turns Ctrl-C into KeyboardInterrupt while it loads and
prepares a run. Python swallows that exception when it is raised inside a
finalizer or an import's weakref callback ("Exception ignored in ..."), and
the run would then go on as if nothing had happened. So the signal is also
noted here: the engine's handlers, once installed, act on what is pending
(:func:`ppipe.engine.processes.handling_signals`), and the command line
ends ppipe by it when no run took it. Nothing here imports anything: the
console script notes a signal before it has loaded the rest of ppipe.
"""

from __future__ import annotations

_pending: list[int] = []


def note(sig: int) -> None:
    """``sig`` arrived, and may not have reached the code it was meant to stop."""
    _pending.append(sig)


def take() -> list[int]:
    """The signals noted so far, which the caller now answers for; none are kept."""
    taken = _pending[:]
    _pending.clear()
    return taken


def pending() -> bool:
    return bool(_pending)

"""The private names ppipe borrows from its dependencies are still there: an upgrade that removes one fails here,
saying what it was for, instead of as a hang or a wrong count somewhere else."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal

import pytest
from tornado.iostream import PipeIOStream
from tornado.process import Subprocess

from ppipe.cli.typer_internals import BORROWED as TYPER_BORROWED
from ppipe.engine.tornado_internals import BORROWED, buffered_bytes, loop_signal_handlers

from helpers import ppipe


def owner_of(name: str) -> object:
    """A real object of the kind that holds ``name``: the class, a running loop's, a live stream."""
    where = name.split(".", maxsplit=1)[0]
    if where == "Subprocess":
        return Subprocess
    if where == "loop":
        return asyncio.new_event_loop()
    if where == "Handle":
        return asyncio.Handle(print, (), asyncio.new_event_loop())
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    return PipeIOStream(read_fd)


@pytest.mark.parametrize("name", sorted(BORROWED))
def test_tornado_and_asyncio_still_have_what_ppipe_borrows(name: str) -> None:
    owner = owner_of(name)
    try:
        assert hasattr(owner, name.split(".")[1]), (
            f"{name} is gone from this tornado/asyncio; ppipe uses it {BORROWED[name]} "
            f"(see ppipe/tornado_internals.py), so this upgrade needs a change there"
        )
    finally:
        if isinstance(owner, asyncio.Handle):
            owner._loop.close()
        if isinstance(owner, (asyncio.AbstractEventLoop, PipeIOStream)):
            owner.close()


def test_the_borrowed_names_mean_what_ppipe_takes_them_to_mean() -> None:
    """A SIGCHLD handler installed on a loop shows in its table; a fresh stream holds no bytes."""

    async def main() -> tuple[bool, int]:
        Subprocess.initialize()
        try:
            handlers = loop_signal_handlers(asyncio.get_running_loop())
            assert handlers is not None
            read_fd, write_fd = os.pipe()
            stream = PipeIOStream(read_fd)
            held = buffered_bytes(stream)
            stream.close()
            os.close(write_fd)
            return signal.SIGCHLD in handlers, held
        finally:
            Subprocess.uninitialize()

    assert asyncio.run(main()) == (True, 0)


@pytest.mark.parametrize("name", sorted(TYPER_BORROWED))
def test_typer_still_has_what_ppipe_borrows(name: str) -> None:
    module_name, _, attribute = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pytest.fail(
            f"{module_name} is gone from this typer; ppipe uses {name} {TYPER_BORROWED[name]} "
            f"(see ppipe/typer_internals.py), so this upgrade needs a change there"
        )
    assert hasattr(module, attribute), (
        f"{name} is gone from this typer; ppipe uses it {TYPER_BORROWED[name]} (see ppipe/typer_internals.py)"
    )


def test_typer_usage_errors_still_reach_the_user_as_one_line() -> None:
    """What the borrowed exception classes are for, through the real console script."""
    result = ppipe("--xyzzy", "true")
    assert (result.returncode, result.stderr) == (2, b"ppipe: no such option: --xyzzy (see ppipe -h)\n")
    assert ppipe().returncode == 2  # no arguments: the help, as a usage error

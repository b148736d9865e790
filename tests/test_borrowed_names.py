"""The private names ppipe borrows from its dependencies are still there: an upgrade that removes one fails here,
saying what it was for, instead of as a hang or a wrong count somewhere else."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from tornado.iostream import PipeIOStream
from tornado.process import Subprocess

from ppipe.tornado_internals import BORROWED, buffered_bytes, loop_signal_handlers


def owner_of(name: str) -> object:
    """A real object of the kind that holds ``name``: the class, a running loop's, a live stream."""
    where = name.split(".", maxsplit=1)[0]
    if where == "Subprocess":
        return Subprocess
    if where == "loop":
        return asyncio.new_event_loop()
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

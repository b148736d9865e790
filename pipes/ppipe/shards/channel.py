"""Messages between ppipe and its shards: length-prefixed pickles over a socket.

A sharded run (:mod:`ppipe.shards.execution`) talks to each shard attempt over its own
stream socket: the attempt sends snapshots and its result, ppipe answers
"go" and, after its result, whether to run "again". Both ends are ppipe, same version, same user, over a
socketpair nobody else holds, so pickle is safe here and carries the
engine's own frozen records (:class:`~ppipe.results.RunResult`,
:class:`~ppipe.results.RunSnapshot`) without a second schema.

Frames are a 4-byte big-endian length and the pickle. The shard side is
blocking (it has nothing else to do while it waits for an answer); ppipe's
side reads through a tornado ``IOStream`` on its loop.

The *doorbell* is the one datagram-like socket (``SOCK_SEQPACKET``) every
attempt and the supervisor share: each message is one small pickle sent in
one call, so messages from several processes never mix, and an attempt's
pipes travel with its hello as ``SCM_RIGHTS``.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from tornado.iostream import IOStream

_LENGTH = struct.Struct(">I")
#: Descriptors a hello can carry: control socket, stdout, stderr, stdin.
MAX_FDS = 4
_DOORBELL_SIZE = 4096


def send(sock: socket.socket, message: Any) -> None:
    """Sends one message on a blocking stream socket."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def receive(sock: socket.socket) -> Any | None:
    """Receives one message on a blocking stream socket; None when the other end has gone."""
    header = _receive_exactly(sock, _LENGTH.size)
    if header is None:
        return None
    data = _receive_exactly(sock, _LENGTH.unpack(header)[0])
    return None if data is None else pickle.loads(data)


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except ConnectionError:
            return None
        if not chunk:
            return None
        data += chunk
    return bytes(data)


async def read(stream: IOStream) -> Any:
    """Reads one message on ppipe's side; raises ``StreamClosedError`` when the attempt has gone."""
    header = await stream.read_bytes(_LENGTH.size)
    data = await stream.read_bytes(_LENGTH.unpack(header)[0])
    return pickle.loads(data)


async def write(stream: IOStream, message: Any) -> None:
    """Sends one message from ppipe's side."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    await stream.write(_LENGTH.pack(len(data)) + data)


def ring(doorbell: socket.socket, message: Any, fds: Sequence[int] = ()) -> None:
    """Sends one doorbell message, with descriptors; one call, so it is never mixed with another's."""
    socket.send_fds(doorbell, [pickle.dumps(message)], list(fds))


def answer_door(doorbell: socket.socket) -> tuple[Any, list[int]] | None:
    """Receives one doorbell message and the descriptors it carried; None once every sender has gone.

    Raises ``BlockingIOError`` when nothing is waiting (the socket is non-blocking on ppipe's side).
    """
    data, fds, _flags, _address = socket.recv_fds(doorbell, _DOORBELL_SIZE, MAX_FDS)
    if not data:
        for fd in fds:
            socket.close(fd)
        return None
    return pickle.loads(data), fds


def answers(doorbell: socket.socket) -> Iterator[tuple[Any, list[int]]]:
    """Every message waiting at the doorbell, with its descriptors, until none waits.

    Once every sender has gone (or the socket fails) it stops watching the
    doorbell on the running loop.
    """
    while True:
        try:
            rung = answer_door(doorbell)
        except BlockingIOError:
            return
        except OSError:
            rung = None
        if rung is None:
            asyncio.get_running_loop().remove_reader(doorbell.fileno())
            return
        yield rung

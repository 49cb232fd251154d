"""Pickled messages over a pipe, each framed by its length: the model processes' transport.

A frame is an 8-byte little-endian length and then that many bytes of pickle. `read_frame` and
`write_all` wait for the pipe (the model process, and the server at start-up); the event loop never
waits on one: it reads whatever a readable pipe holds and `FrameReader` cuts it into whole messages.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
from typing import Any

HEADER = struct.Struct("<Q")
READ_BYTES = 1 << 20  # the most one read of a readable pipe takes


def frame(message: Any) -> bytes:
    """`message` pickled, behind its length."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


class FrameReader:
    """Cuts the bytes read from a pipe, in pieces of any size, into the messages they frame."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        """The messages completed by `data` (a partial one stays buffered for the next read)."""
        if not self.buffer and len(data) >= HEADER.size:  # the usual read: one whole frame
            (size,) = HEADER.unpack_from(data)
            if len(data) == HEADER.size + size:
                with memoryview(data) as view:
                    return [pickle.loads(view[HEADER.size :])]
        self.buffer += data
        messages = []
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            end = HEADER.size + size
            if len(self.buffer) < end:
                break
            messages.append(pickle.loads(self.buffer[HEADER.size : end]))
            del self.buffer[:end]
        return messages


def _read_exactly(fd: int, count: int) -> bytes | None:
    """`count` bytes from `fd` (waiting for them when it is non-blocking), or None when it ends first."""
    parts, left = [], count
    while left:
        try:
            part = os.read(fd, min(left, READ_BYTES))
        except BlockingIOError:
            select.select([fd], [], [])
            continue
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_frame(fd: int) -> Any:
    """The next message from `fd`, waiting for it; EOFError when the other end has closed it."""
    header = _read_exactly(fd, HEADER.size)
    body = None if header is None else _read_exactly(fd, HEADER.unpack(header)[0])
    if body is None:
        raise EOFError("the pipe was closed")
    return pickle.loads(body)


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd`, waiting for room when `fd` is non-blocking and its pipe is full."""
    with memoryview(data) as view:
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                select.select([], [fd], [])
                continue
            view = view[written:]

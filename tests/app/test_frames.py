"""Length-framed pickles: any cut of the byte stream gives back the same messages, in order."""

import os
import random
import threading

import pytest

from app.serving import frames

MESSAGES = [(1, True, "emma"), (2, False, ValueError("bad")), (3, True, b"x" * 100_000), (4, True, None)]


def stream() -> bytes:
    return b"".join(frames.frame(message) for message in MESSAGES)


def same(got: list, expected: list) -> bool:
    return [repr(m) for m in got] == [repr(m) for m in expected]


@pytest.mark.parametrize("seed", range(5))
def test_a_stream_cut_anywhere_gives_back_every_message_in_order(seed):
    data, rng, reader, got = stream(), random.Random(seed), frames.FrameReader(), []
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        got += reader.feed(data[start:end])
    assert same(got, MESSAGES) and not reader.buffer


def test_one_byte_at_a_time_and_all_at_once():
    data = stream()
    reader = frames.FrameReader()
    assert same([m for i in range(len(data)) for m in reader.feed(data[i : i + 1])], MESSAGES)
    assert same(frames.FrameReader().feed(data), MESSAGES)
    one = frames.frame(MESSAGES[0])
    assert frames.FrameReader().feed(one) == [MESSAGES[0]]  # the one-whole-frame path


def test_a_pipe_carries_frames_bigger_than_its_buffer_both_ways():
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # as the server's end: write_all waits for room
    big = (7, True, bytes(range(256)) * 4096)  # 1 MiB: many times a pipe's buffer
    writer = threading.Thread(
        target=frames.write_all, args=(write_fd, frames.frame(big) + frames.frame(MESSAGES[0]))
    )
    writer.start()
    try:
        assert frames.read_frame(read_fd) == big
        assert frames.read_frame(read_fd) == MESSAGES[0]
    finally:
        writer.join()
        os.close(write_fd)
    with pytest.raises(EOFError):
        frames.read_frame(read_fd)
    os.close(read_fd)

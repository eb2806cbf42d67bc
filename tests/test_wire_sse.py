"""Server-sent events parsed out of a stream's bytes however the reads split them."""

from __future__ import annotations

import pytest

from parley.wire.sse import EventParser

STREAM = (
    b'event: message_start\ndata: {"a": 1}\n\n'
    b": a comment\nevent: ping\nid: 7\nretry: 10\ndata: {}\n\n"
    b"data: first\ndata: second\n\n"
    b"\n\n"  # blank lines alone make no event
    b'{"error": {"code": 500}}\n\n'  # a line outside SSE's framing is the event's data
    b'event: message_stop\ndata: {"b": 2}\n\n'
)
EVENTS = [
    ("message_start", b'{"a": 1}'),
    ("ping", b"{}"),
    ("", b"first\nsecond"),
    ("", b'{"error": {"code": 500}}'),
    ("message_stop", b'{"b": 2}'),
]


def parse(pieces: list[bytes]) -> list[tuple[str, bytes]]:
    parser = EventParser(1 << 20)
    out = []
    for piece in pieces:
        out += parser.feed(piece)
    return out + parser.end()


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_every_split_and_line_ending_gives_the_same_events(ending: bytes, size: int) -> None:
    data = STREAM.replace(b"\n", ending)
    assert parse([data[i : i + size] for i in range(0, len(data), size)]) == EVENTS


def test_events_come_out_as_soon_as_their_blank_line_arrives() -> None:
    parser = EventParser(1 << 20)
    assert parser.feed(b"event: a\ndata: 1\n") == []
    assert parser.feed(b"\nevent: b\ndata: 2") == [("a", b"1")]
    assert parser.feed(b"\r") == []  # its LF may follow in the next read
    assert parser.feed(b"\n\r\n") == [("b", b"2")]
    assert parser.end() == []


def test_a_body_ending_without_the_blank_line_still_gives_its_last_event() -> None:
    assert parse([b"data: 1\n\ndata: 2\n"]) == [("", b"1"), ("", b"2")]
    assert parse([b"data: 1\n\ndata: 2\r"]) == [("", b"1"), ("", b"2")]


def test_an_unfinished_event_over_the_limit_is_refused() -> None:
    parser = EventParser(16)
    assert parser.feed(b"data: 0123456789\n\n") == [("", b"0123456789")]  # finished: any size
    with pytest.raises(ValueError):
        parser.feed(b"data: 0123456789abcdef")

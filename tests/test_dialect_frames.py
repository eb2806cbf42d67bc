"""The Anthropic and Gemini dialects' event streams, byte for byte: the frames they write from
templates are exactly what serialising each event whole gives, and events coalesced into one
write keep their order."""

from __future__ import annotations

import orjson

from parley.chat.assemble import MessageBuilder
from parley.chat.turn import Reply
from parley.dialects.anthropic import StreamEncoder, sse
from parley.dialects.gemini import StreamEncoder as GeminiEncoder
from parley.dialects.gemini import _sse as gemini_sse
from parley.errors import UpstreamError

TEXTS = ['He said "hi"\n', "\\ back", "旧金山 🌉", "\u2028\x00\x1f", ""]


def chunk(**delta: object) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}


def frames(data: list[bytes]) -> list[tuple[str, dict]]:
    blocks = b"".join(data).split(b"\n\n")
    assert blocks.pop() == b""  # every event ends with its blank line
    out = []
    for block in blocks:
        head, _, data_line = block.partition(b"\n")
        assert head.startswith(b"event: ") and data_line.startswith(b"data: ") and b"\n" not in data_line
        name, payload = head[7:].decode(), data_line[6:]
        body = orjson.loads(payload)
        assert sse(name, body) == f"event: {name}\ndata: ".encode() + payload + b"\n\n"  # same bytes
        out.append((name, body))
    return out


def reply(finish: str = "stop") -> Reply:
    usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    return Reply("c", 1, "m", {}, finish, usage, [], {})


def test_stream_frames_are_what_serialising_each_event_gives() -> None:
    enc = StreamEncoder("m")
    writes = enc.opening([])
    assert writes == []  # message_start waits for the first chunk's write
    builder = MessageBuilder()
    for c in [
        chunk(role="assistant", content=""),
        *(chunk(reasoning_content=t) for t in TEXTS),
        *(chunk(content=t) for t in TEXTS),
        chunk(tool_calls=[{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": ': "é"}'}}]),
        chunk(content="after"),
    ]:
        if (got := enc.chunk(c, builder)) is not None:
            writes.append(got)
    writes += enc.closing(reply("tool_calls"))
    got = frames(writes)
    assert [n for n, _ in got[:2]] == ["message_start", "content_block_start"]
    assert got[0][1]["message"]["id"] == enc.message_id
    thinking = [b["delta"]["thinking"] for n, b in got if n == "content_block_delta" and b["index"] == 0]
    text = [b["delta"]["text"] for n, b in got if n == "content_block_delta" and b["index"] == 1]
    assert thinking == [t for t in TEXTS if t] and text == [t for t in TEXTS if t]
    args = [b["delta"]["partial_json"] for n, b in got if n == "content_block_delta" and b["index"] == 2]
    assert args == ['{"a"', ': "é"}']
    assert [b["content_block"]["type"] for n, b in got if n == "content_block_start"] == [
        "thinking",
        "text",
        "tool_use",
        "text",
    ]
    assert [b["index"] for n, b in got if n == "content_block_stop"] == [0, 1, 2, 3]
    assert got[-2] == (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"input_tokens": 5, "output_tokens": 3, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0},
        },
    )  # fmt: skip
    assert got[-1] == ("message_stop", {"type": "message_stop"})
    # the last block's stop, message_delta and message_stop: one write
    assert [n for n, _ in frames(writes[-1:])] == ["content_block_stop", "message_delta", "message_stop"]


def test_message_start_goes_out_with_the_first_chunk_even_one_with_nothing_to_say() -> None:
    enc = StreamEncoder("m")
    enc.opening([])
    first = enc.chunk(chunk(role="assistant", content=""), MessageBuilder())
    assert first is not None and [n for n, _ in frames([first])] == ["message_start"]
    assert enc.chunk(chunk(role="assistant", content=""), MessageBuilder()) is None


def test_message_start_comes_before_an_error_or_the_end_when_no_chunk_came() -> None:
    enc = StreamEncoder("m")
    enc.opening([])
    assert [n for n, _ in frames([enc.error(UpstreamError("gone"))])] == ["message_start", "error"]
    enc = StreamEncoder("m")
    enc.opening([])
    assert [n for n, _ in frames(enc.closing(reply()))] == ["message_start", "message_delta", "message_stop"]


def test_gemini_stream_frames_are_what_serialising_each_chunk_gives() -> None:
    enc = GeminiEncoder('model "x"')
    for delta, parts in [
        ({"content": TEXTS[0]}, [{"text": TEXTS[0]}]),
        ({"reasoning_content": TEXTS[2]}, [{"text": TEXTS[2], "thought": True}]),
        ({"reasoning": TEXTS[1], "content": TEXTS[3]}, [{"text": TEXTS[1], "thought": True}, {"text": TEXTS[3]}]),
    ]:
        assert enc.chunk(chunk(**delta), MessageBuilder()) == gemini_sse(enc._chunk(parts))
    assert enc.chunk(chunk(role="assistant", content=""), MessageBuilder()) is None


# ---- reading upstream events ----------------------------------------------------------------


def sse_by_lines(stream: bytes) -> list[tuple[str, bytes]]:
    """Server-sent events read a line at a time, as the SSE rules say (plus bare lines kept as
    data, as Gemini sends an error mid-stream): what the upstream reader must give, however the
    bytes are cut into reads."""
    out: list[tuple[str, bytes]] = []
    event, data, bare = "", [], []
    lines = stream.split(b"\n")
    for i, raw in enumerate(lines):
        line = raw.rstrip(b"\r")
        if i == len(lines) - 1 and not line:
            break
        if not line:
            if data or bare:
                out.append((event, b"\n".join(data or bare)))
            event, data, bare = "", [], []
        elif line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
        elif not line.startswith((b":", b"id:", b"retry:")):
            bare.append(line)
    if data or bare:
        out.append((event, b"\n".join(data or bare)))
    return out


STREAMS = [
    b'event: message_start\ndata: {"type":"message_start"}\n\nevent: ping\ndata: {"type": "ping"}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"a\\nb"}}\n\n',
    b'data: {"id":1}\n\ndata: {"id":2}\n\n: keep-alive\n\ndata: [DONE]\n\n',
    b'event: a\r\ndata: {"x":1}\r\n\r\ndata:{"y":2}\r\n\r\nid: 7\r\nretry: 10\r\ndata: 3\r\n\r\n',
    b"event:  spaced \ndata: one\ndata: two\n\nevent: empty\ndata: \n\ndata:\n\n\n\n\nevent: lone\n\n",
    b'data: {"candidates":[]}\n\n{\n  "error": {\n    "code": 500\n  }\n}\n',
    b"data: half an event, never ended",
    b"event: x\ndata: 1\n\nevent: y\r\ndata: 2\r\n\r\ndata: 3\n\nevent: z\ndata: 4\n\n",
    b"event:  padded \ndata: x\n\nevent: \xff\xfe\ndata: x\n\n" + "data: 旧金山 🌉\n\n".encode(),
]


def test_upstream_events_are_read_the_same_however_the_bytes_are_cut() -> None:
    import random

    from parley.providers.http import _SSEParser

    cuts = random.Random(7)
    for stream in STREAMS:
        want = sse_by_lines(stream)
        assert want, stream
        splits = [[len(stream)], list(range(1, len(stream) + 1))]  # whole, and a byte at a time
        for _ in range(200):
            splits.append(sorted(cuts.sample(range(1, len(stream)), k=cuts.randint(1, min(6, len(stream) - 1)))))
        for split in splits:
            parser, got, at = _SSEParser(), [], 0
            for end in [*split, len(stream)]:
                if end > at:
                    got += parser.feed(stream[at:end])
                    at = end
            got += parser.end()
            assert got == want, (stream, split)

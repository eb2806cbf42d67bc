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

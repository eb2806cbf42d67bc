"""/v1/responses through the official openai client and the OpenAI Agents SDK, against the
upstream double and the built-in model, on both databases: whole and streamed responses,
function-tool round trips continued with previous_response_id, structured output, stored
responses (retrieve, delete, input items and their pages), and refusals that change nothing."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import cli_json
from tests.polling import wait_for
from tests.upstream_double import TOOL_CALLS, USAGE
from tests.v8_helpers import V8


def sdk(parley, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=parley.url + "/v1", api_key=key or parley.key, max_retries=0)


def plain(obj):
    """An SDK object as its JSON, without the ``parsed`` fields the stream helper adds."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json", exclude_none=True)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


FUNCTION_TOOLS = [
    {
        "type": "function",
        "name": name,
        "description": f"the {name} tool",
        "parameters": {"type": "object", "properties": {}, "additionalProperties": True},
        "strict": False,
    }
    for _, name, _ in TOOL_CALLS
]

USAGE_OUT = {
    "input_tokens": USAGE["prompt_tokens"],
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": USAGE["completion_tokens"],
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": USAGE["total_tokens"],
}


def test_create_plain_relays_to_upstream_and_is_stored(parley):
    client = sdk(parley)
    res = client.responses.create(
        model="gpt-4o-mini",
        input="你好",
        instructions="Be brief.",
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=100,
        user="u-1",
        metadata={"topic": "greeting"},
    )
    assert res.id.startswith("resp_") and res.object == "response"
    assert res.status == "completed" and res.completed_at is not None
    assert res.model == "gpt-4o-mini"
    assert res.output_text == "echo: 你好"
    [message] = res.output
    assert message.type == "message" and message.id.startswith("msg_") and message.status == "completed"
    assert message.role == "assistant"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert res.usage.model_dump(exclude_none=True) == USAGE_OUT
    assert res.instructions == "Be brief." and res.temperature == 0.3 and res.top_p == 0.9
    assert res.max_output_tokens == 100 and res.user == "u-1" and res.metadata == {"topic": "greeting"}
    assert res.tools == [] and res.tool_choice == "auto" and res.parallel_tool_calls is True
    assert res.text.format.type == "text" and res.store is True and res.previous_response_id is None

    sent = parley.upstream.rec.last()
    assert sent["model"] == "echo"
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9 and sent["max_tokens"] == 100
    assert sent["user"] == "u-1"
    assert "metadata" not in sent and "store" not in sent and "input" not in sent

    again = client.responses.retrieve(res.id)
    assert again.model_dump() == res.model_dump()
    items = client.responses.input_items.list(res.id)
    assert [(i.type, i.role, i.content[0].text) for i in items.data] == [("message", "user", "你好")]
    assert items.data[0].id.startswith("msg_")


def test_input_items_translate_to_chat_messages(parley):
    client = sdk(parley)
    image = "data:image/png;base64,iVBORw0KGgo="
    pdf = "data:application/pdf;base64,JVBERi0xLjQ="
    res = client.responses.create(
        model="gpt-4o-mini",
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_earlier",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Bonjour", "annotations": []}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": image, "detail": "high"},
                    {"type": "input_file", "file_data": pdf, "filename": "a.pdf"},
                ],
            },
        ],
    )
    assert res.output_text == "echo: What is this?"
    assert parley.upstream.rec.last()["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": image, "detail": "high"}},
                {"type": "file", "file": {"file_data": pdf, "filename": "a.pdf"}},
            ],
        },
    ]
    items = client.responses.input_items.list(res.id, order="asc").data
    assert [(i.type, i.role) for i in items] == [
        ("message", "developer"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert items[2].id == "msg_earlier"  # the client's own ids are kept
    assert items[3].content[1].type == "input_image" and items[3].content[1].image_url == image


def test_stream_helper_sends_the_event_sequence_and_stores_the_response(parley):
    client = sdk(parley)
    with client.responses.stream(model="gpt-4o-mini", input="one two three") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,  # one per upstream chunk, as it came
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["echo: ", "one ", "two ", "three "]
    created = events[0].response
    assert created.status == "in_progress" and created.output == [] and created.id == final.id
    message_id = events[2].item.id
    assert all(e.item_id == message_id for e in events[3:-2] if hasattr(e, "item_id"))
    assert final.status == "completed" and final.output_text == "echo: one two three "
    assert final.output[0].id == message_id
    assert final.usage.model_dump(exclude_none=True) == USAGE_OUT
    assert plain(client.responses.retrieve(final.id)) == plain(final)


def test_raw_stream_is_typed_server_sent_events(parley):
    with parley.client() as http:
        with http.stream("POST", "/v1/responses", json={"model": "gpt-4o-mini", "input": "hi", "stream": True}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            raw = "".join(r.iter_text())
    blocks = [b for b in raw.split("\n\n") if b.strip() and not b.startswith(":")]
    events = []
    for block in blocks:
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[len("data: ") :])
        assert data["type"] == event_line[len("event: ") :]
        events.append(data)
    assert "[DONE]" not in raw  # the Responses stream ends with its terminal event
    assert events[-1]["type"] == "response.completed"
    final = events[-1]["response"]
    assert final["output"][0]["content"] == [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "echo: hi "}
    ]
    assert final["usage"] == USAGE_OUT
    for key in ("id", "object", "created_at", "status", "error", "incomplete_details", "instructions", "model"):
        assert key in final
    for key in ("output", "parallel_tool_calls", "temperature", "tool_choice", "tools", "top_p", "metadata"):
        assert key in final


def test_raw_sdk_stream_events(parley):
    stream = sdk(parley).responses.create(model="gpt-4o-mini", input="raw", stream=True)
    events = list(stream)
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: raw "
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == "echo: raw "


def _get(parley, response_id: str) -> dict | None:
    with parley.client() as http:
        r = http.get(f"/v1/responses/{response_id}")
    return r.json() if r.status_code == 200 else None


def test_a_client_leaving_mid_stream_keeps_what_came_as_incomplete(parley):
    """The upstream never ends: deltas reaching the client at all show that events go out as
    chunks arrive; leaving stops the upstream and stores the response so far."""
    ends = len(parley.upstream.rec.stream_ends)
    stream = sdk(parley).responses.create(model="endless", input="go", stream=True)
    response_id, deltas = None, 0
    for event in stream:
        if event.type == "response.created":
            response_id = event.response.id
        if event.type == "response.output_text.delta":
            deltas += 1
            if deltas == 3:
                break
    stream.close()
    wait_for(
        lambda: any(e["model"] == "endless" for e in parley.upstream.rec.stream_ends[ends:]), "the upstream to stop"
    )
    assert [e["reason"] for e in parley.upstream.rec.stream_ends[ends:] if e["model"] == "endless"] == ["cancelled"]
    stored = wait_for(lambda: _get(parley, response_id), "the cut off response to be stored")
    assert stored["status"] == "incomplete"
    [message] = stored["output"]
    assert message["status"] == "incomplete"
    assert message["content"][0]["text"].startswith("0 1 2 ")


def test_function_tool_round_trip_continued_with_previous_response_id(parley):
    client = sdk(parley)
    first = client.responses.create(
        model="tools",
        input="weather, time and sums?",
        tools=FUNCTION_TOOLS,
        tool_choice="auto",
        parallel_tool_calls=True,
    )
    calls = [o for o in first.output if o.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == TOOL_CALLS
    assert all(c.id.startswith("fc_") and c.status == "completed" for c in calls)
    assert first.output_text == "" and [o.type for o in first.output] == ["function_call"] * 3
    assert [t.name for t in first.tools] == [n for _, n, _ in TOOL_CALLS]
    sent = parley.upstream.rec.last()
    assert sent["tools"] == [
        {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters", "strict")}}
        for t in FUNCTION_TOOLS
    ]
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is True

    outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": f"result of {c.name}"} for c in calls]
    second = client.responses.create(model="tools", previous_response_id=first.id, input=outputs, tools=FUNCTION_TOOLS)
    assert second.output_text == "echo: result of calculate" and second.previous_response_id == first.id
    history = [
        {"role": "user", "content": "weather, time and sums?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in TOOL_CALLS
            ],
        },
        *({"role": "tool", "tool_call_id": i, "content": f"result of {n}"} for i, n, _ in TOOL_CALLS),
    ]
    assert parley.upstream.rec.last()["messages"] == history

    third = client.responses.create(model="gpt-4o-mini", previous_response_id=second.id, input="thanks")
    assert third.output_text == "echo: thanks"
    assert parley.upstream.rec.last()["messages"] == [
        *history,
        {"role": "assistant", "content": "echo: result of calculate"},
        {"role": "user", "content": "thanks"},
    ]
    # The third response's input is the whole chain before it, newest first by default.
    items = client.responses.input_items.list(third.id, limit=100)
    assert [i.type for i in items.data] == [
        "message",
        "message",
        *["function_call_output"] * 3,
        *["function_call"] * 3,
        "message",
    ]
    assert [i.id for i in items.data[5:8]] == [c.id for c in reversed(calls)]
    assert items.data[0].role == "user" and items.data[1].role == "assistant"


def test_streamed_function_calls_interleave_and_are_stored(parley):
    client = sdk(parley)
    with client.responses.stream(model="tools", input="all three", tools=FUNCTION_TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [(e.item.type, e.item.call_id, e.item.name, e.item.arguments) for e in added] == [
        ("function_call", i, n, "") for i, n, _ in TOOL_CALLS
    ]
    order = [e.output_index for e in events if e.type == "response.function_call_arguments.delta"]
    assert order != sorted(order)  # the upstream interleaves the three calls' fragments
    done = [e.arguments for e in events if e.type == "response.function_call_arguments.done"]
    assert done == [a for _, _, a in TOOL_CALLS]
    assert [(o.call_id, o.name, o.arguments, o.status) for o in final.output] == [
        (i, n, a, "completed") for i, n, a in TOOL_CALLS
    ]
    assert plain(client.responses.retrieve(final.id)) == plain(final)


def test_structured_output_reaches_the_upstream_as_response_format(parley):
    client = sdk(parley)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "name": "person", "schema": schema, "strict": True, "description": "a person"}
    res = client.responses.create(model="gpt-4o-mini", input="who?", text={"format": fmt})
    assert parley.upstream.rec.last()["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": schema, "strict": True, "description": "a person"},
    }
    assert res.text.format.model_dump(by_alias=True, exclude_none=True) == fmt
    client.responses.create(model="gpt-4o-mini", input="json please", text={"format": {"type": "json_object"}})
    assert parley.upstream.rec.last()["response_format"] == {"type": "json_object"}
    client.responses.create(model="gpt-4o-mini", input="plain", text={"format": {"type": "text"}})
    assert "response_format" not in parley.upstream.rec.last()


def test_reasoning_effort_goes_upstream_and_reasoning_comes_back_as_a_summary(parley):
    client = sdk(parley)
    res = client.responses.create(model="reasoning", input="why?", reasoning={"effort": "low", "summary": "auto"})
    assert parley.upstream.rec.last()["reasoning_effort"] == "low"
    reasoning, message = res.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert [s.model_dump() for s in reasoning.summary] == [{"type": "summary_text", "text": "thinking about it"}]
    assert message.type == "message" and res.output_text == "echo: why?"
    assert res.reasoning.effort == "low" and res.reasoning.summary == "auto"

    with client.responses.stream(model="reasoning", input="stream it") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[2:7] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
    ]
    assert types[7:9] == ["response.reasoning_summary_part.done", "response.output_item.done"]
    assert types[9] == "response.output_item.added" and events[9].item.type == "message"  # after reasoning closed
    assert events[6].text == "Let me think."
    assert final.output[0].summary[0].text == "Let me think." and final.output_text == "echo: stream it "


def test_retrieve_delete_and_keys_own_their_responses(parley):
    client = sdk(parley)
    other = sdk(parley, cli_json(parley.database_url, "keys", "create", "--name", "other", "--json")["key"])
    res = client.responses.create(model="gpt-4o-mini", input="mine")
    missing = {"message": f"Response with id '{res.id}' not found.", "type": "invalid_request_error"}
    for call in (
        lambda: other.responses.retrieve(res.id),
        lambda: other.responses.delete(res.id),
        lambda: other.responses.input_items.list(res.id),
    ):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert err.value.body == {**missing, "param": "response_id", "code": None}
    with pytest.raises(openai.BadRequestError) as err:
        other.responses.create(model="gpt-4o-mini", previous_response_id=res.id, input="theirs")
    assert err.value.body == {
        "message": f"Previous response with id '{res.id}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
    assert client.responses.retrieve(res.id).output_text == "echo: mine"  # untouched by the other key

    with parley.client() as http:
        r = http.delete(f"/v1/responses/{res.id}")
        assert r.status_code == 200
        assert r.json() == {"id": res.id, "object": "response.deleted", "deleted": True}
        assert http.delete(f"/v1/responses/{res.id}").status_code == 404
        assert http.get(f"/v1/responses/{res.id}").status_code == 404
        assert http.get(f"/v1/responses/{res.id}/input_items").status_code == 404
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o-mini", previous_response_id=res.id, input="after delete")


def _rows(parley, *ids: str) -> int:
    import asyncio

    from sqlalchemy import func, select

    from parley.storage.db import create_engine
    from parley.storage.models import ResponseItem, StoredResponse

    async def count() -> int:
        engine = create_engine(parley.database_url)
        async with engine.connect() as conn:
            responses = await conn.scalar(select(func.count()).where(StoredResponse.id.in_(ids)))
            items = await conn.scalar(select(func.count()).where(ResponseItem.response_id.in_(ids)))
        await engine.dispose()
        return int(responses or 0) + int(items or 0)

    return asyncio.run(count())


def test_deleting_a_response_others_continue_from_keeps_their_context(parley):
    client = sdk(parley)
    a = client.responses.create(model="gpt-4o-mini", input="first")
    b = client.responses.create(model="gpt-4o-mini", previous_response_id=a.id, input="second")
    first_input = client.responses.input_items.list(a.id).data[0].id
    client.responses.delete(a.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(a.id)
    c = client.responses.create(model="gpt-4o-mini", previous_response_id=b.id, input="third")
    assert [m["content"] for m in parley.upstream.rec.last()["messages"]] == [
        "first",
        "echo: first",
        "second",
        "echo: second",
        "third",
    ]
    chain = [i.id for i in client.responses.input_items.list(c.id, order="asc").data]
    assert chain[0] == first_input and len(chain) == 5  # a's input and output are still c's context
    assert _rows(parley, a.id) > 0  # still read by b and c
    client.responses.delete(c.id)
    client.responses.delete(b.id)
    assert _rows(parley, a.id, b.id, c.id) == 0  # nothing continues from them any more: gone


def test_a_response_whose_parent_goes_while_it_runs_is_kept_whole(parley):
    """Deleting the response a running continuation started from: when the continuation is
    stored, its parent may be gone; it then keeps the parent's items as its own input."""
    client = sdk(parley)
    a = client.responses.create(model="gpt-4o-mini", input="first")
    a_items = [i.id for i in client.responses.input_items.list(a.id, order="asc").data] + [a.output[0].id]
    stream = client.responses.create(model="slow-stream", previous_response_id=a.id, input="slowly", stream=True)
    events = iter(stream)
    b = next(events).response
    assert b.status == "in_progress"
    client.responses.delete(a.id)
    if _get(parley, b.id) is None:  # b is not stored yet: nothing continues from a, so a is gone
        assert _rows(parley, a.id) == 0
    rest = list(events)
    assert rest[-1].type == "response.completed"
    b_items = [i.id for i in client.responses.input_items.list(b.id, order="asc").data]
    assert b_items[: len(a_items)] == a_items and len(b_items) == len(a_items) + 1
    c = client.responses.create(model="gpt-4o-mini", previous_response_id=b.id, input="third")
    assert [m["content"] for m in parley.upstream.rec.last()["messages"]][:3] == ["first", "echo: first", "slowly"]
    assert c.output_text == "echo: third"


def test_input_items_are_paginated_as_openai_pages_lists(parley):
    client = sdk(parley)
    res = client.responses.create(
        model="gpt-4o-mini", input=[{"role": "user", "content": f"part {n}"} for n in range(5)]
    )

    def texts(items) -> list[str]:
        return [i["content"][0]["text"] if isinstance(i, dict) else i.content[0].text for i in items]

    assert texts(client.responses.input_items.list(res.id).data) == [f"part {n}" for n in (4, 3, 2, 1, 0)]
    first = client.responses.input_items.list(res.id, limit=2, order="asc")
    assert texts(first.data) == ["part 0", "part 1"] and first.has_more is True
    assert texts(client.responses.input_items.list(res.id, limit=2, order="asc")) == [f"part {n}" for n in range(5)]

    with parley.client() as http:
        url = f"/v1/responses/{res.id}/input_items"
        page = http.get(url, params={"order": "asc", "limit": 2}).json()
        ids = [i["id"] for i in page["data"]]
        assert page["object"] == "list" and page["first_id"] == ids[0] and page["last_id"] == ids[1]
        page = http.get(url, params={"order": "asc", "limit": 2, "after": ids[1]}).json()
        assert texts(page["data"]) == ["part 2", "part 3"] and page["has_more"] is True
        last = http.get(url, params={"order": "asc", "limit": 2, "after": page["last_id"]}).json()
        assert texts(last["data"]) == ["part 4"] and last["has_more"] is False
        back = http.get(url, params={"order": "asc", "limit": 2, "before": page["last_id"]}).json()
        assert texts(back["data"]) == ["part 1", "part 2"] and back["has_more"] is True
        for params, param in (({"limit": 0}, "limit"), ({"order": "up"}, "order"), ({"after": "msg_x"}, "after")):
            r = http.get(url, params=params)
            assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_item_references_resolve_to_stored_items(parley):
    client = sdk(parley)
    first = client.responses.create(model="tools", input="go", tools=FUNCTION_TOOLS)
    calls = [o for o in first.output if o.type == "function_call"]
    second = client.responses.create(
        model="tools",
        tools=FUNCTION_TOOLS,
        input=[
            {"role": "user", "content": "go"},
            *({"type": "item_reference", "id": c.id} for c in calls),
            *({"type": "function_call_output", "call_id": c.call_id, "output": "done"} for c in calls),
        ],
    )
    assert second.output_text == "echo: done"
    assert [c["id"] for c in parley.upstream.rec.last()["messages"][1]["tool_calls"]] == [i for i, _, _ in TOOL_CALLS]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gpt-4o-mini", input=[{"type": "item_reference", "id": "fc_unknown"}])
    assert err.value.body["message"] == "Item with id 'fc_unknown' not found."


def test_store_false_keeps_nothing(parley):
    client = sdk(parley)
    res = client.responses.create(model="gpt-4o-mini", input="forget me", store=False)
    assert res.store is False and res.output_text == "echo: forget me"
    assert _rows(parley, res.id) == 0
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(res.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o-mini", previous_response_id=res.id, input="and then?")


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [
        (
            {"tools": [{"type": "web_search"}]},
            "tools[0].type",
            "Parley does not support the 'web_search' tool: only 'function' and 'file_search' tools can be used.",
        ),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools", None),
        ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type", None),
        ({"tools": [{"type": "computer_use_preview"}]}, "tools[0].type", None),
        ({"background": True}, "background", None),
        ({"conversation": "conv_123"}, "conversation", None),
        ({"include": ["reasoning.encrypted_content"]}, "include[0]", None),
        ({"tools": [{"type": "file_search", "vector_store_ids": []}]}, "tools[0].vector_store_ids", None),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["m"], "filters": {"type": "like"}}]}, None, None),
        ({"truncation": "auto"}, "truncation", None),
        ({"frobnicate": 1}, "frobnicate", "Unknown parameter: 'frobnicate'."),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice.type", None),
        ({"tool_choice": "required"}, "tool_choice", None),
        ({"tools": FUNCTION_TOOLS, "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name", None),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type", None),
        ({"temperature": 3}, "temperature", None),
        ({"max_output_tokens": 5}, "max_output_tokens", None),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type", None),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}, None, None),
        (
            {"input": [{"type": "function_call_output", "call_id": "call_x", "output": "?"}]},
            "input",
            "No tool call found for function call output with call_id call_x.",
        ),
    ],
)
def test_what_parley_cannot_honour_is_refused_by_name_and_changes_nothing(parley, extra, param, message):
    seen = len(parley.upstream.rec.requests)
    body = {"model": "gpt-4o-mini", "input": "hello", **extra}
    with parley.client() as http:
        r = http.post("/v1/responses", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    if message is not None:
        assert error["message"] == message
    assert len(parley.upstream.rec.requests) == seen  # no model was called


def test_missing_input_and_unknown_previous_response(parley):
    with parley.client() as http:
        r = http.post("/v1/responses", json={"model": "gpt-4o-mini"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "input"
        r = http.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "x", "previous_response_id": "resp_no"})
        assert r.status_code == 400
        assert r.json()["error"]["message"] == "Previous response with id 'resp_no' not found."
        r = http.post("/v1/responses", json={"model": "no-such-model", "input": "x"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_upstream_failures(parley):
    client = sdk(parley)
    with pytest.raises(openai.APIStatusError) as err:
        client.responses.create(model="fail-500", input="x")
    assert err.value.status_code == 502 and err.value.body["code"] == "upstream_error"
    events = list(client.responses.create(model="drop", input="x", stream=True))
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert failed.output[0].content[0].text == "partial "  # what came before the upstream dropped
    # Stored like any response: the id the client saw in response.created finds it.
    kept = client.responses.retrieve(failed.id)
    assert kept.status == "failed" and kept.error.code == "server_error" and kept.error.message == failed.error.message
    assert [p.text for p in kept.output[0].content] == ["partial "]
    assert [i.content[0].text for i in client.responses.input_items.list(failed.id).data] == ["x"]
    unstored = list(client.responses.create(model="drop", input="y", stream=True, store=False))
    assert unstored[-1].type == "response.failed"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored[-1].response.id)


def test_builtin_model(parley):
    client = sdk(parley)
    res = client.responses.create(model="parley-offline", input="Hello")
    assert res.status == "completed" and res.output_text.startswith('You said: "Hello"')
    assert res.usage.input_tokens > 0 and res.usage.output_tokens > 0
    short = client.responses.create(model="parley-offline", input="Hello", max_output_tokens=16)
    assert short.status == "incomplete" and short.incomplete_details.reason == "max_output_tokens"
    assert short.output[0].status == "incomplete" and short.usage.output_tokens == 16
    events = list(client.responses.create(model="parley-offline", input="Hello", max_output_tokens=16, stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    weather = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    }
    call = client.responses.create(model="parley-offline", input="Paris", tools=[weather]).output[0]
    assert (
        call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    )


def test_openapi_describes_the_responses_request(parley):
    with parley.client() as http:
        spec = http.get("/openapi.json").json()
    body = spec["paths"]["/v1/responses"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ResponsesRequest"}
    assert {"/v1/responses/{response_id}", "/v1/responses/{response_id}/input_items"} <= set(spec["paths"])


@pytest.mark.parametrize("model", ["one-tool", "parley-offline"])
@pytest.mark.parametrize("mode", ["resend", "chained", "streamed"])
def test_openai_agents_sdk_runs_an_agent_with_a_function_tool(parley, model, mode):
    import asyncio

    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"Sunny in {city}"

    async def main() -> str:
        client = openai.AsyncOpenAI(base_url=parley.url + "/v1", api_key=parley.key, max_retries=0)
        agent = Agent(
            name="weather",
            instructions="Answer with the tool.",
            tools=[get_weather],
            model=OpenAIResponsesModel(model=model, openai_client=client),
        )
        try:
            if mode == "streamed":
                run = Runner.run_streamed(agent, "Paris")
                async for _ in run.stream_events():
                    pass
                return str(run.final_output)
            result = await Runner.run(agent, "Paris", auto_previous_response_id=mode == "chained")
            first, last = result.raw_responses[0].response_id, result.raw_responses[-1].response_id
            stored = await client.responses.retrieve(last)
            # Chained, the agent sent only the tool's output and Parley supplied the rest.
            assert stored.previous_response_id == (first if mode == "chained" else None)
            return str(result.final_output)
        finally:
            await client.close()

    answer = asyncio.run(main())
    assert asked == ["Paris"]
    if model == "one-tool":
        assert answer.strip() == "echo: Sunny in Paris"  # streamed, the double ends words with spaces
    else:
        assert answer.startswith("The tool returned: Sunny in Paris")


# --- file_search over Parley's memories ------------------------------------------------------

PASSAGES = {
    "cook": "红烧肉的做法：五花肉切块，焯水后加冰糖炒糖色，再加酱油和料酒小火慢炖一小时。",
    "space": "The Apollo 11 mission landed the first humans on the Moon in July 1969.",
}


@pytest.fixture(scope="module")
def memory(parley):
    """A memory (knowledge base) with two contents, embedded."""
    app = cli_json(parley.database_url, "integrations", "create", "--name", "files", "--json")
    admin = V8(parley.url, app, user_id="ops", admin=True)
    made = admin.http.post("/memories", json={"name": "files"}).json()
    ids = {}
    for key, text in PASSAGES.items():
        body = {"content": text, "key": key, "attrs": {"topic": key}}
        ids[key] = admin.http.post(f"/memories/{made['id']}/contents", json=body).json()["content_id"]

    def embedded() -> bool:
        for cid in ids.values():
            chunks = admin.http.get(f"/memories/{made['id']}/contents/{cid}/chunks").json()
            if not chunks or any(c["embedding_status"] != "completed" for c in chunks):
                return False
        return True

    wait_for(embedded, "the contents to be embedded", seconds=120)
    return made["id"], ids


def test_file_search_searches_parley_memories_and_cites_them(parley, memory):
    memory_id, ids = memory
    client = sdk(parley)
    tool = {"type": "file_search", "vector_store_ids": [memory_id], "max_num_results": 2}
    # Any score: the citation marker the echo model repeats makes the question a poorer match.
    cited = {**tool, "ranking_options": {"score_threshold": 0}}
    res = client.responses.create(
        model="gpt-4o-mini", input="红烧肉怎么做？[1]", tools=[cited], include=["file_search_call.results"]
    )
    search, message = res.output
    assert search.type == "file_search_call" and search.id.startswith("fs_") and search.status == "completed"
    assert search.queries == ["红烧肉怎么做？[1]"]
    best = search.results[0]
    assert (best.file_id, best.filename, best.text, best.attributes) == (
        ids["cook"],
        "cook",
        PASSAGES["cook"],
        {"topic": "cook"},
    )
    assert [r.score for r in search.results] == sorted((r.score for r in search.results), reverse=True)
    sent = parley.upstream.rec.last()
    assert sent["messages"][0]["role"] == "system" and "[1] " + PASSAGES["cook"] in sent["messages"][0]["content"]
    assert "tools" not in sent  # the search is Parley's: the model gets its results, not the tool
    text = message.content[0]
    assert text.text == "echo: 红烧肉怎么做？[1]"
    assert [a.model_dump() for a in text.annotations] == [
        {"type": "file_citation", "file_id": ids["cook"], "filename": "cook", "index": text.text.index("[1]")}
    ]
    assert res.tools[0].type == "file_search" and res.tools[0].vector_store_ids == [memory_id]

    relevant = client.responses.create(
        model="gpt-4o-mini", input="红烧肉怎么做？", tools=[tool], include=["file_search_call.results"]
    )
    assert relevant.output[0].results[0].file_id == ids["cook"]  # above the default threshold
    quiet = client.responses.create(model="gpt-4o-mini", input="红烧肉怎么做？", tools=[tool])
    assert quiet.output[0].type == "file_search_call" and quiet.output[0].results is None  # not included
    after = client.responses.create(model="gpt-4o-mini", previous_response_id=quiet.id, input="thanks")
    assert after.output_text == "echo: thanks"  # an earlier search in the chain is not sent to the model

    with client.responses.stream(model="gpt-4o-mini", input="红烧肉怎么做？[1]", tools=[cited]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.type for e in events[2:7]] == [
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    added = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert [e.annotation.file_id for e in added] == [ids["cook"]]
    assert final.output[1].content[0].annotations[0].file_id == ids["cook"]


def test_file_search_filters_and_score_threshold(parley, memory):
    memory_id, ids = memory
    client = sdk(parley)

    def found(filters) -> set[str]:
        tool = {
            "type": "file_search",
            "vector_store_ids": [memory_id],
            "filters": filters,
            "ranking_options": {"score_threshold": 0},
        }
        res = client.responses.create(
            model="gpt-4o-mini", input="红烧肉怎么做？", tools=[tool], include=["file_search_call.results"]
        )
        return {r.file_id for r in res.output[0].results}

    assert found({"type": "eq", "key": "topic", "value": "space"}) == {ids["space"]}
    assert found({"type": "ne", "key": "topic", "value": "space"}) == {ids["cook"]}
    either = {"type": "or", "filters": [{"type": "eq", "key": "topic", "value": v} for v in ("space", "cook")]}
    assert found(either) == {ids["space"], ids["cook"]}
    assert found({"type": "in", "key": "topic", "value": ["nothing"]}) == set()

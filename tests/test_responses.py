"""/v1/responses through the official openai client and the OpenAI Agents SDK, against the
upstream double and the built-in model, on both databases: whole and streamed responses,
function-tool round trips continued with previous_response_id, structured output, reasoning,
refusals that change nothing, and upstream failures. Stored responses are in
test_responses_store.py, file_search over memories in test_responses_file_search.py."""

from __future__ import annotations

import json

import openai
import pytest

from tests.polling import wait_for
from tests.responses_helpers import FUNCTION_TOOLS, sdk, stored_response
from tests.upstream_double import TOOL_CALLS, USAGE


def plain(obj):
    """An SDK object as its JSON, without the ``parsed`` fields the stream helper adds."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json", exclude_none=True)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


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
    stored = wait_for(lambda: stored_response(parley, response_id), "the cut off response to be stored")
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

"""Stored /v1/responses, on both databases: retrieve and delete (each key owns its responses),
what deleting does to the responses that continue from one (also while one runs), input_items
and their pages, item references to stored items, and store=false keeping nothing."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import cli_json
from tests.responses_helpers import FUNCTION_TOOLS, sdk, stored_response
from tests.upstream_double import TOOL_CALLS


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
    if stored_response(parley, b.id) is None:  # b is not stored yet: nothing continues from a, so a is gone
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

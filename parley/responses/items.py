"""Input items: normalized to the shapes OpenAI lists them in, then turned into chat messages.

Every item gets an id and a status and message content becomes parts, so items can be stored
and listed as they are, and turned into chat messages once ``previous_response_id`` and item
references are resolved.
"""

from __future__ import annotations

from typing import Any

from parley.errors import BadRequest
from parley.responses.checks import invalid, missing, text_field, unsupported
from parley.responses.ids import new_id

Body = dict[str, Any]

MAX_ITEM_ID = 255


def _item_id(item: Body, prefix: str, where: str) -> str:
    given = item.get("id")
    if given is None:
        return new_id(prefix)
    if not isinstance(given, str) or not given or len(given) > MAX_ITEM_ID:
        raise invalid(f"Invalid value for '{where}.id': expected a string of at most 255 characters.", f"{where}.id")
    return given


def _input_part(part: Any, where: str) -> Body:
    """A part of a user, system or developer message."""
    if not isinstance(part, dict):
        raise invalid(f"Invalid value for '{where}': expected an object.", where)
    kind = part.get("type")
    if kind == "input_text":
        return {"type": "input_text", "text": text_field(part, "text", where)}
    if kind == "input_image":
        if part.get("file_id") is not None:
            raise unsupported("Parley has no file storage: send images as 'image_url' (a URL or data URL).", where)
        url = text_field(part, "image_url", where)
        return {"type": "input_image", "detail": part.get("detail") or "auto", "file_id": None, "image_url": url}
    if kind == "input_file":
        if part.get("file_id") is not None or part.get("file_url") is not None:
            raise unsupported("Parley has no file storage: send files inline as 'file_data'.", where)
        out = {"type": "input_file", "file_data": text_field(part, "file_data", where)}
        if isinstance(part.get("filename"), str):
            out["filename"] = part["filename"]
        return out
    if kind is None:
        raise missing(f"{where}.type")
    raise BadRequest(
        f"Parley does not support content of type '{kind}' in input messages.",
        param=f"{where}.type",
        code="unsupported_value",
    )


def _assistant_part(part: Any, where: str) -> Body:
    if not isinstance(part, dict):
        raise invalid(f"Invalid value for '{where}': expected an object.", where)
    kind = part.get("type")
    if kind in ("output_text", "input_text"):
        notes = part.get("annotations")
        notes = notes if isinstance(notes, list) else []  # kept for the record (file citations…)
        return {"type": "output_text", "annotations": notes, "logprobs": [], "text": text_field(part, "text", where)}
    if kind == "refusal":
        return {"type": "refusal", "refusal": text_field(part, "refusal", where)}
    raise invalid(
        f"Invalid value for '{where}.type': assistant messages hold 'output_text' or 'refusal' parts.", f"{where}.type"
    )


def _message(item: Body, where: str) -> Body:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise invalid(
            f"Invalid value for '{where}.role': use 'user', 'assistant', 'system' or 'developer'.", f"{where}.role"
        )
    content = item.get("content")
    if content is None:
        raise missing(f"{where}.content")
    if not isinstance(content, str | list):
        raise invalid(f"Invalid value for '{where}.content': expected a string or a list of parts.", f"{where}.content")
    if role == "assistant":
        parts = (
            [{"type": "output_text", "annotations": [], "logprobs": [], "text": content}]
            if isinstance(content, str)
            else [_assistant_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
        )
        return {
            "id": _item_id(item, "msg", where),
            "type": "message",
            "status": "completed",
            "content": parts,
            "role": "assistant",
        }
    parts = (
        [{"type": "input_text", "text": content}]
        if isinstance(content, str)
        else [_input_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    )
    return {
        "id": _item_id(item, "msg", where),
        "type": "message",
        "role": role,
        "status": "completed",
        "content": parts,
    }


def _output_text(output: Any, where: str) -> str | list[Body]:
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise (
            missing(f"{where}.output")
            if output is None
            else invalid(
                f"Invalid value for '{where}.output': expected a string or a list of parts.", f"{where}.output"
            )
        )
    parts = []
    for j, part in enumerate(output):
        p = f"{where}.output[{j}]"
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
            raise BadRequest(
                "Parley passes function call outputs on as text: use a string or 'input_text' parts.",
                param=p,
                code="unsupported_value",
            )
        parts.append({"type": "input_text", "text": text_field(part, "text", p)})
    return parts


def _item(item: Any, where: str) -> Body:
    if not isinstance(item, dict):
        raise invalid(f"Invalid value for '{where}': expected an object.", where)
    kind = item.get("type")
    if kind == "message" or (kind is None and "role" in item):
        return _message(item, where)
    if kind == "function_call":
        return {
            "id": _item_id(item, "fc", where),
            "type": "function_call",
            "status": "completed",
            "arguments": text_field(item, "arguments", where),
            "call_id": text_field(item, "call_id", where),
            "name": text_field(item, "name", where),
        }
    if kind == "function_call_output":
        return {
            "id": _item_id(item, "fco", where),
            "type": "function_call_output",
            "status": "completed",
            "call_id": text_field(item, "call_id", where),
            "output": _output_text(item.get("output"), where),
        }
    if kind == "reasoning":
        # Kept in the record; chat models take no reasoning back, so it is not sent on.
        summary = item.get("summary") or []
        if not isinstance(summary, list):
            raise invalid(f"Invalid value for '{where}.summary': expected a list.", f"{where}.summary")
        return {"id": _item_id(item, "rs", where), "type": "reasoning", "summary": summary}
    if kind == "file_search_call":
        # A search made for an earlier turn (clients resend their history): kept, not sent on.
        return {
            "id": _item_id(item, "fs", where),
            "type": "file_search_call",
            "status": item.get("status") or "completed",
            "queries": item.get("queries") or [],
            "results": item.get("results"),
        }
    if kind == "item_reference":
        return {"type": "item_reference", "id": text_field(item, "id", where)}
    if kind is None:
        raise missing(f"{where}.type")
    raise BadRequest(
        f"Parley does not support input items of type '{kind}'.", param=f"{where}.type", code="unsupported_value"
    )


def input_items(raw: str | list[Any]) -> list[Body]:
    if isinstance(raw, str):
        return [_message({"role": "user", "content": raw}, "input")]
    return [_item(item, f"input[{i}]") for i, item in enumerate(raw)]


def _user_content(parts: list[Body]) -> str | list[Body]:
    if len(parts) == 1 and parts[0]["type"] == "input_text":
        return str(parts[0]["text"])
    out: list[Body] = []
    for p in parts:
        if p["type"] == "input_text":
            out.append({"type": "text", "text": p["text"]})
        elif p["type"] == "input_image":
            image: Body = {"url": p["image_url"]}
            if p.get("detail") and p["detail"] != "auto":
                image["detail"] = p["detail"]
            out.append({"type": "image_url", "image_url": image})
        elif p["type"] == "input_file":
            out.append({"type": "file", "file": {k: p[k] for k in ("file_data", "filename") if k in p}})
    return out


def _assistant_text(parts: list[Body]) -> str | None:
    texts = [p["text"] for p in parts if p.get("type") == "output_text"]
    if texts:
        return "".join(texts)
    refusals = [p["refusal"] for p in parts if p.get("type") == "refusal"]
    return "".join(refusals) if refusals else None


def to_chat(items: list[Body], check: bool = True) -> list[Body]:
    """Normalized items as chat messages: a function call joins the assistant message before it
    (as chat puts a turn's calls in one message); reasoning items and earlier searches are not
    sent on. With
    ``check``, calls and their outputs must pair up as chat upstreams require."""
    out: list[Body] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            role = item["role"]
            if role == "assistant":
                text = _assistant_text(item["content"])
                last = out[-1] if out else None
                if last and last["role"] == "assistant" and last.get("tool_calls") and last["content"] is None:
                    last["content"] = text
                else:
                    out.append({"role": "assistant", "content": text})
            elif role in ("system", "developer"):  # every chat upstream knows "system"
                out.append({"role": "system", "content": "\n\n".join(p.get("text", "") for p in item["content"])})
            else:
                out.append({"role": "user", "content": _user_content(item["content"])})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = out[-1] if out else None
            if last and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else "".join(p["text"] for p in output)
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
    if check:
        _check_pairs(out)
    return out


def _check_pairs(messages: list[Body]) -> None:
    """Every call answered before the conversation moves on, every output answering a call:
    chat upstreams refuse anything else, so say which one here."""
    waiting: list[str] = []
    for m in messages:
        if m["role"] == "tool":
            if m["tool_call_id"] not in waiting:
                raise BadRequest(
                    f"No tool call found for function call output with call_id {m['tool_call_id']}.", param="input"
                )
            waiting.remove(m["tool_call_id"])
            continue
        if waiting:
            raise BadRequest(f"No tool output found for function call {waiting[0]}.", param="input")
        waiting = [c["id"] for c in m.get("tool_calls") or ()]
    if waiting:  # the input ends in calls nobody answered: there is nothing for the model to do
        raise BadRequest(f"No tool output found for function call {waiting[0]}.", param="input")

"""Reconciling a request's ``messages`` with a stored transcript.

Clients of the integration API may send only their newest message or the whole history. We
find the longest tail of the stored transcript that the request begins with; what follows it
is new. With no overlap, every request message is new. So both styles continue the same
conversation without duplicating turns, and a retry of a turn whose reply failed does not
store the user's message twice.
"""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


def _text(content: Any) -> Any:
    if content is None:
        return ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(p.get("text", "") for p in content)
    return content


def fingerprint(m: Message) -> tuple[Any, ...]:
    """What makes two messages the same turn, ignoring representation (None vs "", parts vs text)."""
    calls = tuple(
        (c.get("id"), (c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
        for c in m.get("tool_calls") or ()
    )
    return (m.get("role"), _text(m.get("content")), calls, m.get("tool_call_id"))


def new_messages(stored: list[Message], sent: list[Message]) -> list[Message]:
    stored_fp = [fingerprint(m) for m in stored]
    sent_fp = [fingerprint(m) for m in sent]
    for overlap in range(min(len(stored), len(sent)), 0, -1):
        if stored_fp[len(stored) - overlap :] == sent_fp[:overlap]:
            return sent[overlap:]
    return sent

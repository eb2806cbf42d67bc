"""Making v8 tokens the way seed 003's JavaScript generateToken does, independently of Parley."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import httpx


def js_token(
    secret: str, app_id: str, user_id: str, expired_time: int, user_name: str | None = None, admin: bool = False
) -> str:
    message = secret + app_id + user_id + str(expired_time)
    payload: dict[str, Any] = {
        "hash": hashlib.md5(message.encode()).hexdigest(),
        "app_id": app_id,
        "user_id": user_id,
        "expired_time": expired_time,
    }
    if user_name:
        payload["user_name"] = user_name
    encoded = base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()  # btoa(JSON.stringify)
    return ("ak-" if admin else "ek-") + encoded


class V8:
    """A client for one integration; ``as_user`` gives one for another user."""

    def __init__(self, url: str, app: dict[str, str], user_id: str = "user-1", admin: bool = False) -> None:
        self.url, self.app, self.user_id, self.admin = url, app, user_id, admin
        secret = app["admin_token"] if admin else app["hash_token"]
        self.token = js_token(secret, app["app_id"], user_id, int(time.time()) + 3600, admin=admin)
        self.http = httpx.Client(base_url=url + "/v8", headers={"authorization": f"Bearer {self.token}"}, timeout=30)

    def as_user(self, user_id: str, admin: bool = False) -> V8:
        return V8(self.url, self.app, user_id, admin)

    def conversation(self, **body: Any) -> dict[str, Any]:
        r = self.http.post("/chat/conversations", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def send(self, conversation_id: str, **body: Any) -> httpx.Response:
        return self.http.post(f"/chat/conversations/{conversation_id}/messages", json=body)

    def events(self, conversation_id: str, **body: Any) -> list[Any]:
        """Read a streamed reply as seed 003's handleStream does: `data: ` lines until [DONE]."""
        out: list[Any] = []
        with self.http.stream("POST", f"/chat/conversations/{conversation_id}/messages", json=body) as r:
            assert r.status_code == 200, r.read()
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                    out.append(data if data == "[DONE]" else json.loads(data))
        return out

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        r = self.http.get(f"/chat/conversations/{conversation_id}/messages")
        assert r.status_code == 200, r.text
        return r.json()

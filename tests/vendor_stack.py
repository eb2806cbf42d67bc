"""A vendor double and a Parley in front of it, both over real HTTP, for the provider tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from parley.app import create_app
from tests.conftest import SILENCE_TIMEOUTS, cli_json, test_settings
from tests.polling import wait_for
from tests.servers import ThreadedServer

# Generous for the doubles' models that answer, so a loaded machine never turns a slow answer
# into a 504; the models named ``*-hang`` test the time limits, through a provider whose are short.
PATIENT = {"connect": 5, "first_byte": 30, "idle": 30, "total": 60}


@dataclass
class Stack:
    url: str
    key: str
    double_url: str
    rec: Any

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {self.key}"}, timeout=30)

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.key, max_retries=0, timeout=30)

    def post(self, body: dict[str, Any]) -> httpx.Response:
        with self.client() as http:
            return http.post("/v1/chat/completions", json=body)

    def stream_events(self, body: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
        """The SSE ``data:`` payloads of a streamed completion, parsed (``[DONE]`` kept as is)."""
        with self.client() as http, http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            events: list[Any] = []
            for line in r.iter_lines():
                if line.startswith("data: "):
                    payload = line[6:]
                    events.append(payload if payload == "[DONE]" else json.loads(payload))
            if r.status_code >= 400:
                r.read()
            return r, events


@contextmanager
def vendor_stack(
    tmp: Path, app: Any, rec: Any, provider: dict[str, Any], models: list[dict[str, Any]]
) -> Iterator[Stack]:
    """Start ``app`` (a vendor double) and a Parley whose only provider points at it."""
    database_url = f"sqlite+aiosqlite:///{tmp / 'parley.db'}"
    with ThreadedServer(app) as double:
        silent = {**provider, "name": provider["name"] + "-silent", "base_url": double.url}
        silent["timeouts"] = SILENCE_TIMEOUTS
        models = [{**m, "provider": silent["name"]} if m["name"].endswith("-hang") else m for m in models]
        settings = test_settings(
            database_url,
            double.url,
            providers=[{**provider, "base_url": double.url, "timeouts": PATIENT}, silent],
            models=models,
            default_model=models[0]["name"],
        )
        with ThreadedServer(create_app(settings)) as server:
            key = cli_json(database_url, "keys", "create", "--name", "vendor-tests", "--json")["key"]
            yield Stack(server.url, key, double.url, rec)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def error_of(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def deltas(events: list[Any]) -> list[dict[str, Any]]:
    return [e["choices"][0]["delta"] for e in events if isinstance(e, dict) and e.get("choices")]


def finish_reasons(events: list[Any]) -> list[str]:
    return [
        e["choices"][0]["finish_reason"]
        for e in events
        if isinstance(e, dict) and e.get("choices") and e["choices"][0].get("finish_reason")
    ]


def text_of(events: list[Any], key: str = "content") -> str:
    return "".join(d.get(key) or "" for d in deltas(events))


def leave_mid_stream(stack: Stack, model: str) -> list[str]:
    """Read a few chunks of an endless stream and hang up; how the vendor's streams of that
    model ended, once the double has seen this one end."""
    with stack.client() as http:
        body = {"model": model, "messages": [{"role": "user", "content": "x"}], "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            for line in r.iter_lines():
                if '"content":"3 "' in line:
                    break
    wait_for(lambda: any(e["model"] == model for e in stack.rec.stream_ends), "the vendor stream closed", 20)
    return [e["reason"] for e in stack.rec.stream_ends if e["model"] == model]

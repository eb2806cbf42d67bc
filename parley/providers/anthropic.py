"""Anthropic's Messages API as a provider: ``{base_url}/v1/messages``.

The translation is wire/anthropic.py's; the HTTP side providers/http.py's; what a failure
becomes, providers/failures.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from parley.config import ProviderConfig, Timeouts
from parley.errors import ParleyError
from parley.providers.base import Body, Provider
from parley.providers.failures import failure, retry_after
from parley.providers.http import JsonEvents, UpstreamHTTP, error_text
from parley.wire import anthropic as wire

DEFAULT_BASE_URL = "https://api.anthropic.com"


def _stream_error(event: str, payload: Any) -> tuple[int, str] | None:
    if event != "error" and not (isinstance(payload, dict) and payload.get("type") == "error"):
        return None
    status = wire.error_status(payload)
    return status, wire.error_message(payload) or f"HTTP {status}"


class AnthropicProvider(Provider):
    def __init__(self, config: ProviderConfig, timeouts: Timeouts) -> None:
        self.name = config.name
        self.url = (config.base_url or DEFAULT_BASE_URL).rstrip("/") + "/v1/messages"
        headers = {"anthropic-version": wire.VERSION, **config.headers}
        if config.api_key is not None:
            headers["x-api-key"] = config.api_key.get_secret_value()
        self.http = UpstreamHTTP(config.name, timeouts, headers, config.max_connections, self._error_for)

    def _error_for(self, status: int, text: bytes, headers: Mapping[str, str]) -> ParleyError:
        return failure(
            self.name, status, error_text(status, text, wire.error_message), retry_after=retry_after(headers)
        )

    async def complete(self, body: Body) -> Body:
        data = await self.http.read_json(self.url, wire.to_request(body))
        return wire.from_response(data)

    async def stream(self, body: Body) -> AsyncIterator[Body]:
        response = await self.http.open(self.url, {**wire.to_request(body), "stream": True})
        return self.http.stream(response, JsonEvents(self.name, wire.StreamTranslator(), _stream_error))

    async def aclose(self) -> None:
        await self.http.aclose()

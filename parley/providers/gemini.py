"""Gemini's API as a provider: ``{base_url}/v1beta/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:batchEmbedContents``.

The translation is wire/gemini.py's; the HTTP side providers/http.py's; what a failure
becomes, providers/failures.py's. Images the request links to are fetched first
(providers/media.py): Gemini takes only inline bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from parley import tokens
from parley.config import ProviderConfig, Timeouts
from parley.errors import ParleyError, UpstreamError
from parley.providers.base import Body, EmbeddingInputs, Embeddings, Provider
from parley.providers.failures import failure, retry_after
from parley.providers.http import JsonEvents, UpstreamHTTP, error_text
from parley.providers.media import inline_images
from parley.wire import gemini as wire

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
EMBED_BATCH = 100  # texts per batchEmbedContents request


def _stream_error(event: str, payload: Any) -> tuple[int, str] | None:
    if not wire.error_message(payload):
        return None
    status = wire.error_status(payload)
    return status, wire.error_message(payload) or f"HTTP {status}"


class GeminiProvider(Provider):
    def __init__(self, config: ProviderConfig, timeouts: Timeouts) -> None:
        self.name = config.name
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/") + "/v1beta/"
        headers = dict(config.headers)
        if config.api_key is not None:
            headers["x-goog-api-key"] = config.api_key.get_secret_value()
        self.http = UpstreamHTTP(config.name, timeouts, headers, config.max_connections, self._error_for)

    def _error_for(self, status: int, text: bytes, headers: Mapping[str, str]) -> ParleyError:
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = None
        return failure(
            self.name,
            wire.error_status(body, status),
            error_text(status, text, wire.error_message),
            retry_after=retry_after(headers) or wire.retry_delay(body),
        )

    def _url(self, model: str, method: str) -> str:
        return self.base_url + quote(wire.model_path(model), safe="/") + ":" + method

    async def _request(self, body: Body) -> Body:
        return wire.to_request(await inline_images(body))

    async def complete(self, body: Body) -> Body:
        data = await self.http.read_json(self._url(body["model"], "generateContent"), await self._request(body))
        return wire.from_response(data, body["model"])

    async def stream(self, body: Body) -> AsyncIterator[Body]:
        url = self._url(body["model"], "streamGenerateContent?alt=sse")
        response = await self.http.open(url, await self._request(body))
        return self.http.stream(response, JsonEvents(self.name, wire.StreamTranslator(body["model"]), _stream_error))

    async def embed(self, model: str, inputs: EmbeddingInputs) -> Embeddings:
        # takes_token_ids is False: the router has turned any token ids into text already.
        texts = [t for t in inputs if isinstance(t, str)]
        vectors: list[list[float]] = []
        url = self._url(model, "batchEmbedContents")
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            got = wire.embeddings(await self.http.read_json(url, wire.embed_request(model, batch)))
            if len(got) != len(batch):
                raise UpstreamError(
                    f"Upstream provider {self.name!r} returned {len(got)} embeddings for {len(batch)} inputs"
                )
            vectors += got
        # Gemini's embedding answers carry no token counts: counted here, as for a local model.
        return Embeddings(vectors, sum(tokens.count(t) for t in texts))

    async def aclose(self) -> None:
        await self.http.aclose()

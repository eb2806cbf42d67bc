"""Any OpenAI-compatible upstream (OpenAI, vLLM, Ollama, llama.cpp server, DeepSeek, …).

One pooled keep-alive aiohttp session per provider. aiohttp rather than httpx here because
httpcore's connection pool costs O(connections) per request: at 64 concurrent requests it
took most of a core (measured with bench/gateway.py). The only timeout set on the session is
``connect``; first byte, idle gaps and the total are enforced by the chat core
(chat/relay.py), which also covers an upstream that trickles or stays silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson

from parley.config import ProviderConfig, Timeouts
from parley.errors import ParleyError, UpstreamError, UpstreamTimeout
from parley.providers import upstream_errors
from parley.providers.base import Body, EmbeddingInputs, Embeddings, Provider

_MAX_LINE = 4 * 1024 * 1024  # an SSE line (one chunk) may be this long


def _error_for(provider: str, response: aiohttp.ClientResponse, text: bytes) -> ParleyError:
    message, code, param = upstream_errors.openai_message(response.status, text)
    return upstream_errors.failure(
        provider,
        response.status,
        message,
        code=code,
        param=param,
        retry_after=upstream_errors.retry_after(response.headers),
    )


class OpenAIProvider(Provider):
    takes_token_ids = True  # token-id arrays go upstream unchanged: they are ids of its own tokenizer

    def __init__(self, config: ProviderConfig, timeouts: Timeouts) -> None:
        self.name = config.name
        self.timeouts = timeouts
        self.base_url = (config.base_url or "").rstrip("/")
        self.headers = {"content-type": "application/json", **config.headers}
        if config.api_key is not None:
            self.headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self.stream_usage = config.stream_usage
        self.max_connections = config.max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop that will own it.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect),
                connector=aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=60),
                read_bufsize=_MAX_LINE,
                max_line_size=_MAX_LINE,
                max_field_size=_MAX_LINE,
                skip_auto_headers=("user-agent",),
            )
        return self._session

    async def _open(self, path: str, body: Body) -> aiohttp.ClientResponse:
        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                response = await self._client().post(self.base_url + path, data=orjson.dumps(body))
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"Upstream provider {self.name!r} sent nothing within {self.timeouts.first_byte:g}s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"Upstream provider {self.name!r} is unreachable: {type(exc).__name__}") from exc
        if response.status >= 400:
            try:
                text = await response.read()
            except aiohttp.ClientError:
                text = b""
            finally:
                response.release()
            raise _error_for(self.name, response, text)
        return response

    async def _read_json(self, path: str, body: Body) -> Body:
        response = await self._open(path, body)
        try:
            async with asyncio.timeout(self.timeouts.total):
                raw = await response.read()
        except TimeoutError as exc:
            response.close()
            raise UpstreamTimeout(
                f"Upstream provider {self.name!r} did not finish within {self.timeouts.total:g}s"
            ) from exc
        except aiohttp.ClientError as exc:
            response.close()
            raise UpstreamError(f"Upstream provider {self.name!r} dropped the connection") from exc
        response.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"Upstream provider {self.name!r} sent a body that is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamError(f"Upstream provider {self.name!r} sent an unexpected body")
        return data

    async def complete(self, body: Body) -> Body:
        data = await self._read_json("/chat/completions", body)
        if not isinstance(data.get("choices"), list):
            raise UpstreamError(f"Upstream provider {self.name!r} sent a completion without choices")
        return data

    async def stream(self, body: Body) -> AsyncIterator[Body]:
        if self.stream_usage:
            body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        response = await self._open("/chat/completions", {**body, "stream": True})
        return self._events(response)

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncIterator[Body]:
        finished = False
        try:
            async for line in response.content:
                if not line.startswith(b"data:"):
                    continue  # comments, event names, blank separators
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    finished = True
                    return
                try:
                    chunk = orjson.loads(payload)
                except orjson.JSONDecodeError as exc:
                    raise UpstreamError(f"Upstream provider {self.name!r} sent a malformed event") from exc
                if isinstance(chunk, dict) and chunk.get("error"):
                    err = chunk["error"]
                    msg = err.get("message") if isinstance(err, dict) else str(err)
                    raise UpstreamError(f"Upstream provider {self.name!r} failed mid-stream: {msg}")
                yield chunk
            finished = True  # the body ended without [DONE]: what came is all there is
        except (aiohttp.ClientError, ValueError) as exc:
            raise UpstreamError(f"Upstream provider {self.name!r} dropped the connection mid-stream") from exc
        finally:
            # Closing (not releasing) an unfinished response drops the connection: the upstream
            # sees the client go and stops generating.
            response.release() if finished else response.close()

    async def embed(self, model: str, inputs: EmbeddingInputs) -> Embeddings:
        data = await self._read_json("/embeddings", {"model": model, "input": inputs})
        try:
            rows = sorted(data["data"], key=lambda d: d.get("index", 0))
            vectors = [list(map(float, r["embedding"])) for r in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(f"Upstream provider {self.name!r} sent malformed embeddings") from exc
        if len(vectors) != len(inputs):
            raise UpstreamError(
                f"Upstream provider {self.name!r} returned {len(vectors)} embeddings for {len(inputs)} inputs"
            )
        return Embeddings(vectors, int((data.get("usage") or {}).get("prompt_tokens") or 0))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

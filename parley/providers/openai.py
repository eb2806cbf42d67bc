"""Any OpenAI-compatible upstream (OpenAI, vLLM, Ollama, llama.cpp server, DeepSeek, …).

One pooled keep-alive httpx client per provider. The only timeout set here is ``connect``;
first byte, idle gaps and the total are enforced by the chat core (chat/relay.py), where
they also cover silence that no socket read would notice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson

from parley.config import ProviderConfig, Timeouts
from parley.errors import ParleyError, UpstreamError, UpstreamTimeout
from parley.providers.base import Body, Embeddings, Provider

# Upstream statuses that are the client's own doing and pass through as such.
_CLIENT_FAULTS = {400: 400, 404: 400, 413: 400, 422: 400, 429: 429}


def _upstream_message(resp: httpx.Response, text: bytes) -> str:
    try:
        data = orjson.loads(text)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    except orjson.JSONDecodeError:
        pass
    return text[:300].decode("utf-8", "replace") or resp.reason_phrase


def _error_for(provider: str, resp: httpx.Response, text: bytes) -> ParleyError:
    msg = _upstream_message(resp, text)
    status = _CLIENT_FAULTS.get(resp.status_code)
    if status is not None:
        return ParleyError(msg, status=status, code="upstream_rejected" if status == 400 else "rate_limit_exceeded")
    return UpstreamError(f"Upstream provider {provider!r} answered {resp.status_code}: {msg}")


class OpenAIProvider(Provider):
    def __init__(self, config: ProviderConfig, timeouts: Timeouts) -> None:
        self.name = config.name
        self.timeouts = timeouts
        headers = {"content-type": "application/json", **config.headers}
        if config.api_key is not None:
            headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self.stream_usage = config.stream_usage
        self._client = httpx.AsyncClient(
            base_url=(config.base_url or "").rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(None, connect=timeouts.connect),
            limits=httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=200),
        )

    async def _open(self, path: str, body: Body) -> httpx.Response:
        request = self._client.build_request("POST", path, content=orjson.dumps(body))
        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                response = await self._client.send(request, stream=True)
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"Upstream provider {self.name!r} sent nothing within {self.timeouts.first_byte:g}s"
            ) from exc
        except httpx.ConnectTimeout as exc:
            raise UpstreamTimeout(f"Connecting to upstream provider {self.name!r} timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Upstream provider {self.name!r} is unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            try:
                text = await response.aread()
            except httpx.HTTPError:
                text = b""
            finally:
                await response.aclose()
            raise _error_for(self.name, response, text)
        return response

    async def _read_json(self, path: str, body: Body) -> Body:
        response = await self._open(path, body)
        try:
            async with asyncio.timeout(self.timeouts.total):
                raw = await response.aread()
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"Upstream provider {self.name!r} did not finish within {self.timeouts.total:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Upstream provider {self.name!r} dropped the connection") from exc
        finally:
            await response.aclose()
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

    async def _events(self, response: httpx.Response) -> AsyncIterator[Body]:
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # comments, event names, blank separators
                payload = line[5:].strip()
                if payload == "[DONE]":
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
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Upstream provider {self.name!r} dropped the connection mid-stream") from exc
        finally:
            await response.aclose()

    async def embed(self, model: str, inputs: list[str]) -> Embeddings:
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
        await self._client.aclose()

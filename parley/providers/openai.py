"""Any OpenAI-compatible upstream (OpenAI, vLLM, Ollama, llama.cpp server, DeepSeek, …).

Requests and chunks pass through as they are; the HTTP side (pooling, deadlines, dropping the
connection when the caller goes away) is providers/http.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping

from parley.config import ProviderConfig, Timeouts
from parley.errors import ParleyError, UpstreamError
from parley.providers import failures
from parley.providers.base import Body, EmbeddingInputs, Embeddings, Provider
from parley.providers.http import UpstreamHTTP, json_event


class _Chunks:
    """OpenAI's own stream: each ``data:`` is a chunk already; ``[DONE]`` ends it."""

    done = False

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def feed(self, event: str, data: bytes) -> Iterable[Body]:
        if data == b"[DONE]":
            self.done = True
            return ()
        chunk = json_event(self.provider, data)
        if isinstance(chunk, dict) and chunk.get("error"):
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise UpstreamError(f"Upstream provider {self.provider!r} failed mid-stream: {msg}")
        return (chunk,)

    def end(self) -> Iterable[Body]:
        return ()


class OpenAIProvider(Provider):
    takes_token_ids = True  # token-id arrays go upstream unchanged: they are ids of its own tokenizer

    def __init__(self, config: ProviderConfig, timeouts: Timeouts) -> None:
        self.name = config.name
        self.timeouts = timeouts
        self.base_url = (config.base_url or "").rstrip("/")
        headers = dict(config.headers)
        if config.api_key is not None:
            headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self.stream_usage = config.stream_usage
        self.http = UpstreamHTTP(config.name, timeouts, headers, config.max_connections, self._error_for)

    def _error_for(self, status: int, text: bytes, headers: Mapping[str, str]) -> ParleyError:
        message, code, param = failures.openai_message(status, text)
        return failures.failure(self.name, status, message, failures.retry_after(headers), code=code, param=param)

    async def complete(self, body: Body) -> Body:
        data = await self.http.read_json(self.base_url + "/chat/completions", body)
        if not isinstance(data.get("choices"), list):
            raise UpstreamError(f"Upstream provider {self.name!r} sent a completion without choices")
        return data

    async def stream(self, body: Body) -> AsyncIterator[Body]:
        if self.stream_usage:
            body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        response = await self.http.open(self.base_url + "/chat/completions", {**body, "stream": True})
        return self.http.stream(response, _Chunks(self.name))

    async def embed(self, model: str, inputs: EmbeddingInputs) -> Embeddings:
        data = await self.http.read_json(self.base_url + "/embeddings", {"model": model, "input": inputs})
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
        await self.http.aclose()

"""Public model names → their deployments (provider, upstream model). Built once from the settings."""

from __future__ import annotations

from typing import Any

from parley import tokens
from parley.config import LOCAL_EMBEDDING_MODEL, ModelConfig, Settings
from parley.errors import BadRequest, ModelNotFound
from parley.providers.anthropic import AnthropicProvider
from parley.providers.base import EmbeddingInputs, Embeddings, Provider
from parley.providers.builtin import BuiltinProvider
from parley.providers.deployments import Deployments
from parley.providers.gemini import GeminiProvider
from parley.providers.local_embeddings import LocalEmbedder
from parley.providers.openai import OpenAIProvider
from parley.providers.route import Route

__all__ = ["Route", "Router", "model_card"]

NETWORK_PROVIDERS: dict[str, type[OpenAIProvider | AnthropicProvider | GeminiProvider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
}


def model_card(name: str, owner: str) -> dict[str, Any]:
    """A model as OpenAI's models list shows it."""
    return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": owner}


def as_texts(inputs: EmbeddingInputs) -> list[str]:
    """Token-id arrays decoded with the tokenizer of OpenAI's embedding models; texts as they are."""
    texts: list[str] = []
    items: list[str | list[int]] = list(inputs)
    for i, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
            continue
        try:
            texts.append(tokens.decode_ids(item))
        except ValueError as exc:
            raise BadRequest(f"'input[{i}]' cannot be decoded: {exc}.", param="input") from None
    return texts


class Router:
    def __init__(self, settings: Settings) -> None:
        self.providers: dict[str, Provider] = {}
        self._timeouts = {p.name: settings.timeouts_for(p) for p in settings.providers}
        for p in settings.providers:
            if p.type == "builtin":
                self.providers[p.name] = BuiltinProvider(p.name, p.chunk_delay)
            else:
                self.providers[p.name] = NETWORK_PROVIDERS[p.type](p, settings.timeouts_for(p))
        grouped: dict[str, list[ModelConfig]] = {}
        for m in settings.models:
            grouped.setdefault(m.name, []).append(m)
        self.models: dict[str, Deployments] = {}
        seen: dict[str, int] = {}
        for name, entries in grouped.items():
            routes = []
            for m in entries:
                label = f"{m.provider}/{m.upstream_model or m.name}"
                seen[label] = seen.get(label, 0) + 1
                routes.append(self._route(m, label if seen[label] == 1 else f"{label}#{seen[label]}"))
            fallbacks = list(dict.fromkeys(f for m in entries for f in m.fallbacks))
            self.models[name] = Deployments(name, routes, [m.weight for m in entries], fallbacks, settings.routing)
        # The first deployment of each model: what lists and cards describe.
        self.routes: dict[str, Route] = {name: d.primary for name, d in self.models.items()}
        self.routing = settings.routing
        self.local_embedder = LocalEmbedder()
        self.calibrations = {m.name: m.similarity for m in settings.models if m.similarity is not None}
        self.default_model = settings.default_model
        self.default_embedding_model = settings.default_embedding_model
        self._embedding_names = settings.embedding_model_names()

    def _route(self, m: ModelConfig, deployment: str) -> Route:
        provider = self.providers[m.provider]
        owner = m.owned_by or ("parley" if isinstance(provider, BuiltinProvider) else m.provider)
        timeouts = self._timeouts[m.provider]
        return Route(m.name, m.upstream_model or m.name, provider, m.kind, owner, timeouts, deployment)

    def chat(self, name: str | None) -> Route:
        """The model's first deployment (for its name and card); 404 for an unknown model."""
        return self.deployments(name).primary

    def deployments(self, name: str | None) -> Deployments:
        group = self.models.get(name or self.default_model or "")
        if group is None or group.primary.kind != "chat":
            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
        return group

    def fallback_chain(self, name: str | None) -> list[Deployments]:
        """The model's deployments, then each fallback's (and theirs), each model once."""
        chain: list[Deployments] = []
        pending = [self.deployments(name)]
        while pending:
            group = pending.pop(0)
            if group in chain:
                continue
            chain.append(group)
            pending += [self.models[f] for f in group.fallbacks if f in self.models]
        return chain

    def embedding_names(self) -> list[str]:
        return self._embedding_names

    def check_embedding(self, name: str) -> str:
        if name not in self.embedding_names():
            raise ModelNotFound(
                f"The embedding model `{name}` does not exist. Available: {', '.join(self.embedding_names())}",
                param="model",
            )
        return name

    async def embed(self, name: str, inputs: EmbeddingInputs) -> Embeddings:
        """Embed texts or token-id arrays; ids reach only providers that take them as they are."""
        if self.check_embedding(name) == LOCAL_EMBEDDING_MODEL:
            result = await self.local_embedder.embed(as_texts(inputs))
            if inputs and not isinstance(inputs[0], str):
                result.prompt_tokens = sum(len(ids) for ids in inputs)  # the caller's own count
            return result
        route = self.routes[name]
        if not route.provider.takes_token_ids:
            inputs = as_texts(inputs)
        return await route.provider.embed(route.upstream_model, inputs)

    async def aclose(self) -> None:
        for p in self.providers.values():
            await p.aclose()

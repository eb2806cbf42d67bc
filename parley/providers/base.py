"""The one interface every provider implements.

Requests and results use OpenAI's chat shapes as plain dicts: a request body, a
``chat.completion`` object, ``chat.completion.chunk`` objects. Dialects and the chat core
never see a provider's own wire format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from parley.errors import BadRequest

Body = dict[str, Any]
# What an embeddings request embeds: texts, or token-id arrays as OpenAI's API takes them.
EmbeddingInputs = list[str] | list[list[int]]


@dataclass
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


class Provider(ABC):
    name: str
    # Whether ``embed`` takes token-id arrays as they are (OpenAI's API does). A provider that
    # takes text only leaves this False and gets texts: the router decodes the ids first.
    takes_token_ids = False

    @abstractmethod
    async def complete(self, body: Body) -> Body:
        """A whole ``chat.completion`` for a request whose ``model`` is the upstream's name."""

    @abstractmethod
    async def stream(self, body: Body) -> AsyncIterator[Body]:
        """Open a stream and return its ``chat.completion.chunk`` objects.

        Awaiting this returns once the upstream has accepted the request, so a refusal is
        raised as an error before any byte goes to the client; failures after that are raised
        from the iterator.
        """

    async def embed(self, model: str, inputs: EmbeddingInputs) -> Embeddings:
        raise BadRequest(f"Provider {self.name!r} does not serve embeddings", param="model")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass

"""What one request used and cost: token counts read from OpenAI's usage object, priced per model."""

from __future__ import annotations

from typing import Any, NamedTuple

from parley.config import Price, Settings


class Tokens(NamedTuple):
    """A request's token counts (a tuple: made for every request, cheaper than a dataclass)."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0  # of the prompt, served from the provider's cache
    reasoning: int = 0  # of the completion, spent thinking

    @property
    def total(self) -> int:
        return self.prompt + self.completion


NO_TOKENS = Tokens()

# A NamedTuple's own constructor is a Python function, a frame for every call; ``tuple.__new__``
# makes the same tuple in C. For the counts and rows made on every request, fields in order.
new_tuple = tuple.__new__


def tokens_of(usage: Any) -> Tokens:
    """Counts from OpenAI's ``usage`` (``prompt_tokens_details.cached_tokens`` and
    ``completion_tokens_details.reasoning_tokens`` included). Upstreams send all sorts; a count
    that is not a positive integer counts as nothing."""
    if type(usage) is not dict:
        return NO_TOKENS
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    cached: Any = 0
    reasoning: Any = 0
    details = usage.get("prompt_tokens_details")
    if type(details) is dict:
        cached = details.get("cached_tokens")
    details = usage.get("completion_tokens_details")
    if type(details) is dict:
        reasoning = details.get("reasoning_tokens")
    # (one expression per count, not a helper: this runs for every request)
    return new_tuple(
        Tokens,
        (
            prompt if type(prompt) is int and prompt > 0 else 0,
            completion if type(completion) is int and completion > 0 else 0,
            cached if type(cached) is int and cached > 0 else 0,
            reasoning if type(reasoning) is int and reasoning > 0 else 0,
        ),
    )


class Prices:
    """Each public model's price (``models[].price``); a model without one costs nothing."""

    def __init__(self, settings: Settings) -> None:
        # Per model: USD per token for input, cached input and output, read out of the
        # configuration once (``cost`` runs for every request).
        self._prices: dict[str, tuple[float, float, float]] = {
            m.name: _per_token(m.price) for m in settings.models if m.price is not None
        }

    def cost(self, model: str, tokens: Tokens) -> float:
        price = self._prices.get(model)
        if price is None:
            return 0.0
        prompt, completion, cached, _ = tokens
        cached = min(cached, prompt)
        return (prompt - cached) * price[0] + cached * price[1] + completion * price[2]


def _per_token(price: Price) -> tuple[float, float, float]:
    cached = price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
    return price.input_per_mtok / 1e6, cached / 1e6, price.output_per_mtok / 1e6


class UsageRow(NamedTuple):
    """One row of ``usage_records``, made on the request path and written later in a batch
    (a tuple: cheap to make, and what the database driver takes as it is)."""

    created_at: float  # epoch seconds (a datetime once written)
    request_id: str
    caller_kind: str
    key_id: str | None
    project_id: str | None
    app_id: str | None
    user_id: str | None
    dialect: str
    model: str
    provider: str | None
    deployment: str | None
    upstream_model: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: float
    latency_ms: float
    ttft_ms: float | None
    status: int
    error_code: str | None
    streamed: bool

"""Settings: a YAML file (``--config FILE`` or ``PARLEY_CONFIG``) overridden by ``PARLEY_*`` variables.

``PARLEY_PORT=9000`` sets ``port``; a double underscore reaches into nested tables
(``PARLEY_TIMEOUTS__IDLE=30``). Values are parsed as YAML, so numbers, booleans and lists work.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

BUILTIN_MODEL = "parley-offline"
LOCAL_EMBEDDING_MODEL = "use-multilingual-v3"  # always served, offline, from a PyPI package


class Timeouts(BaseModel):
    """Seconds. ``first_byte`` and ``idle`` fire even when the upstream sends nothing at all."""

    model_config = ConfigDict(extra="forbid")
    connect: float = 10.0
    first_byte: float = 120.0  # until the upstream answers (headers, then the first chunk)
    idle: float = 60.0  # the longest silence allowed between two stream chunks
    total: float = 600.0  # the whole request, however steadily it trickles


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    type: Literal["openai", "anthropic", "gemini", "builtin"]
    base_url: str | None = None  # anthropic and gemini default to the vendor's own API
    api_key: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts | None = None  # falls back to the server-wide ``timeouts``
    max_connections: int = 1000
    stream_usage: bool = True  # ask the upstream for a usage chunk (stream_options.include_usage)
    chunk_delay: float = 0.02  # builtin only: seconds between streamed words, to feel like a model

    @model_validator(mode="after")
    def _needs_base_url(self) -> ProviderConfig:
        if self.type == "openai" and not self.base_url:
            raise ValueError(f"provider {self.name!r}: type openai needs a base_url")
        return self


class SimilarityCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    midpoint: float
    slope: float = 10.0


class Price(BaseModel):
    """USD per million tokens; cached prompt tokens cost ``cached_input_per_mtok`` (else the input price)."""

    model_config = ConfigDict(extra="forbid")
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    provider: str
    upstream_model: str | None = None  # defaults to ``name``
    owned_by: str | None = None
    kind: Literal["chat", "embedding"] = "chat"
    # Embedding models: the raw cosine that should read as similarity 0.5, and the slope of the
    # logistic around it (see parley/memory/scoring.py). Without it, similarity is the raw cosine.
    similarity: SimilarityCalibration | None = None
    # Several entries with one ``name`` are deployments of one public model (providers mixed).
    weight: float = Field(default=1.0, gt=0)  # share of requests among healthy deployments
    fallbacks: list[str] = Field(default_factory=list)  # other models tried when all deployments fail
    price: Price | None = None  # what a request costs, for usage records and spend budgets


class Routing(BaseModel):
    """How a request picks among a model's deployments, and what happens when one fails."""

    model_config = ConfigDict(extra="forbid")
    strategy: Literal["weighted", "least-busy"] = "weighted"
    retries: int = Field(default=2, ge=0, le=10)  # further attempts before the client sees a failure
    allowed_fails: int = Field(default=3, ge=1)  # failures in a row before a deployment cools down
    cooldown: float = Field(default=30.0, ge=0)  # seconds a cooled-down deployment is skipped
    backoff: float = Field(default=0.1, ge=0)  # seconds before the first retry; doubles, with jitter


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    database_url: str = "sqlite+aiosqlite:///data/parley.db"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    providers: list[ProviderConfig] = Field(default_factory=lambda: [ProviderConfig(name="builtin", type="builtin")])
    models: list[ModelConfig] = Field(
        default_factory=lambda: [ModelConfig(name=BUILTIN_MODEL, provider="builtin", owned_by="parley")]
    )
    default_model: str | None = None
    default_embedding_model: str = LOCAL_EMBEDDING_MODEL
    timeouts: Timeouts = Field(default_factory=Timeouts)
    routing: Routing = Field(default_factory=Routing)
    sse_ping_interval: float = 15.0  # seconds of upstream silence before a ``: ping`` comment
    max_body_bytes: int = 16 * 1024 * 1024  # JSON request bodies; 413 beyond
    max_upload_bytes: int = 50 * 1024 * 1024  # file uploads; 413 beyond
    extract_timeout: float = 60.0  # seconds one file may take to parse before it is an error
    extract_workers: int = 2  # parser processes
    embedding_lease: float = 120.0  # seconds a worker holds claimed chunks; then others may retry them
    embedding_poll: float = 1.0  # seconds between looks for queued chunks from other processes
    embedding_retry_delay: float = 2.0  # first retry after a failed batch; doubles each attempt
    auth_cache_ttl: float = 2.0  # seconds a verified key is trusted before it is looked up again
    # Browser origins allowed to call the API (e.g. ["https://app.example.com"], or ["*"]); empty: none.
    cors_origins: list[str] = Field(default_factory=list)
    # Every wait on the database is bounded; beyond these, requests answer 503 with Retry-After.
    database_connect_timeout: float = 5.0  # seconds to open a connection
    database_pool_timeout: float = 10.0  # seconds to wait for a free pooled connection
    database_statement_timeout: float = 30.0  # seconds one PostgreSQL statement may run
    filter_timeout: float = 2.0  # seconds one memory filter's query may run; 400 beyond
    # Encrypts the v8 integrations' signing secrets at rest. Every server sharing a database
    # needs the same key: set it (PARLEY_SECRET_KEY) or keep the generated file.
    secret_key: SecretStr | None = None
    secret_key_file: str = "data/secret.key"
    # Usage records, limits and metrics (see parley/accounting.py).
    usage_recording: bool = True  # one row per request, written in batches off the request path
    usage_flush_interval: float = 1.0  # seconds between batches (and between syncs of shared counters)
    usage_retention_days: int = 90  # older usage rows are deleted; 0 keeps them forever
    redis_url: str | None = None  # shared limit counters in Redis instead of the database
    metrics: bool = True  # GET /metrics in Prometheus' text format
    metrics_token: SecretStr | None = None  # if set, /metrics wants ``Authorization: Bearer <token>``

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins_list(cls, value: Any) -> Any:
        # PARLEY_CORS_ORIGINS=https://a.example,https://b.example reads as one string.
        return [o.strip() for o in value.split(",") if o.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_routes(self) -> Settings:
        names = {p.name for p in self.providers}
        if len(names) != len(self.providers):
            raise ValueError("provider names must be unique")
        for m in self.models:
            if m.provider not in names:
                raise ValueError(f"model {m.name!r} names unknown provider {m.provider!r}")
        kinds: dict[str, str] = {}
        for m in self.models:
            if kinds.setdefault(m.name, m.kind) != m.kind:
                raise ValueError(f"model {m.name!r}: all its deployments must be of one kind")
        for m in self.models:
            for other in m.fallbacks:
                if kinds.get(other) != m.kind or other == m.name:
                    raise ValueError(f"model {m.name!r}: fallback {other!r} is not another {m.kind} model")
        chat = [m.name for m in self.models if m.kind == "chat"]
        if self.default_model is None and chat:
            self.default_model = chat[0]
        return self

    def timeouts_for(self, provider: ProviderConfig) -> Timeouts:
        return provider.timeouts or self.timeouts

    def embedding_model_names(self) -> list[str]:
        """Every embedding model a memory may use: the packaged one, then the configured ones."""
        names = [m.name for m in self.models if m.kind == "embedding"]
        return [LOCAL_EMBEDDING_MODEL] + list(dict.fromkeys(names))


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def load_settings(config_file: str | os.PathLike[str] | None = None) -> Settings:
    """Read the YAML file (if any), apply ``PARLEY_*`` overrides, validate."""
    path = config_file or os.environ.get("PARLEY_CONFIG")
    data: dict[str, Any] = {}
    if path:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a mapping")
    for name, raw in os.environ.items():
        if not name.startswith("PARLEY_") or name == "PARLEY_CONFIG":
            continue
        keys = name[len("PARLEY_") :].lower().split("__")
        if keys[0] not in Settings.model_fields:
            continue
        _set_path(data, keys, yaml.safe_load(raw) if raw else raw)
    return Settings.model_validate(data)

"""Prometheus metrics, exported at ``GET /metrics``.

With one process they live in memory. ``parley serve --workers N`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers start: each worker then
writes its values to files there and the endpoint adds up every worker's files, so any worker
answers for all of them. prometheus_client chooses between the two when it is first imported,
and so does this module.

Labels never carry raw ids: models are configured public names (unknown ones are refused
before they are counted), routes are templates such as ``/v8/memories/{memory_id}``.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import re
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from parley.usage.record import Tokens

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

_LATENCY = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_FIRST_TOKEN = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_HTTP = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)

REQUESTS = Counter(
    "parley_requests", "Model requests (chat turns and embeddings) by outcome.", ["dialect", "model", "status"]
)
DURATION = Histogram(
    "parley_request_duration_seconds", "Whole model requests, first byte in to last byte out.", ["dialect", "model"],
    buckets=_LATENCY,
)  # fmt: skip
FIRST_TOKEN = Histogram(
    "parley_time_to_first_token_seconds", "Streamed requests: until the first reply chunk.", ["dialect", "model"],
    buckets=_FIRST_TOKEN,
)  # fmt: skip
TOKENS = Counter("parley_tokens", "Tokens by model and kind: prompt, completion, cached, reasoning.", ["model", "kind"])
ACTIVE_STREAMS = Gauge("parley_active_streams", "Streamed replies in progress.", multiprocess_mode="livesum")
RATE_LIMITED = Counter("parley_rate_limited", "Requests refused over a limit or budget.", ["scope", "limit"])
UPSTREAM_ERRORS = Counter("parley_upstream_errors", "Failed calls to model providers.", ["provider"])
EMBEDDING_QUEUE = Gauge(
    "parley_embedding_queue_depth", "Memory chunks waiting to be embedded (sampled at scrape).",
    multiprocess_mode="mostrecent",
)  # fmt: skip
USAGE_DROPPED = Counter("parley_usage_rows_dropped", "Usage rows the database did not take in time.")
HTTP_REQUESTS = Counter("parley_http_requests", "HTTP requests by route template.", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "parley_http_request_duration_seconds", "HTTP requests by route template.", ["route"], buckets=_HTTP
)

# The request path only adds to plain dicts and lists (one event loop per process: no locks
# needed); ``flush`` adds the totals to the Prometheus metrics, a few locked updates per label
# set instead of several per request. It runs before every scrape and at every accounting sync
# (so under several workers a scrape sees the others' counts within ``usage_flush_interval``).
_counts: dict[tuple[Any, tuple[str, ...]], float] = {}
_observed: dict[tuple[Any, tuple[str, ...]], list[float]] = {}  # bucket counts, then the sum
_BOUNDS = {
    id(DURATION): (*_LATENCY, math.inf),
    id(FIRST_TOKEN): (*_FIRST_TOKEN, math.inf),
    id(HTTP_DURATION): (*_HTTP, math.inf),
}
_LATENCY_BOUNDS = _BOUNDS[id(DURATION)]
_FIRST_BOUNDS = _BOUNDS[id(FIRST_TOKEN)]
_HTTP_BOUNDS = _BOUNDS[id(HTTP_DURATION)]


class _Requests:
    """One (dialect, model)'s model requests since the last flush: everything ``request_done``
    adds, in one object found with one lookup."""

    __slots__ = ("status", "duration", "first", "prompt", "completion", "cached", "reasoning")

    def __init__(self) -> None:
        self.status: dict[int, int] = {}
        self.duration = [0.0] * (len(_LATENCY_BOUNDS) + 1)  # bucket counts, then the sum
        self.first: list[float] | None = None
        self.prompt = self.completion = self.cached = self.reasoning = 0


class _Http:
    """One (method, route)'s HTTP requests since the last flush."""

    __slots__ = ("status", "duration")

    def __init__(self) -> None:
        self.status: dict[int, int] = {}
        self.duration = [0.0] * (len(_HTTP_BOUNDS) + 1)


_requests: dict[tuple[str, str], _Requests] = {}
_http: dict[tuple[str, str], _Http] = {}


def _count(metric: Any, labels: tuple[str, ...], n: float = 1.0) -> None:
    key = (metric, labels)
    _counts[key] = _counts.get(key, 0.0) + n


def _observe(metric: Any, labels: tuple[str, ...], value: float) -> None:
    key = (metric, labels)
    tally = _observed.get(key)
    if tally is None:
        tally = _observed[key] = [0.0] * (len(_BOUNDS[id(metric)]) + 1)
    tally[bisect.bisect_left(_BOUNDS[id(metric)], value)] += 1  # Prometheus buckets are "le"
    tally[-1] += value


def _merge(metric: Any, labels: tuple[str, ...], tally: list[float]) -> None:
    into = _observed.get((metric, labels))
    if into is None:
        _observed[(metric, labels)] = tally
    else:
        for i, n in enumerate(tally):
            into[i] += n


def _unfold() -> None:
    """The per-request tallies as counts and observations by metric and labels."""
    global _requests, _http
    requests, _requests = _requests, {}
    http, _http = _http, {}
    for (dialect, model), r in requests.items():
        for status, n in r.status.items():
            _count(REQUESTS, (dialect, model, str(status)), n)
        _merge(DURATION, (dialect, model), r.duration)
        if r.first is not None:
            _merge(FIRST_TOKEN, (dialect, model), r.first)
        for kind, n in (("prompt", r.prompt), ("completion", r.completion), ("cached", r.cached),
                        ("reasoning", r.reasoning)):  # fmt: skip
            if n:
                _count(TOKENS, (model, kind), n)
    for (method, route), h in http.items():
        for status, n in h.status.items():
            _count(HTTP_REQUESTS, (method, route, str(status)), n)
        _merge(HTTP_DURATION, (route,), h.duration)


def flush() -> None:
    """Add what the requests tallied to the Prometheus metrics."""
    global _counts, _observed
    _unfold()
    counts, _counts = _counts, {}
    observed, _observed = _observed, {}
    for (metric, labels), n in counts.items():
        (metric.labels(*labels) if labels else metric).inc(n)
    for (metric, labels), tally in observed.items():
        child = metric.labels(*labels)
        # A histogram child keeps one value per bucket and the sum: add to them directly,
        # exactly as that many observe() calls would.
        child._sum.inc(tally[-1])
        for i, n in enumerate(tally[:-1]):
            if n:
                child._buckets[i].inc(n)


def request_done(
    dialect: str, model: str, status: int, seconds: float, first_token: float | None, tokens: Tokens
) -> None:
    r = _requests.get((dialect, model))
    if r is None:
        r = _requests[(dialect, model)] = _Requests()
    r.status[status] = r.status.get(status, 0) + 1
    duration = r.duration
    duration[bisect.bisect_left(_LATENCY_BOUNDS, seconds)] += 1  # Prometheus buckets are "le"
    duration[-1] += seconds
    if first_token is not None:
        first = r.first
        if first is None:
            first = r.first = [0.0] * (len(_FIRST_BOUNDS) + 1)
        first[bisect.bisect_left(_FIRST_BOUNDS, first_token)] += 1
        first[-1] += first_token
    r.prompt += tokens.prompt
    r.completion += tokens.completion
    r.cached += tokens.cached
    r.reasoning += tokens.reasoning


def stream_opened() -> None:
    _count(ACTIVE_STREAMS, (), 1.0)


def stream_closed() -> None:
    _count(ACTIVE_STREAMS, (), -1.0)


def rate_limited(dialect: str, model: str, scope: str, limit: str) -> None:
    _count(REQUESTS, (dialect, model, "429"))
    _count(RATE_LIMITED, (scope, limit))


def upstream_error(provider: str) -> None:
    _count(UPSTREAM_ERRORS, (provider,))


def usage_rows_dropped(n: int) -> None:
    _count(USAGE_DROPPED, (), n)


def http_done(method: str, route: str, status: int, seconds: float) -> None:
    h = _http.get((method, route))
    if h is None:
        h = _http[(method, route)] = _Http()
    h.status[status] = h.status.get(status, 0) + 1
    duration = h.duration
    duration[bisect.bisect_left(_HTTP_BOUNDS, seconds)] += 1
    duration[-1] += seconds


_LIVE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_workers() -> None:
    """Drop the live gauges (active streams) of worker processes that are gone."""
    if MULTIPROCESS_DIR is None:
        return
    with contextlib.suppress(OSError):
        for name in os.listdir(MULTIPROCESS_DIR):
            match = _LIVE_FILE.match(name)
            if match and not _alive(int(match.group(1))):
                multiprocess.mark_process_dead(int(match.group(1)), MULTIPROCESS_DIR)


def worker_stopped() -> None:
    if MULTIPROCESS_DIR is not None:
        multiprocess.mark_process_dead(os.getpid(), MULTIPROCESS_DIR)


def render() -> bytes:
    """Every metric in Prometheus' text format: this process's, or every worker's."""
    flush()
    if MULTIPROCESS_DIR is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, MULTIPROCESS_DIR)
    return generate_latest(registry)

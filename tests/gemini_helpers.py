"""The stack the `type: gemini` provider tests run against: the Gemini API double, and a Parley
whose provider points at it with a model for each of the double's behaviours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.gemini_double import API_KEY, Recorder, build
from tests.vendor_stack import Stack, vendor_stack

MODELS = [
    "gemini-text",
    "gemini-tools",
    "gemini-thinking",
    "gemini-max-tokens",
    "gemini-safety",
    "gemini-recitation",
    "gemini-blocked",
    "gemini-400",
    "gemini-badkey",
    "gemini-403",
    "gemini-404",
    "gemini-429",
    "gemini-500",
    "gemini-503",
    "gemini-midstream",
    "gemini-hang",
    "gemini-endless",
]


@contextmanager
def gemini_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The Gemini double and a Parley in front of it, as provider `google`."""
    rec = Recorder()
    provider = {"name": "google", "type": "gemini", "api_key": API_KEY}
    models = [{"name": "flash", "provider": "google", "upstream_model": "gemini-text"}]
    models += [{"name": m, "provider": "google"} for m in MODELS]
    models += [
        {"name": "gemini-embed", "provider": "google", "kind": "embedding"},
        {"name": "gemini-embed-fail", "provider": "google", "kind": "embedding"},
    ]
    with vendor_stack(tmp_path_factory.mktemp("gemini"), build(rec), rec, provider, models) as stack:
        yield stack

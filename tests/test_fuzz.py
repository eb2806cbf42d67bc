"""Property-based fuzzing of every route in /openapi.json, with valid credentials for each dialect,
on SQLite and PostgreSQL: whatever schemathesis generates (valid and invalid bodies, odd path
and query values), Parley answers without a 5xx, and its answers match what is documented.

Path ids are mostly those of real objects, so bodies reach past the 404s into the handlers.
A bounded number of examples per route keeps the whole run to a minute or two per database.
The examples are the same on every run (a failure here is a regression, never luck); set
PARLEY_FUZZ_RANDOM=1 to draw new ones, and PARLEY_FUZZ_EXAMPLES=N for more per route.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import sys
import traceback
import zlib
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import cli_json
from tests.v8_helpers import V8

SCALE = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "20"))
EXAMPLES = {GenerationMode.POSITIVE: SCALE, GenerationMode.NEGATIVE: max(1, SCALE // 2)}  # per route and database
RANDOM = bool(os.environ.get("PARLEY_FUZZ_RANDOM"))
# The one 500 that is the contract: extraction of an unsupported or unreadable file.
DOCUMENTED_500 = ("Unsupported file type:", "Failed to parse")


@dataclass
class World:
    """Credentials for each dialect and ids of real objects for the path parameters."""

    gateway_key: str
    project: dict[str, str]
    admin: V8
    ids: dict[str, str]

    def headers(self, path: str) -> dict[str, str]:
        if path.startswith("/v1"):
            return {"authorization": f"Bearer {self.gateway_key}"}
        if path.startswith("/api/project"):
            return {"authorization": f"Bearer {self.project['api_key']}"}
        if path.startswith("/v8"):
            return {"authorization": f"Bearer {self.admin.token}"}  # ak-: may call every v8 route
        return {}

    def aim(self, case: Any) -> None:
        """Three cases in four (chosen by the case's own content) use real ids in their path."""
        if case.method.upper() == "DELETE" or not case.path_parameters:
            return
        if zlib.crc32(repr((case.path_parameters, case.body, case.query)).encode()) % 4 == 0:
            return
        for name in case.path_parameters:
            if name in self.ids:
                case.path_parameters[name] = self.ids[name]


@pytest.fixture(scope="module")
def world(parley) -> World:
    app = cli_json(parley.database_url, "integrations", "create", "--name", "fuzz", "--json")
    admin = V8(parley.url, app, user_id="fuzzer", admin=True)
    conversation = admin.conversation(title="fuzz")
    message = admin.send(conversation["id"], content="hello", stream=False)
    assert message.status_code == 200, message.text
    memory = admin.http.post("/memories", json={"name": "fuzz"}).json()
    content = admin.http.post(f"/memories/{memory['id']}/contents", json={"content": "fuzz text", "key": "k"}).json()
    project = cli_json(parley.database_url, "projects", "create", "--name", "fuzz", "--json")
    with parley.client(key=project["api_key"]) as http:
        base = f"/api/project/{project['id']}/integration/api"
        assert http.post(base + "/sessions", json={"session_id": "fuzz-session"}).status_code == 200
    ids = {
        "conversation_id": conversation["id"],
        "message_id": admin.messages(conversation["id"])[0]["id"],
        "memory_id": memory["id"],
        "content_id": content["content_id"],
        "project_id": project["id"],
        "session_id": "fuzz-session",
        "model": "gpt-4o-mini",
    }
    return World(parley.key, project, admin, ids)


def _import_lazy_modules() -> None:
    """Import now, at a shallow stack and before any server thread runs, the modules schemathesis
    and Hypothesis would otherwise import halfway through generating a case. pytest rewrites
    plugins' modules as they are imported, with ast.parse, and CPython before 3.11.8 can fail
    ("AST constructor recursion depth mismatch") when ast.parse runs deep in a stack while
    another thread parses too."""
    for name in (
        "schemathesis.core",
        "schemathesis.generation",
        "schemathesis.openapi",
        "schemathesis.specs.openapi",
        "schemathesis.transport",
        "hypothesis.internal",
        "hypothesis.strategies",
    ):
        for info in pkgutil.walk_packages(importlib.import_module(name).__path__, name + ".", onerror=print):
            with contextlib.suppress(Exception):  # optional extras this test does not use
                importlib.import_module(info.name)


_import_lazy_modules()


def _token_ids(case: Any) -> bool:
    """/v1/embeddings with token-id input: decoding ids the tokenizer does not know is handled
    (and tested) with the embeddings route's own token-id support, not here."""
    if case.path != "/v1/embeddings" or not isinstance(case.body, dict):
        return False
    value = case.body.get("input")
    return isinstance(value, list) and any(isinstance(v, int | list) for v in value)


def _operations() -> list[tuple[str, str]]:
    """Every (method, path) the app documents, read from its own OpenAPI document."""
    from parley.app import create_app
    from parley.config import Settings

    paths = create_app(Settings()).openapi()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


@pytest.fixture(autouse=True)
def _describe_lambdas_safely(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython before 3.11.8 can raise "SystemError: AST constructor recursion depth mismatch"
    from ast.parse deep in a call stack; Hypothesis parses source files there only to describe a
    strategy's lambdas in reprs. A description it cannot make is "<unknown>", as when it has no
    source: generation and checks are unaffected."""
    if sys.version_info >= (3, 11, 8):
        return
    from hypothesis.internal import lambda_sources

    describe = lambda_sources._lambda_description

    def safely(f: Any, *args: Any, **kwargs: Any) -> str:
        try:
            return describe(f, *args, **kwargs)
        except SystemError:
            return "lambda: <unknown>"

    monkeypatch.setattr(lambda_sources, "_lambda_description", safely)


@pytest.fixture(scope="module")
def live_schema(parley) -> Any:
    """The schema as the live server serves it at /openapi.json."""
    return schemathesis.openapi.from_url(f"{parley.url}/openapi.json")


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda v: str(v))
def test_no_request_gets_a_server_error(live_schema, world, method, path):
    operation = live_schema[path][method]
    failures: list[str] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            derandomize=not RANDOM,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            assume(not _token_ids(case))
            world.aim(case)
            headers = world.headers(case.path)
            response = case.call(headers=headers, timeout=60)
            if response.status_code == 500 and case.path == "/v8/files/extract":
                assert response.json()["error"].startswith(DOCUMENTED_500), response.text
                return
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance], headers=headers)

        try:
            run()
        except Unsatisfiable:
            continue  # nothing in this route can be made invalid (no parameters, no body)
        except Exception as exc:  # noqa: BLE001 - gathered: both modes run, then all failures show
            failures.append(f"{mode.value}: " + "".join(traceback.format_exception(exc))[-4000:])
    assert not failures, "\n\n".join(failures)

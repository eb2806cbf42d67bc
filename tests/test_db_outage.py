"""PostgreSQL stops for a few seconds under load and comes back: requests meanwhile fail fast
with a 503 and Retry-After in their dialect's shape, none hangs, Parley recovers without a
restart, and every turn that answered 200 is stored exactly once (none twice, none lost)."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from tests.conftest import cli_json, fresh_database
from tests.conftest import test_settings as settings_for
from tests.polling import wait_for
from tests.servers import ThreadedServer
from tests.v8_helpers import V8

CLIENT_TIMEOUT = 30  # seconds: a request still unanswered by then hung, and fails the test
OUTAGE = 4  # seconds PostgreSQL stays down


@pytest.fixture
def own_postgres() -> Iterator[Any]:
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    import pgserver

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="parley-outage-")), cleanup_mode="delete")
    yield server
    server.cleanup()


def stop(server: Any) -> None:
    import pgserver

    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)


def start(server: Any) -> None:
    server.ensure_postgres_running()


@dataclass
class Client:
    """Sends turns in a loop and keeps what each request got."""

    name: str
    send: Any  # (content) -> httpx.Response
    results: list[tuple[str, int, Any, dict[str, str]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def ok_count(self) -> int:
        return sum(1 for r in self.results if r[1] == 200)

    def run(self, halt: threading.Event) -> None:
        i = 0
        while not halt.is_set():
            content = f"{self.name}-{i}"
            i += 1
            try:
                r = self.send(content)
            except httpx.HTTPError as exc:  # a timeout here is a request that hung
                self.errors.append(f"{content}: {exc!r}")
                continue
            self.results.append((content, r.status_code, r.json(), dict(r.headers)))
            if r.status_code != 200:
                time.sleep(0.05)  # as a client honouring Retry-After would, only sooner


def test_postgres_outage_under_load(own_postgres, upstream, caplog):
    database_url = fresh_database(own_postgres.get_uri())
    settings = settings_for(
        database_url,
        upstream.url,
        database_connect_timeout=2,
        database_pool_timeout=5,
        # Seven clients and a restarting database share the machine: the upstream double may be
        # slow to answer, and that is not what this test is about.
        upstream_timeouts={"first_byte": 20, "idle": 20, "total": 60},
    )
    with ThreadedServer(create_app(settings)) as server:
        app = cli_json(database_url, "integrations", "create", "--name", "outage", "--json")
        gateway_key = cli_json(database_url, "keys", "create", "--name", "outage", "--json")["key"]
        v8_clients: list[tuple[Client, V8, str]] = []
        for n in range(6):
            user = V8(server.url, app, user_id=f"user-{n}")
            cid = user.conversation()["id"]

            def send(content: str, user: V8 = user, cid: str = cid) -> httpx.Response:
                return user.send(cid, content=content, stream=False)

            v8_clients.append((Client(f"v8-{n}", send), user, cid))
        gateway = httpx.Client(
            base_url=server.url, headers={"authorization": f"Bearer {gateway_key}"}, timeout=CLIENT_TIMEOUT
        )

        def send_v1(content: str) -> httpx.Response:
            return gateway.post(
                "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": content}]}
            )

        clients = [c for c, _, _ in v8_clients] + [Client("v1", send_v1)]
        halt = threading.Event()
        threads = [threading.Thread(target=c.run, args=(halt,), daemon=True) for c in clients]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: all(c.ok_count() >= 2 for c in clients), "turns before the outage", 90)
            stop(own_postgres)
            before = {c.name: len(c.results) for c in clients}
            time.sleep(OUTAGE)  # the outage itself: clients keep sending all along
            during = {c.name: len(c.results) - before[c.name] for c in clients}
            start(own_postgres)
            recovered = {c.name: c.ok_count() for c in clients}
            wait_for(lambda: all(c.ok_count() >= recovered[c.name] + 3 for c in clients), "turns after the restart", 90)
        finally:
            halt.set()
            for t in threads:
                t.join(timeout=CLIENT_TIMEOUT + 5)
        gateway.close()

        assert not [e for c in clients for e in c.errors], [e for c in clients for e in c.errors][:5]
        # The embedding worker polls all along: it says the database is unreachable once per
        # outage (a stale pooled connection after the restart may say it once more), never a
        # traceback per poll.
        worker = [r for r in caplog.records if r.getMessage().startswith(("embedding worker", "embedding batch"))]
        assert not [r for r in worker if r.getMessage() == "embedding batch failed"]
        assert sum("unreachable" in r.getMessage() for r in worker) <= 3, [r.getMessage() for r in worker]
        assert all(n > 0 for n in during.values()), f"requests during the outage did not fail fast: {during}"
        for client in clients:
            for content, status, body, headers in client.results:
                assert status in (200, 503), (content, status, body)
                if status == 503:
                    assert int(headers["retry-after"]) >= 1
                    if client.name == "v1":
                        assert (
                            body["error"]["type"] == "server_error" and body["error"]["code"] == "database_unavailable"
                        )
                    else:
                        assert body == {"error": "The database is unavailable at the moment; retry shortly."}
        assert any(r[1] == 503 for c in clients for r in c.results), "no request saw the outage"

        # Reconcile what is stored with what was answered.
        for client, user, cid in v8_clients:
            stored = [(m["role"], m["content"]) for m in user.messages(cid)]
            sent = {content: status for content, status, _, _ in client.results}
            users = [content for role, content in stored if role == "user"]
            assert len(users) == len(set(users)), f"a user message was stored twice: {users}"
            assert set(users) <= set(sent), "a stored message no request sent"
            for content, status in sent.items():
                if status != 200:
                    continue
                at = stored.index(("user", content))
                assert stored[at + 1] == ("assistant", f"echo: {content}"), stored[at : at + 2]
                assert stored.count(("assistant", f"echo: {content}")) == 1
            replies = [content for role, content in stored if role == "assistant"]
            assert len(replies) == len(set(replies)), f"a reply was stored twice: {replies}"

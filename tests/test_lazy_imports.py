"""What a worker does not load until a request needs it, and the server key that is read at
start but unsealed with only once a v8 token comes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from parley.auth.sealed import seal, server_key, unseal
from parley.config import Settings

# Each held several MB, loaded by every worker at start before it was deferred.
HEAVY = ("cryptography", "snowballstemmer", "numpy", "tiktoken", "jieba")

SCRIPT = """
import json, sys
from fastapi.testclient import TestClient
from parley.app import create_app
from parley.config import Settings

settings = Settings(database_url="sqlite+aiosqlite:///{db}", secret_key_file="{key}")
with TestClient(create_app(settings)) as client:
    statuses = [client.get("/healthz").status_code, client.get("/v1/models").status_code]
    statuses.append(client.get("/v8/chat/conversations", headers={{"authorization": "ek-nonsense"}}).status_code)
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
print(json.dumps({{"statuses": statuses, "loaded": loaded}}))
"""


def test_a_started_worker_answering_requests_has_not_loaded_what_only_some_requests_need(tmp_path: Path) -> None:
    script = SCRIPT.format(db=tmp_path / "parley.db", key=tmp_path / "secret.key", heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"statuses": [200, 401, 401], "loaded": []}
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600  # made at start all the same


def test_the_generated_key_seals_and_a_malformed_one_is_refused_at_start(tmp_path: Path) -> None:
    key = server_key(Settings(secret_key_file=str(tmp_path / "secret.key")))
    sealed = seal(key, "the secret")
    assert sealed != "the secret" and unseal(key, sealed) == "the secret"
    again = server_key(Settings(secret_key_file=str(tmp_path / "secret.key")))  # read back, not remade
    assert unseal(again, sealed) == "the secret"
    other = server_key(Settings(secret_key_file=str(tmp_path / "other.key")))
    assert unseal(other, sealed) is None
    for bad in ("short", "not base64 at all!!", "QUJD" * 8):
        with pytest.raises(ValueError, match="32 url-safe base64-encoded bytes"):
            server_key(Settings(secret_key=SecretStr(bad)))


def test_workers_starting_together_all_read_one_whole_key(tmp_path: Path) -> None:
    # The workers of a first `parley serve --workers N` all find no key file and make one.
    path = tmp_path / "data" / "secret.key"
    settings = Settings(secret_key_file=str(path))
    start = threading.Barrier(8)
    keys: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            key = server_key(settings)
            keys.append(seal(key, "x"))
            assert unseal(server_key(settings), keys[-1]) == "x"
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Every worker's key unseals what every other sealed: one key.
    final = server_key(settings)
    assert all(unseal(final, sealed) == "x" for sealed in keys) and len(keys) == 8
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary file left

"""`parley memories ingest` reports embedding until the content is embedded, whoever embeds it."""

from __future__ import annotations

import yaml

from tests.conftest import cli, cli_json
from tests.polling import wait_for
from tests.v8_helpers import V8


def chunks_of(admin: V8, memory_id: str) -> list[dict]:
    out = []
    for content in admin.http.get(f"/memories/{memory_id}/contents").json():
        out += admin.http.get(f"/memories/{memory_id}/contents/{content['id']}/chunks").json()
    return out


def test_ingest_reports_the_servers_embedding_when_the_server_claimed_the_chunks(parley, tmp_path):
    app = cli_json(parley.database_url, "integrations", "create", "--name", "ingest", "--json")
    admin = V8(parley.url, app, user_id="boss", admin=True)
    r = admin.http.post("/memories", json={"name": "slow", "embedding_model": "slow-embed"})
    assert r.status_code == 200, r.text
    memory_id = r.json()["id"]
    # The CLI knows the same models as the server, so it could embed these chunks too.
    config = tmp_path / "parley.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": parley.database_url,
                "providers": [{"name": "up", "type": "openai", "base_url": parley.upstream.url + "/v1"}],
                "models": [{"name": "slow-embed", "provider": "up", "kind": "embedding"}],
            }
        )
    )
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("[slow] Parley embeds this one slowly.", encoding="utf-8")
    done = cli(parley.database_url, "memories", "ingest", memory_id, str(folder), "--no-embed", "--config", str(config))
    assert done.returncode == 0 and "1 created" in done.stdout, done.stderr
    # The server's worker claims the chunk (and the slow model keeps it busy): nothing is left
    # for the CLI's own worker to take.
    wait_for(
        lambda: (chunks := chunks_of(admin, memory_id)) and chunks[0]["embedding_status"] != "pending",
        "the server's worker to claim the chunk",
        60,
        seen=lambda: chunks_of(admin, memory_id),
    )
    done = cli(parley.database_url, "memories", "ingest", memory_id, str(folder), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "1 unchanged" in done.stdout
    assert "Embedded 1/1 chunks" in done.stdout
    assert [c["embedding_status"] for c in chunks_of(admin, memory_id)] == ["completed"]

"""Creation goes through the store modules, so the CLI checks what the API checks."""

from __future__ import annotations

from tests.conftest import cli, cli_json


def test_cli_memory_creation_is_checked_like_the_api(parley):
    app = cli_json(parley.database_url, "integrations", "create", "--name", "checked", "--json")
    bad_model = cli(
        parley.database_url,
        "memories",
        "create",
        "--app-id",
        app["app_id"],
        "--name",
        "m",
        "--embedding-model",
        "no-such-model",
        "--json",
    )
    assert bad_model.returncode == 1 and "Unknown embedding_model 'no-such-model'" in bad_model.stderr
    bad_overlap = cli(
        parley.database_url,
        "memories",
        "create",
        "--app-id",
        app["app_id"],
        "--name",
        "m",
        "--max-tokens-per-chunk",
        "64",
        "--overlap-tokens",
        "64",
        "--json",
    )
    assert bad_overlap.returncode == 1 and "overlap_tokens must be smaller" in bad_overlap.stderr
    made = cli_json(parley.database_url, "memories", "create", "--app-id", app["app_id"], "--name", "m", "--json")
    assert made["embedding_model"] == "use-multilingual-v3"
    listed = cli_json(parley.database_url, "memories", "list", "--app-id", app["app_id"], "--json")
    assert [m["id"] for m in listed] == [made["id"]]  # the refused ones left nothing behind

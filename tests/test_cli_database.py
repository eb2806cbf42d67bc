"""The CLI says which database it uses (password masked), so a key never lands in the wrong one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from sqlalchemy.engine import make_url

from parley.app import create_app
from parley.config import load_settings
from tests.conftest import SECRET_KEY, fresh_database
from tests.servers import ThreadedServer

ROOT = Path(__file__).resolve().parents[1]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, run from ``cwd`` with no Parley configuration in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's parley, whatever the working directory
    return subprocess.run(
        [sys.executable, "-m", "parley", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_without_a_config_the_cli_says_it_uses_the_default_database(tmp_path):
    done = run(tmp_path, "keys", "create", "--name", "lost", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["key"].startswith("sk-")  # stdout stays clean for scripts
    lines = done.stderr.splitlines()
    assert lines[0] == f"using database sqlite+aiosqlite:///data/parley.db (file {tmp_path / 'data' / 'parley.db'})"
    assert "no --config" in done.stderr
    for command in (["keys", "list"], ["projects", "list"], ["integrations", "list"]):
        assert run(tmp_path, *command).stderr.startswith("using database sqlite+aiosqlite:///data/parley.db")


def test_with_a_config_the_cli_names_the_servers_database_password_masked(tmp_path, pg_server):
    url = make_url(fresh_database(pg_server)).set(password="pw-not-for-logs")  # the test server ignores it
    database_url = url.render_as_string(hide_password=False)
    config = tmp_path / "parley.yaml"
    config.write_text(yaml.safe_dump({"database_url": database_url, "secret_key": SECRET_KEY}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run(elsewhere, "keys", "create", "--name", "ops", "--json", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"using database {url.render_as_string(hide_password=True)}"]
    assert ":***@" in done.stderr and "pw-not-for-logs" not in done.stderr + done.stdout
    assert not (elsewhere / "data").exists()
    key = json.loads(done.stdout)["key"]
    with ThreadedServer(create_app(load_settings(config))) as server:  # the server on the same config
        r = httpx.get(server.url + "/v1/models", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200

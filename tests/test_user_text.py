"""What a user reads (CLI help, README, docs/) speaks of Parley and its own documents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from parley.auth import v8_tokens
from parley.cli import app

ROOT = Path(__file__).resolve().parents[1]
# Documents users of Parley do not have (the API parameter `seed`, in backticks, is not one).
FOREIGN = re.compile(r"(?<!`)\bseeds?\b(?!`)", re.IGNORECASE)


def all_commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer's own or click's)
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_no_help_text_cites_documents_users_do_not_have():
    commands = all_commands(typer.main.get_command(app))
    assert ("token",) in commands and ("memories", "ingest") in commands
    runner = CliRunner()
    for command in commands:
        out = runner.invoke(app, [*command, "--help"], terminal_width=200)
        assert out.exit_code == 0, (command, out.output)
        assert not FOREIGN.search(out.output), (command, out.output)


def test_token_help_through_the_real_cli_points_at_the_protocol_doc():
    done = subprocess.run(
        [sys.executable, "-m", "parley", "token", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert not FOREIGN.search(done.stdout)
    assert "docs/protocol.md" in " ".join(done.stdout.split())


def test_readme_and_docs_cite_only_parleys_own_documents():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        assert not FOREIGN.search(text), (path, FOREIGN.search(text))
    for link in re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text(encoding="utf-8")):
        assert (ROOT / link).is_file(), link


def test_protocol_doc_states_the_token_scheme_and_the_exact_auth_bodies():
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert "md5(secret + app_id + user_id + expired_time)" in doc
    for field in ("hash", "app_id", "user_id", "user_name", "expired_time"):
        assert f"`{field}`" in doc
    assert f'"message": "{v8_tokens.MISSING}"' in doc
    assert f'"message": "{v8_tokens.INVALID}"' in doc and '"code": "invalid_api_key"' in doc
    assert '{"error": "unauthorized"}' in doc
    for dialect in ("/v1", "/api/project/{projectId}/integration/api", "/v8"):
        assert f"`{dialect}`" in doc

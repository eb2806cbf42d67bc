"""Logging never prints secrets; configuration comes from YAML and PARLEY_* variables."""

from __future__ import annotations

import json
import logging

import pytest

from parley.config import load_settings
from parley.logs import JsonFormatter, redact


def test_redact_masks_every_kind_of_secret():
    line = (
        "auth Bearer sk-abcdef123456 x-api-key sk-K6GFRMfnwQcx5p0MEZSov token ek-eyJoYXNoIjoiZDdj "
        "admin ak-eyJoYXNoIjoiMWQ0 project pk-a3_hompTJhrKsIlZARWd"
    )
    out = redact(line)
    for secret in ("abcdef123456", "K6GFRMfnwQcx5p0MEZSov", "eyJoYXNoIjoiZDdj", "eyJoYXNoIjoiMWQ0", "a3_hompTJhrKs"):
        assert secret not in out
    assert "sk-***" in out and "ek-***" in out


def test_json_formatter_redacts_message_fields_and_tracebacks():
    record = logging.LogRecord("parley", logging.WARNING, __file__, 1, "key %s failed", ("sk-secretsecret",), None)
    record.fields = {"header": "Bearer pk-topsecretvalue"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "key sk-*** failed" and entry["header"] == "Bearer ***"
    assert entry["level"] == "warning"


def test_yaml_then_environment(tmp_path, monkeypatch):
    path = tmp_path / "parley.yaml"
    path.write_text("""
database_url: sqlite+aiosqlite:///data/parley.db
providers:
  - {name: up, type: openai, base_url: "http://127.0.0.1:9000/v1", api_key: "sk-up"}
models:
  - {name: gpt-4o-mini, provider: up, upstream_model: gpt-4o-mini}
default_model: gpt-4o-mini
""")
    monkeypatch.setenv("PARLEY_PORT", "9123")
    monkeypatch.setenv("PARLEY_TIMEOUTS__IDLE", "7.5")
    settings = load_settings(str(path))
    assert settings.port == 9123 and settings.timeouts.idle == 7.5 and settings.timeouts.connect == 10
    assert settings.providers[0].api_key.get_secret_value() == "sk-up"
    assert "sk-up" not in repr(settings)  # a printed config does not show the key
    assert settings.default_model == "gpt-4o-mini"


def test_bad_config_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models: [{name: m, provider: nowhere}]\n")
    with pytest.raises(ValueError, match="unknown provider"):
        load_settings(str(path))
    path.write_text("providers: [{name: x, type: openai}]\nmodels: []\n")
    with pytest.raises(ValueError, match="base_url"):
        load_settings(str(path))


def test_no_configuration_serves_the_builtin_model(monkeypatch):
    monkeypatch.delenv("PARLEY_CONFIG", raising=False)
    settings = load_settings()
    assert [m.name for m in settings.models] == ["parley-offline"] and settings.default_model == "parley-offline"
    assert settings.database_url == "sqlite+aiosqlite:///data/parley.db"

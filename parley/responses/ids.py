"""Ids as OpenAI spells them: ``resp_…``, ``msg_…``, ``fc_…``, ``fco_…``, ``rs_…``."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"

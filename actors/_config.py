"""The settings as the actors take them: `config.load_settings`, with the agents file's task
types checked against the task kinds this registry holds (what the validator will check a
workflow's agents against), so a bad agents file stops every command before anything starts; and the model catalogue
read, so a bad models file does too."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import config
import llm
from config import Settings
from guard._vault import decrypt_provider_keys

from . import registry

__all__ = ["load_settings"]


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
    """Settings from `.env` (if present) overlaid by the environment (`config.load_settings`)."""
    settings = config.load_settings(environ, dotenv, agent_task_types=registry.agent_task_types())
    registry.register_mcp_servers(settings.tools.mcp_servers)  # each a tool a task may be granted: mcp:<name>
    llm.Catalogue.load(settings.models_file)  # a bad YMERA_MODELS_FILE stops every command here too
    return decrypt_provider_keys(settings, environ)  # `ymera-enc:` keys decrypted (guard/_vault.py), or stop here

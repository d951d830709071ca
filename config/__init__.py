"""Ymera's configuration: the settings object read once at start, and the agent catalogue it carries.

Below `bus/` and `store/`: every layer may take the settings; nothing else reads the environment.
"""

from ._agents import BUILTIN_AGENTS, Agent, AgentCatalogue, AgentsFileError, load_agents
from ._alerts import MINUTES_KEPT, AlertRules, AlertsFileError, load_alert_rules
from ._hosts import is_loopback
from ._settings import (
    ENVS,
    MAX_TIMEOUT_SECONDS,
    JudgeSettings,
    LLMSettings,
    ProviderEnv,
    Settings,
    SettingsError,
    load_settings,
)
from ._tools import McpServerEntry, ToolSettings, ToolSettingsError

__all__ = [
    "BUILTIN_AGENTS",
    "ENVS",
    "MAX_TIMEOUT_SECONDS",
    "MINUTES_KEPT",
    "Agent",
    "AgentCatalogue",
    "AgentsFileError",
    "AlertRules",
    "AlertsFileError",
    "JudgeSettings",
    "LLMSettings",
    "McpServerEntry",
    "ProviderEnv",
    "Settings",
    "SettingsError",
    "ToolSettings",
    "ToolSettingsError",
    "is_loopback",
    "load_agents",
    "load_alert_rules",
    "load_settings",
]

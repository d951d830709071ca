"""Ymera's configuration: the settings object read once at start, and the agent catalogue it carries.

Below `bus/` and `store/`: every layer may take the settings; nothing else reads the environment.
"""

from ._agents import BUILTIN_AGENTS, Agent, AgentCatalogue, AgentsFileError, load_agents
from ._settings import ENVS, MAX_TIMEOUT_SECONDS, LLMSettings, ProviderEnv, Settings, SettingsError, load_settings
from ._tools import McpServerEntry, ToolSettings, ToolSettingsError

__all__ = [
    "BUILTIN_AGENTS",
    "ENVS",
    "MAX_TIMEOUT_SECONDS",
    "Agent",
    "AgentCatalogue",
    "AgentsFileError",
    "LLMSettings",
    "McpServerEntry",
    "ProviderEnv",
    "Settings",
    "SettingsError",
    "ToolSettings",
    "ToolSettingsError",
    "load_agents",
    "load_settings",
]

"""Ymera's actors. Each reads events from the bus and publishes events; none calls another.

security, validator, distributor, executor, assessor, monitor; the store writer lives in
`store/`. `run_named` and `run_all` run them, restarted after a crash.
"""

from config import LLMSettings, Settings, SettingsError

from ._config import load_settings
from ._runtime import Actor, rebuild, run_actor
from ._supervisor import (
    ACTOR_NAMES,
    BACKGROUND,
    actor_access,
    client_access,
    keyring_of,
    lower_priority,
    run_all,
    run_named,
)

__all__ = [
    "ACTOR_NAMES",
    "BACKGROUND",
    "Actor",
    "LLMSettings",
    "Settings",
    "SettingsError",
    "actor_access",
    "client_access",
    "keyring_of",
    "load_settings",
    "lower_priority",
    "rebuild",
    "run_actor",
    "run_all",
    "run_named",
]

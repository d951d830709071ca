"""Ymera's settings: read once at start, from the environment over a `.env` file, and handed down.

Below `bus/` and `store/` (DESIGN.md, "Config"), so each layer takes the settings object;
it imports nothing of Ymera but `events` (for `YmeraError`).

Nothing else in Ymera reads the environment. Names follow the original guide
(`RATE_LIMIT_PER_HOUR`, `QUALITY_THRESHOLD`, ...) plus `NATS_URL` and `YMERA_*`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TypeVar

import msgspec
from dotenv import dotenv_values

from events import YmeraError

from ._agents import AgentCatalogue, load_agents
from ._alerts import AlertRules, load_alert_rules
from ._tools import ToolSettings, load_tool_settings

__all__ = ["MAX_TIMEOUT_SECONDS", "LLMSettings", "ProviderEnv", "Settings", "SettingsError", "load_settings"]

W = TypeVar("W", int, None)  # a setting's default: a number, or None when unset is allowed
B = TypeVar("B", bool, None)  # a flag's default: true or false, or None when unset is allowed
MAX_TIMEOUT_SECONDS = 86_400.0  # TASK_TIMEOUT_SECONDS, and a task's own `timeout_seconds` (actors/registry.py)


class SettingsError(YmeraError):
    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"setting {name}={value!r} is not {expected}")
        self.name = name
        self.value = value


class ProviderEnv(msgspec.Struct, frozen=True):
    """What the environment says of one provider prefix: `<PREFIX>_API_KEY[_<n>]` as (n, key),
    n = 0 for the unnumbered one, in order of n; `<PREFIX>_BASE_URL`. Which prefixes name a
    provider is the AI layer's table (`llm/_providers.py`); the rest are ignored there."""

    keys: tuple[tuple[int, str], ...] = ()
    base_url: str | None = None

    def __repr__(self) -> str:  # settings get logged and printed: never the keys
        return f"ProviderEnv(keys={len(self.keys)}, base_url={self.base_url!r})"


class LLMSettings(msgspec.Struct, frozen=True):
    """The local OpenAI-compatible endpoint (`YMERA_LLM_*`: Ollama, llama.cpp, vLLM, ...) and the
    default model of an LLM task that names none (`provider/model`, or a model the catalogue knows)."""

    base_url: str | None = None
    model: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)


class JudgeSettings(msgspec.Struct, frozen=True):
    """The model that grades each model task's answer (`YMERA_JUDGE_*`; docs/quality.md, "LLM
    judge"). No model: no judge, and relevance is scored lexically."""

    model: str | None = None  # provider/model, or a model the catalogue knows
    timeout_seconds: float = 30.0  # the most one grading may take
    max_tokens: int = 400  # the judge's answer budget


ENVS = ("development", "production")


class Settings(msgspec.Struct, frozen=True):
    # "production": logs are JSON lines (one object per event, for a collector); "development":
    # logs are for a person at a terminal.
    env: str = "development"
    nats_url: str | None = None
    data_dir: Path = Path(".ymera")
    # None: "info" for long-running commands (up, actor), "warning" for the others.
    log_level: str | None = None
    enable_security_validation: bool = True
    enable_continuous_monitoring: bool = True
    rate_limit_per_hour: int = 1000
    quality_threshold: float = 0.7
    alert_on_quality_degradation: bool = True
    max_concurrent_workflows: int = 100
    max_tasks_per_workflow: int = 100_000
    task_timeout_seconds: float = 300.0
    heartbeat_seconds: float = 5.0
    executor_concurrency: int = 128
    # CPU niceness of the actors off a step's critical path (monitor, assessor, security,
    # validator) when each runs in a process of its own; 0 leaves them at the default priority.
    background_nice: int = 10
    # How long the stream remembers a message id to drop a second copy (JetStream's duplicate window).
    duplicate_window_seconds: float = 120.0
    python_modules: tuple[str, ...] = ()
    llm: LLMSettings = LLMSettings()
    judge: JudgeSettings = JudgeSettings()
    # Every `<PREFIX>_API_KEY[_<n>]` / `<PREFIX>_BASE_URL` in the environment, by prefix (the
    # local endpoint's is YMERA_LLM); the AI layer picks the providers it knows.
    providers: dict[str, ProviderEnv] = {}
    # A file of models adding to or replacing the shipped catalogue (llm/_catalogue.py).
    models_file: Path | None = None
    # The agents a task may name: the built-in ones and those of YMERA_AGENTS_FILE (config/_agents.py).
    agents: AgentCatalogue = AgentCatalogue()
    # What the built-in tools may reach: workspace, hosts, programs, databases, repositories (config/_tools.py).
    tools: ToolSettings = ToolSettings()
    # The monitor's alert rules: the shipped alerts.yaml, or YMERA_ALERTS_FILE's (config/_alerts.py).
    alerts: AlertRules = AlertRules()
    # Snapshots of each actor's folded state (docs/operations.md, "Snapshots").
    snapshots: bool = True
    snapshot_every_events: int = 5_000  # stream seqs folded since the last snapshot
    snapshot_every_seconds: float = 30.0  # or this long, if anything was folded since
    # Stream retention (docs/operations.md, "Stream retention"): None leaves the stream as it
    # is (keep everything when it is created); 0 removes the limit.
    stream_max_age_seconds: float | None = None
    stream_max_bytes: int | None = None
    # USD every run's model calls together may spend in a UTC day, each call held against it
    # before it is made (docs/llm.md, "Budgets"); None: no limit.
    daily_budget_usd: float | None = None
    # Where the signers' Ed25519 keys live (guard/): YMERA_KEYS_DIR, else <data dir>/keys.
    keys_dir_setting: Path | None = None
    # The store writer publishes a signed checkpoint of the chain's head after this many rows
    # (or YMERA_CHECKPOINT_EVERY_SECONDS, if any were stored since): docs/store.md, "Checkpoints".
    checkpoint_every_rows: int = 1000
    checkpoint_every_seconds: float = 10.0
    # Each actor signs what it emits and checks the signature of what it reads (bus/_seal.py,
    # docs/security.md); YMERA_SIGN_EVENTS=false turns both off, to measure what they cost.
    sign_events: bool = True
    # NATS authenticates every connection and lets each publish only what it may (docs/security.md,
    # "Who may connect and publish"): each actor its own events, a client submissions, cancels and
    # ratings, signed by its client key, which is its principal. YMERA_NATS_AUTH; None (unset): on
    # for the embedded server and with YMERA_ENV=production, off for a NATS_URL in development.
    nats_auth_setting: bool | None = None
    # The client key this process submits, cancels and rates as (YMERA_CLIENT_KEY, a
    # `client.<principal>.key` file); None: `<keys dir>/client.local.key`, made on first use.
    client_key: Path | None = None
    # Principals that may cancel any run (YMERA_ADMINS, comma-separated); any other principal only
    # the runs it submitted, where principals are read off client keys (docs/security.md, "Who may cancel a run").
    admins: tuple[str, ...] = ()
    # The deployment's key for derived event ids (events.derive_id): `<keys dir>/ids.key`, made
    # by the first actor process to start (guard.id_key). None: ids derived without a key.
    id_key: bytes | None = None

    def __repr__(self) -> str:  # settings get logged and printed: never the deployment's secret
        fields = {f: getattr(self, f) for f in self.__struct_fields__}
        if self.id_key is not None:
            fields["id_key"] = f"<{len(self.id_key)} secret bytes>"
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in fields.items())})"

    @property
    def keys_dir(self) -> Path:
        return self.keys_dir_setting or self.data_dir / "keys"

    @property
    def nats_auth(self) -> bool:
        """Whether NATS authenticates every connection and enforces what each may publish."""
        if self.nats_auth_setting is not None:
            return self.nats_auth_setting
        return self.nats_url is None or self.env == "production"

    @property
    def lost_after_seconds(self) -> float:
        """Silence after which a started attempt counts as lost: three missed heartbeats. The
        distributor times such an attempt out; its executor abandons it (actors/executor/_fence.py)."""
        return self.heartbeat_seconds * 3

    @property
    def log_path(self) -> Path:
        return self.data_dir / "events.db"


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env"), *,
                  agent_task_types: Collection[str] | None = None) -> Settings:
    """Settings from `.env` (if present, read with python-dotenv) overlaid by the real environment;
    the agents file's task types checked against `agent_task_types` when given (the registry's:
    `actors.load_settings` passes them)."""
    values: dict[str, str] = {}
    if dotenv is not None and dotenv.is_file():
        values.update((k, v) for k, v in dotenv_values(dotenv).items() if v is not None)
    values.update(os.environ if environ is None else environ)
    env = _Reader(values)
    if not env.flag("ENABLE_AUDIT_LOGGING", True):
        # The guide's switch: Ymera's log is the system of record (status, replay, the audit
        # read it), so it cannot be turned off; say so rather than ignore it.
        raise SettingsError("ENABLE_AUDIT_LOGGING", values["ENABLE_AUDIT_LOGGING"],
                            "supported: every event is stored in the hash-chained log, which status, replay and "
                            "the audit read; unset it")
    return Settings(
        env=env.choice("YMERA_ENV", ENVS) or "development",
        nats_url=env.text("NATS_URL", "") or None,
        data_dir=Path(env.text("YMERA_DATA_DIR", "") or ".ymera"),
        log_level=env.choice("YMERA_LOG_LEVEL", ("debug", "info", "warning", "error", "critical")),
        enable_security_validation=env.flag("ENABLE_SECURITY_VALIDATION", True),
        enable_continuous_monitoring=env.flag("ENABLE_CONTINUOUS_MONITORING", True),
        rate_limit_per_hour=env.integer("RATE_LIMIT_PER_HOUR", 1000),
        quality_threshold=env.number("QUALITY_THRESHOLD", 0.7),
        alert_on_quality_degradation=env.flag("ALERT_ON_QUALITY_DEGRADATION", True),
        max_concurrent_workflows=env.integer("MAX_CONCURRENT_WORKFLOWS", 100),
        max_tasks_per_workflow=env.integer("YMERA_MAX_TASKS_PER_WORKFLOW", 100_000),
        task_timeout_seconds=env.limit("TASK_TIMEOUT_SECONDS", 300.0, MAX_TIMEOUT_SECONDS),
        heartbeat_seconds=env.number("YMERA_HEARTBEAT_SECONDS", 5.0),
        executor_concurrency=env.integer("YMERA_EXECUTOR_CONCURRENCY", 128),
        background_nice=env.niceness("YMERA_BACKGROUND_NICE", 10),
        duplicate_window_seconds=env.positive("YMERA_DUPLICATE_WINDOW_SECONDS", 120.0),
        python_modules=tuple(m.strip() for m in env.text("YMERA_PYTHON_MODULES", "").split(",") if m.strip()),
        llm=LLMSettings(
            base_url=env.text("YMERA_LLM_BASE_URL", "") or None,
            model=env.text("YMERA_LLM_MODEL", "") or None,
        ),
        judge=JudgeSettings(
            model=env.text("YMERA_JUDGE_MODEL", "") or None,
            timeout_seconds=env.limit("YMERA_JUDGE_TIMEOUT_SECONDS", 30.0, MAX_TIMEOUT_SECONDS),
            max_tokens=env.integer("YMERA_JUDGE_MAX_TOKENS", 400),
        ),
        providers=_providers(values),
        models_file=Path(models_file) if (models_file := env.text("YMERA_MODELS_FILE", "")) else None,
        agents=load_agents(Path(agents_file) if (agents_file := env.text("YMERA_AGENTS_FILE", "")) else None,
                           agent_task_types),
        snapshots=env.flag("YMERA_SNAPSHOTS", True),
        snapshot_every_events=env.integer("YMERA_SNAPSHOT_EVERY_EVENTS", 5_000),
        snapshot_every_seconds=env.number("YMERA_SNAPSHOT_EVERY_SECONDS", 30.0),
        stream_max_age_seconds=env.optional_number("YMERA_STREAM_MAX_AGE_SECONDS"),
        stream_max_bytes=env.optional_count("YMERA_STREAM_MAX_BYTES"),
        daily_budget_usd=env.optional_number("YMERA_DAILY_BUDGET_USD"),
        keys_dir_setting=Path(keys) if (keys := env.text("YMERA_KEYS_DIR", "")) else None,
        checkpoint_every_rows=env.integer("YMERA_CHECKPOINT_EVERY_ROWS", 1000),
        checkpoint_every_seconds=env.positive("YMERA_CHECKPOINT_EVERY_SECONDS", 10.0),
        sign_events=env.flag("YMERA_SIGN_EVENTS", True),
        nats_auth_setting=env.optional_flag("YMERA_NATS_AUTH"),
        client_key=Path(key) if (key := env.text("YMERA_CLIENT_KEY", "")) else None,
        admins=tuple(a.strip() for a in env.text("YMERA_ADMINS", "").split(",") if a.strip()),
        tools=load_tool_settings(values),
        alerts=load_alert_rules(Path(alerts_file) if (alerts_file := env.text("YMERA_ALERTS_FILE", "")) else None),
    )


_KEY = re.compile(r"([A-Z][A-Z0-9_]*?)_API_KEY(?:_([0-9]+))?")
_BASE_URL = re.compile(r"([A-Z][A-Z0-9_]*?)_BASE_URL")


def _providers(values: Mapping[str, str]) -> dict[str, ProviderEnv]:
    """`<PREFIX>_API_KEY`, `<PREFIX>_API_KEY_<n>` and `<PREFIX>_BASE_URL`, grouped by prefix; empty values skipped."""
    keys: dict[str, list[tuple[int, str]]] = {}
    urls: dict[str, str] = {}
    for name, value in values.items():
        if not value:
            continue
        if match := _KEY.fullmatch(name):
            keys.setdefault(match[1], []).append((int(match[2] or 0), value))
        elif match := _BASE_URL.fullmatch(name):
            urls[match[1]] = value
    return {prefix: ProviderEnv(keys=tuple(sorted(keys.get(prefix, ()))), base_url=urls.get(prefix))
            for prefix in sorted(keys.keys() | urls.keys())}


class _Reader:
    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values

    def text(self, name: str, default: str) -> str:
        return self.values.get(name, default)

    def choice(self, name: str, options: tuple[str, ...]) -> str | None:
        raw = self.values.get(name, "").lower()
        if raw and raw not in options:
            raise SettingsError(name, raw, "one of " + ", ".join(options))
        return raw or None

    def optional_flag(self, name: str) -> bool | None:
        return self.flag(name, None)

    def flag(self, name: str, default: B) -> bool | B:
        raw = self.values.get(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(name, raw, "a boolean (true/false)")

    def integer(self, name: str, default: int) -> int:
        return self._whole(name, default, 1, None, "a positive integer")

    def niceness(self, name: str, default: int) -> int:
        expected = "an integer from 0 (off) to 19"
        return self._whole(name, default, 0, 19, expected, not_whole=expected)

    def _whole(self, name: str, default: W, low: int, high: int | None, in_range: str, *,
               not_whole: str = "an integer") -> int | W:
        """The integer setting `name` (`default` when unset) within [low, high]."""
        raw = self.values.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, raw, not_whole) from None
        if value < low or (high is not None and value > high):
            raise SettingsError(name, raw, in_range)
        return value

    def optional_number(self, name: str) -> float | None:
        raw = self.values.get(name)
        return None if raw is None or raw == "" else self.number(name, 0.0)

    def optional_count(self, name: str) -> int | None:
        return self._whole(name, None, 0, None, "an integer >= 0")

    def number(self, name: str, default: float) -> float:
        raw = self.values.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, raw, "a number") from None
        if value < 0:
            raise SettingsError(name, raw, "a number >= 0")
        return value

    def positive(self, name: str, default: float) -> float:
        value = self.number(name, default)
        if not 0 < value < math.inf:
            raise SettingsError(name, self.values[name], "a number > 0")
        return value

    def limit(self, name: str, default: float, high: float) -> float:
        """A time limit in seconds: greater than 0 and at most `high`."""
        value = self.number(name, default)
        if not 0 < value <= high:
            raise SettingsError(name, self.values[name], f"a number greater than 0 and at most {high:g}")
        return value

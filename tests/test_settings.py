"""Settings come from the environment over .env, once; a bad value is one clear line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest

import bus
import store
from actors import Settings, SettingsError, load_settings

from .conftest import ymera, ymera_env


def test_defaults_without_any_environment() -> None:
    settings = load_settings({}, dotenv=None)
    assert settings == Settings()
    assert settings.log_path == Path(".ymera/events.db")


def test_the_guide_names_are_read(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nRATE_LIMIT_PER_HOUR=5\nQUALITY_THRESHOLD='0.8'\nYMERA_LLM_API_KEY_2=k2\n")
    settings = load_settings({"RATE_LIMIT_PER_HOUR": "7", "ENABLE_SECURITY_VALIDATION": "false",
                              "TASK_TIMEOUT_SECONDS": "12.5", "YMERA_LLM_BASE_URL": "http://127.0.0.1:11434/v1",
                              "YMERA_LLM_MODEL": "llama3", "YMERA_LLM_API_KEY_1": "k1",
                              "YMERA_PYTHON_MODULES": "tasks, more.tasks"}, dotenv=dotenv)
    assert settings.rate_limit_per_hour == 7  # the environment wins over .env
    assert settings.quality_threshold == 0.8
    assert settings.enable_security_validation is False
    assert settings.task_timeout_seconds == 12.5
    assert settings.providers["YMERA_LLM"].keys == ((1, "k1"), (2, "k2"))
    assert settings.llm.configured
    assert settings.python_modules == ("tasks", "more.tasks")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RATE_LIMIT_PER_HOUR", "lots", "setting RATE_LIMIT_PER_HOUR='lots' is not an integer"),
        ("RATE_LIMIT_PER_HOUR", "0", "setting RATE_LIMIT_PER_HOUR='0' is not a positive integer"),
        ("QUALITY_THRESHOLD", "high", "setting QUALITY_THRESHOLD='high' is not a number"),
        ("TASK_TIMEOUT_SECONDS", "-1", "setting TASK_TIMEOUT_SECONDS='-1' is not a number >= 0"),
        ("TASK_TIMEOUT_SECONDS", "0", "setting TASK_TIMEOUT_SECONDS='0' is not a number greater than 0 and at most "
                                      "86400"),
        ("TASK_TIMEOUT_SECONDS", "1e12", "setting TASK_TIMEOUT_SECONDS='1e12' is not a number greater than 0 and "
                                         "at most 86400"),
        ("ENABLE_AUDIT_LOGGING", "maybe", "setting ENABLE_AUDIT_LOGGING='maybe' is not a boolean (true/false)"),
        ("YMERA_DUPLICATE_WINDOW_SECONDS", "0",
         "setting YMERA_DUPLICATE_WINDOW_SECONDS='0' is not a number > 0"),
        ("YMERA_DUPLICATE_WINDOW_SECONDS", "inf",
         "setting YMERA_DUPLICATE_WINDOW_SECONDS='inf' is not a number > 0"),
        ("YMERA_DAILY_BUDGET_USD", "ten", "setting YMERA_DAILY_BUDGET_USD='ten' is not a number"),
        ("YMERA_DAILY_BUDGET_USD", "-5", "setting YMERA_DAILY_BUDGET_USD='-5' is not a number >= 0"),
        ("YMERA_LOG_LEVEL", "loud",
         "setting YMERA_LOG_LEVEL='loud' is not one of debug, info, warning, error, critical"),
        ("YMERA_ENV", "staging", "setting YMERA_ENV='staging' is not one of development, production"),
        ("YMERA_BACKGROUND_NICE", "20", "setting YMERA_BACKGROUND_NICE='20' is not an integer from 0 (off) to 19"),
        ("YMERA_BACKGROUND_NICE", "low", "setting YMERA_BACKGROUND_NICE='low' is not an integer from 0 (off) to 19"),
        # The guide's switch cannot turn the log off: the system of record is the log.
        ("ENABLE_AUDIT_LOGGING", "false", "setting ENABLE_AUDIT_LOGGING='false' is not supported: every event is "
         "stored in the hash-chained log, which status, replay and the audit read; unset it"),
    ],
)
def test_a_bad_setting_names_itself(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({name: value}, dotenv=None)
    assert str(info.value) == message


def test_dotenv_syntax_is_read_as_python_dotenv_reads_it(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text('export RATE_LIMIT_PER_HOUR=9  # per principal\nYMERA_LLM_MODEL="llama3 8b"\n'
                      "YMERA_LLM_BASE_URL=http://h:1/v1#not-a-comment\nQUALITY_THRESHOLD=\nYMERA_ENV=production\n")
    settings = load_settings({}, dotenv=dotenv)
    assert (settings.rate_limit_per_hour, settings.llm.model, settings.llm.base_url) == (9, "llama3 8b",
                                                                                          "http://h:1/v1#not-a-comment")
    assert (settings.quality_threshold, settings.env) == (0.7, "production")


def test_in_production_the_logs_are_json_lines(tmp_path: Path) -> None:
    env = {**ymera_env(tmp_path / "data"), "YMERA_ENV": "production", "YMERA_LOG_LEVEL": "info"}
    (tmp_path / "wf.yaml").write_text("workflow_id: wf\ntasks:\n  - {id: a, type: noop}\n")
    result = ymera("run", str(tmp_path / "wf.yaml"), env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines, "nothing was logged at info"
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)
    assert any(line["event"] == "actor started" and line["actor"] == "distributor" for line in lines)


def test_the_command_line_prints_a_bad_setting_as_one_line(tmp_path: Path) -> None:
    env = ymera_env(tmp_path)
    env["MAX_CONCURRENT_WORKFLOWS"] = "ten"
    result = ymera("schema", env=env)
    assert (result.returncode, result.stderr) == (
        1, "ymera: setting MAX_CONCURRENT_WORKFLOWS='ten' is not an integer\n")


async def test_the_duplicate_window_setting_shapes_the_stream_and_every_consumer_fits_in_it(
    nats_server: bus.EmbeddedServer, tmp_path: Path,
) -> None:
    settings = load_settings({"YMERA_DUPLICATE_WINDOW_SECONDS": "8", "NATS_URL": nats_server.url,
                              "YMERA_DATA_DIR": str(tmp_path)}, dotenv=None)
    assert bus.stream_policy(settings).duplicate_window == 8.0
    async with bus.open_bus(settings) as connection:
        info = await connection.js.stream_info(bus.STREAM)
        assert info.config.duplicate_window == 8.0
        # Every consumer of the engine starts under the short window: the writer's fits it.
        async with store.SqliteEventLog(tmp_path / "events.db") as log:
            writer = store.StoreWriter(connection, log)
        assert bus.redelivery_span(writer.policy) == 6.0  # 75 % of the window
    # A consumer of 9 redeliveries of 5 s, shortened in proportion.
    fitted = bus.fit_consumer(bus.ConsumerPolicy(ack_wait=5.0, max_deliver=10), bus.stream_policy(settings))
    assert (fitted.ack_wait, fitted.max_deliver, bus.redelivery_span(fitted)) == (6.0 / 9, 10, 6.0)
    # A consumer that already fits, or that never stops redelivering (refused by check_consumer), is left alone.
    fits = bus.ConsumerPolicy(ack_wait=1.0, max_deliver=3, backoff=(0.5, 1.0))
    assert bus.fit_consumer(fits, bus.stream_policy(settings)) is fits
    endless = bus.ConsumerPolicy(max_deliver=-1)
    assert bus.fit_consumer(endless, bus.stream_policy(settings)) is endless


async def test_an_actor_waiting_for_nats_connects_with_the_configured_window(nats_server: bus.EmbeddedServer) -> None:
    settings = load_settings({"YMERA_DUPLICATE_WINDOW_SECONDS": "9"}, dotenv=None)
    connection = await bus.connect_when_up(nats_server.url, asyncio.Event(), stream=bus.stream_policy(settings))
    assert connection is not None
    try:
        assert (await connection.js.stream_info(bus.STREAM)).config.duplicate_window == 9.0
    finally:
        await connection.close()


def test_the_settings_repr_never_shows_the_deployments_secret_or_a_key() -> None:
    settings = msgspec.structs.replace(
        load_settings({"GROQ_API_KEY_1": "gsk-secret-one", "YMERA_LLM_API_KEY": "sk-secret-two"}, dotenv=None),
        id_key=b"the-deployments-secret-bytes")
    shown = repr(settings)
    assert "secret" not in shown.replace("<28 secret bytes>", "")
    assert "id_key='<28 secret bytes>'" in shown

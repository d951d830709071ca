"""Agents are data: the built-in catalogue plus an agents file (YMERA_AGENTS_FILE), read with
the settings; the validator and the executor read the same catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import load_settings
from actors.validator import validate_workflow
from config import BUILTIN_AGENTS, AgentsFileError
from events import TaskSpec, WorkflowSubmitted, new_id, now
from tests.llm_server import OpenAIServer

from .conftest import ymera, ymera_env
from .support import attempt

SQL_EXPERT = """agents:
  - name: sql_expert
    role: You are a database engineer. You write correct, efficient SQL.
    task_types: [code_generation, code_review]
    model: sql-model
  - name: generalist
    role: You do whatever is asked.
"""
BUILT_IN = "built-in agents: analyst, architect, coding_agent, developer, researcher, reviewer, tester, writer"


@pytest.fixture
def llm() -> Iterator[OpenAIServer]:
    with OpenAIServer(model="default-model") as server:
        yield server


def agents_file(tmp_path: Path, text: str, name: str = "agents.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(settings_env: dict[str, str], *tasks: TaskSpec) -> list[str]:
    settings = load_settings({"YMERA_LLM_BASE_URL": "http://localhost:1/v1", "YMERA_LLM_MODEL": "m", **settings_env},
                             dotenv=None)
    submission = WorkflowSubmitted(id=new_id(), ts=now(), workflow_id="wf", tasks=list(tasks))
    return [p.message for p in validate_workflow(submission, settings)]


def test_the_built_in_catalogue_has_the_guide_s_coding_agent_for_code_generation_and_review() -> None:
    agent = BUILTIN_AGENTS["coding_agent"]
    assert agent.task_types == ("code_generation", "code_review")
    assert problems({}, TaskSpec(id="write", type="code_generation", agent="coding_agent"),
                    TaskSpec(id="review", type="code_review", agent="coding_agent", dependencies=["write"])) == []
    assert problems({}, TaskSpec(id="d", type="design", agent="coding_agent")) == [
        "agent 'coding_agent' does not take task type 'design'; it takes code_generation, code_review"]


def test_an_agents_file_adds_agents_and_the_unknown_agent_message_lists_both(tmp_path: Path) -> None:
    path = agents_file(tmp_path, SQL_EXPERT)
    env = {"YMERA_AGENTS_FILE": str(path)}
    assert problems(env, TaskSpec(id="q", type="code_generation", agent="sql_expert"),
                    TaskSpec(id="g", type="research", agent="generalist")) == []
    assert problems(env, TaskSpec(id="q", type="analysis", agent="sql_expert")) == [
        "agent 'sql_expert' does not take task type 'analysis'; it takes code_generation, code_review"]
    assert problems(env, TaskSpec(id="w", type="analysis", agent="wizard")) == [
        f"unknown agent 'wizard'; {BUILT_IN}; from {path}: generalist, sql_expert"]
    assert problems({}, TaskSpec(id="w", type="analysis", agent="sql_expert")) == [
        f"unknown agent 'sql_expert'; {BUILT_IN}"]


@pytest.mark.parametrize(("text", "name", "expected"), [
    ("agents: [{name: x, role: r, task_types: [teleport]}]", "agents.yaml",
     "agent 'x': unknown task type 'teleport'; agent task types: analysis, code_generation, code_review, design, "
     "documentation, research, summarization, testing"),
    ("agents: [{name: developer, role: r}]", "agents.yaml", "agent 'developer' is a built-in agent's name: give "
     "yours another"),
    ("agents: [{name: x, role: r}, {name: x, role: s}]", "agents.yaml", "agent 'x' is listed twice"),
    ("agents: [{name: x, role: '  '}]", "agents.yaml", "agent 'x': role is empty (it is the agent's system prompt)"),
    ("agents: [{name: x, role: r, temperature: 2}]", "agents.yaml",
     "Object contains unknown field `temperature` - at `$.agents[0]`"),
    ("agents: [{name: x}]", "agents.yaml", "Object missing required field `role` - at `$.agents[0]`"),
    ("agents: [{name: x, role: r}", "agents.yaml", "not valid YAML: "),
    ('{"agents": 3}', "agents.json", "Expected `array`, got `int` - at `$.agents`"),
])
def test_a_bad_agents_file_is_refused_in_one_line_naming_the_file_and_the_agent(
        tmp_path: Path, text: str, name: str, expected: str) -> None:
    path = agents_file(tmp_path, text, name)
    with pytest.raises(AgentsFileError) as error:
        load_settings({"YMERA_AGENTS_FILE": str(path)}, dotenv=None)
    assert str(error.value).startswith(f"agents file {path}: {expected}")
    assert "\n" not in str(error.value)


def test_a_missing_agents_file_stops_a_command_in_one_line(tmp_path: Path) -> None:
    env = {**ymera_env(tmp_path / "data"), "YMERA_AGENTS_FILE": str(tmp_path / "nope.yaml")}
    (tmp_path / "wf.yaml").write_text("workflow_id: wf\ntasks:\n  - {id: a, type: noop}\n")
    result = ymera("plan", str(tmp_path / "wf.yaml"), env=env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"ymera: agents file {tmp_path / 'nope.yaml'}: cannot be read: "
                             "No such file or directory\n")


async def test_the_executor_sends_the_agent_s_role_and_its_preferred_model(tmp_path: Path,
                                                                            llm: OpenAIServer) -> None:
    settings = load_settings({"YMERA_AGENTS_FILE": str(agents_file(tmp_path, SQL_EXPERT)),
                              "YMERA_LLM_BASE_URL": llm.base_url, "YMERA_LLM_MODEL": "default-model"}, dotenv=None)
    llm.reply("SELECT 1;")
    llm.reply("fine")
    preferred = await attempt(TaskSpec(id="q", type="code_generation", agent="sql_expert", description="one"),
                              {}, settings)
    default = await attempt(TaskSpec(id="g", type="research", agent="generalist", description="two"), {}, settings)
    assert preferred.output == "SELECT 1;"
    first, second = llm.requests[0].body, llm.requests[1].body
    assert (first["model"], second["model"]) == ("sql-model", "default-model")
    assert first["messages"][0]["content"].startswith("You are a database engineer. You write correct, efficient SQL.")
    assert second["messages"][0]["content"].startswith("You do whatever is asked.")
    assert default.output == "fine"

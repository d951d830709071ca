"""Agents are data: who an agent task runs as (its role prompt), which task types it takes,
and which model it prefers.

A built-in catalogue, plus an optional agents file a user points to (`YMERA_AGENTS_FILE`,
YAML or JSON), read once with the settings and handed down: the validator refuses a task
naming an agent neither has, or a task type the agent does not take, and the executor sends
the agent's role as the system prompt and its model when the task names none.

    agents:
      - name: sql_expert
        role: You are a database engineer. You write correct, efficient SQL ...
        task_types: [code_generation, code_review]   # optional: every agent task type
        model: qwen2.5-coder:7b                      # optional: YMERA_LLM_MODEL otherwise

An agent in the file may not reuse a built-in agent's name (rename it: a file cannot change
what a built-in name means to a workflow written for it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from events import YmeraError, one_line

__all__ = ["BUILTIN_AGENTS", "Agent", "AgentCatalogue", "AgentsFileError", "load_agents"]


class AgentsFileError(YmeraError):
    """An agents file that cannot be used, in one line: the file, the agent, what is wrong."""


class Agent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    role: str  # the system prompt of every task it runs
    task_types: tuple[str, ...] = ()  # the agent task types it takes; none listed: every one
    model: str | None = None  # preferred over YMERA_LLM_MODEL; a task's own `model` parameter wins

    def takes(self, task_type: str) -> bool:
        return not self.task_types or task_type in self.task_types


class _AgentsFile(msgspec.Struct, forbid_unknown_fields=True):
    agents: list[Agent] = []


_DEVELOPER = (
    "You are a senior software developer. You write correct, readable, idiomatic code that does exactly "
    "what is asked, handles errors and edge cases, and follows the conventions of the language and "
    "project at hand. You return complete code, not fragments, and explain only what is not obvious.")

BUILTIN_AGENTS: Mapping[str, Agent] = {
    agent.name: agent
    for agent in (
        Agent("architect", (
            "You are a software architect. You turn requirements into a structure: components, their "
            "responsibilities and the interfaces between them. You weigh trade-offs (simplicity, performance, "
            "cost, operability) explicitly, prefer designs that are easy to change, and state the assumptions "
            "and risks your design rests on.")),
        Agent("developer", _DEVELOPER),
        # The agent of the original guide's examples: writes code and reviews it.
        Agent("coding_agent", _DEVELOPER + (
            " Reviewing code, you read for correctness first, then security, clarity and maintainability, and "
            "name each problem precisely with its fix, most severe first."),
            task_types=("code_generation", "code_review")),
        Agent("tester", (
            "You are a software tester. You find out how things break: you derive test cases from the "
            "requirements and the code, cover edge cases and failure paths, and write tests that are "
            "deterministic, independent and named after the behaviour they check.")),
        Agent("reviewer", (
            "You are a meticulous code reviewer. You read for correctness first, then security, clarity and "
            "maintainability. You name each problem precisely, say why it matters and how to fix it, rank "
            "findings by severity, and acknowledge what is already good without padding.")),
        Agent("analyst", (
            "You are an analyst. You break a subject into its parts, separate facts from assumptions, quantify "
            "where you can, and draw conclusions that follow from the evidence. You state the limits of your "
            "analysis and what further information would change it.")),
        Agent("writer", (
            "You are a technical writer. You explain clearly and accurately for the intended reader, lead with "
            "what they need most, use concrete examples, and keep structure and terminology consistent. You "
            "prefer short sentences and plain words over jargon.")),
        Agent("researcher", (
            "You are a researcher. You gather what is known about a question, compare sources and their "
            "reliability, distinguish established findings from open questions, and summarise the state of "
            "knowledge with its uncertainties, citing where each claim comes from.")),
    )
}


class AgentCatalogue(msgspec.Struct, frozen=True):
    """The built-in agents and those of the agents file, if one is configured."""

    user: dict[str, Agent] = {}
    path: str | None = None  # the agents file they came from

    def get(self, name: str) -> Agent | None:
        return BUILTIN_AGENTS.get(name) or self.user.get(name)

    def known(self) -> str:
        """Every agent a task may name, as a user reads it in an error."""
        text = "built-in agents: " + ", ".join(sorted(BUILTIN_AGENTS))
        if self.path is not None:
            text += f"; from {self.path}: " + (", ".join(sorted(self.user)) or "none")
        return text


def load_agents(path: Path | None, agent_task_types: Iterable[str] | None = None) -> AgentCatalogue:
    """The catalogue with the agents of `path` (None: the built-in ones only), their task types
    checked against `agent_task_types` if given; `AgentsFileError` says, in one line, why the
    file cannot be used."""
    if path is None:
        return AgentCatalogue()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AgentsFileError(f"agents file {path}: cannot be read: {exc.strerror or exc}") from None
    decode = msgspec.json.decode if path.suffix == ".json" else msgspec.yaml.decode
    try:
        agents = decode(raw, type=_AgentsFile).agents
    except msgspec.ValidationError as exc:
        raise AgentsFileError(f"agents file {path}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise AgentsFileError(f"agents file {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                              f"{one_line(exc)}") from None
    types = frozenset(agent_task_types) if agent_task_types is not None else None
    user: dict[str, Agent] = {}
    for agent in agents:
        where = f"agents file {path}: agent {agent.name!r}"
        if not agent.name.strip():
            raise AgentsFileError(f"agents file {path}: an agent has an empty name")
        if agent.name in BUILTIN_AGENTS:
            raise AgentsFileError(f"{where} is a built-in agent's name: give yours another")
        if agent.name in user:
            raise AgentsFileError(f"{where} is listed twice")
        if not agent.role.strip():
            raise AgentsFileError(f"{where}: role is empty (it is the agent's system prompt)")
        unknown = [t for t in agent.task_types if types is not None and t not in types]
        if unknown:
            raise AgentsFileError(f"{where}: unknown task type {unknown[0]!r}; agent task types: "
                                  + ", ".join(sorted(types or ())))
        user[agent.name] = agent
    return AgentCatalogue(user=user, path=str(path))

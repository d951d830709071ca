"""The plan of a valid workflow: parallel levels, priorities, the critical path, the speedup."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import events
from actors.validator import Plan, plan, validate_workflow
from config import Settings
from events import TaskSpec


def task(id: str, *dependencies: str, priority: Any = "MEDIUM") -> TaskSpec:
    return TaskSpec(id=id, type="noop", dependencies=list(dependencies), priority=priority)


def test_a_diamond_runs_in_three_levels_along_its_first_branch() -> None:
    tasks = [task("a"), task("b", "a"), task("c", "a"), task("d", "b", "c")]
    assert plan(tasks) == Plan(levels=[["a"], ["b", "c"], ["d"]], critical_path=["a", "b", "d"],
                               estimated_parallel_speedup=4 / 3)


def test_tasks_may_be_submitted_before_their_dependencies() -> None:
    tasks = [task("d", "c", "b"), task("c", "a"), task("b", "a"), task("a")]
    assert plan(tasks) == Plan(levels=[["a"], ["c", "b"], ["d"]], critical_path=["a", "c", "d"],
                               estimated_parallel_speedup=4 / 3)


def test_a_level_is_one_more_than_the_deepest_dependency() -> None:
    tasks = [task("a"), task("b", "a"), task("c", "b"), task("late", "a", "c"), task("early", "a")]
    assert plan(tasks).levels == [["a"], ["b", "early"], ["c"], ["late"]]


def test_within_a_level_higher_priority_comes_first_then_submission_order() -> None:
    tasks = [task("low", priority="LOW"), task("m1"), task("crit", priority="CRITICAL"),
             task("high", priority="HIGH"), task("m2"), task("crit2", priority="CRITICAL")]
    assert plan(tasks).levels == [["crit", "crit2", "high", "m1", "m2", "low"]]


def test_the_critical_path_is_the_longest_chain() -> None:
    tasks = [task("short"), task("x"), task("y", "x"), task("z", "y", "short"), task("tail", "short")]
    result = plan(tasks)
    assert result.critical_path == ["x", "y", "z"]
    assert result.estimated_parallel_speedup == 5 / 3


def test_equally_long_chains_are_broken_by_submission_order() -> None:
    tasks = [task("p"), task("q"), task("end2", "q"), task("end1", "q", "p")]
    assert plan(tasks).critical_path == ["q", "end2"]


def test_independent_tasks_run_in_one_level_with_full_speedup() -> None:
    result = plan([task(f"t{i}") for i in range(8)])
    assert len(result.levels) == 1
    assert result.critical_path == ["t0"]
    assert result.estimated_parallel_speedup == 8.0


def test_an_empty_workflow_has_an_empty_plan() -> None:
    assert plan([]) == Plan(levels=[], critical_path=[], estimated_parallel_speedup=1.0)


@pytest.mark.parametrize(("tasks", "message"), [
    ([task("a", "b"), task("b", "a")], "plan: the workflow has a dependency cycle; validate it first"),
    ([task("a", "ghost")], "plan: task 'a' depends on unknown task 'ghost'; validate the workflow first"),
    ([task("b"), task("a", "a")], "plan: task 'a' depends on itself; validate the workflow first"),
    ([task("a"), task("a")], "plan: task ids are not unique; validate the workflow first"),
])
def test_planning_an_invalid_workflow_is_refused(tasks: list[TaskSpec], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        plan(tasks)


@st.composite
def dags(draw: st.DrawFn) -> list[TaskSpec]:
    """A random DAG (each task depends on some earlier ones), submitted in a random order."""
    n = draw(st.integers(min_value=1, max_value=40))
    tasks = []
    for i in range(n):
        deps = draw(st.lists(st.integers(min_value=0, max_value=i - 1), max_size=4)) if i else []
        priority = draw(st.sampled_from(["CRITICAL", "HIGH", "MEDIUM", "LOW"]))
        tasks.append(task(f"t{i}", *(f"t{d}" for d in deps), priority=priority))
    return draw(st.permutations(tasks))


@settings(max_examples=300, deadline=None)
@given(dags())
def test_every_task_is_planned_once_after_all_its_dependencies(tasks: list[TaskSpec]) -> None:
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf", tasks=tasks)
    assert validate_workflow(submission, Settings()) == []
    result = plan(tasks)
    level_of = {tid: k for k, level in enumerate(result.levels) for tid in level}
    assert sorted(tid for level in result.levels for tid in level) == sorted(t.id for t in tasks)
    for t in tasks:
        assert level_of[t.id] == max((level_of[d] + 1 for d in t.dependencies), default=0)
    by_id = {t.id: t for t in tasks}
    path = result.critical_path
    assert len(path) == len(result.levels)
    assert all(earlier in by_id[later].dependencies for earlier, later in itertools.pairwise(path))
    assert result.estimated_parallel_speedup == len(tasks) / len(result.levels)


def test_plan_is_linear_enough_for_a_large_random_dag() -> None:
    rng = random.Random(7)
    width, n = 50, 20_000
    tasks = [task(f"t{i}", *(f"t{j}" for j in rng.sample(range(max(0, i // width - 3) * width, i // width * width),
                                                         3)) if i >= width else ())
             for i in range(n)]
    rng.shuffle(tasks)
    result = plan(tasks)
    assert sum(map(len, result.levels)) == n
    assert len(result.critical_path) == len(result.levels)

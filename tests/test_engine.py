"""The workflow engine end to end: actors as real processes, a real nats-server, a local LLM server."""

from __future__ import annotations

import asyncio
import heapq
import random
from pathlib import Path

import pytest

import bus
import events
from config import BUILTIN_AGENTS
from ymera import Task, TaskPriority, WorkflowOrchestrator

from .engine import all_events, connected, engine_env, engine_processes, settings_of, wait_for_actors
from .llm_server import OpenAIServer
from .support import next_msg


@pytest.fixture
async def engine(nats_server: bus.EmbeddedServer, tmp_path: Path, llm: OpenAIServer):  # type: ignore[no-untyped-def]
    env = engine_env(tmp_path / "data", nats_server.url, YMERA_LLM_BASE_URL=llm.base_url,
                     YMERA_LLM_MODEL="test-model", YMERA_PYTHON_MODULES="tests.pytasks")
    with engine_processes(env, tmp_path / "engine.log", executors=2):
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
        orch = WorkflowOrchestrator(settings_of(env), run_actors=False)
        try:
            yield orch
        finally:
            await orch.close()


async def test_a_single_agent_task_completes_with_a_quality_score(engine: WorkflowOrchestrator,
                                                                  llm: OpenAIServer) -> None:
    llm.reply("```python\ndef add(a: int, b: int) -> int:\n    \"\"\"Sum.\"\"\"\n    return a + b\n```")
    result = await engine.execute_workflow(workflow_id="wf_single", tasks=[
        Task("write", "wf_single", agent_name="developer", task_type="code_generation",
             description="Write an add function in Python.", priority=TaskPriority.HIGH)], timeout=60)
    assert result["status"] == "completed", result
    assert 0.0 < result["overall_quality"] <= 1.0
    write = result["results"]["write"]
    assert (write["status"], write["attempts"], write["model"]) == ("succeeded", 1, "local/test-model")
    assert len(llm.requests) == 1
    assert llm.requests[0].body["model"] == "test-model"


async def test_a_dependent_task_sees_its_dependency_output(engine: WorkflowOrchestrator, llm: OpenAIServer) -> None:
    llm.reply("DESIGN: a token bucket per key")
    result = await engine.execute_workflow(workflow_id="wf_two", tasks=[
        Task("design", agent_name="architect", task_type="design", description="Design a rate limiter."),
        Task("implement", agent_name="developer", task_type="code_generation",
             description="Implement this design: {{ tasks.design.output }}", dependencies=["design"]),
    ], timeout=60)
    assert result["status"] == "completed", result
    assert [r["status"] for r in result["results"].values()] == ["succeeded", "succeeded"]
    second = llm.requests[1].body["messages"][-1]["content"]
    assert "DESIGN: a token bucket per key" in second
    assert result["parallel_groups"] == [["design"], ["implement"]]


async def test_the_monitoring_report_is_active(engine: WorkflowOrchestrator) -> None:
    result = await engine.execute_workflow(workflow_id="wf_mon", tasks=[Task("a", task_type="echo",
                                                                             parameters={"text": "hi"})], timeout=60)
    assert result["status"] == "completed"
    report = engine.monitor.get_monitoring_report()
    assert report["monitoring_status"] == "active"
    assert report["workflows"]["completed"] >= 1


async def test_the_guide_s_validation_scenario_runs_with_its_coding_agent(engine: WorkflowOrchestrator,
                                                                         llm: OpenAIServer) -> None:
    # As the original guide's validation script: one simple task, then two dependent tasks on its
    # agent `coding_agent`, then the monitoring report.
    llm.reply("def hello():\n    return 'hello'")
    simple = await engine.execute_workflow(workflow_id="validation_simple", tasks=[
        Task(task_id="simple_task", workflow_id="validation_simple", agent_name="coding_agent",
             task_type="code_generation", description="Write a hello world function", priority=TaskPriority.HIGH)])
    assert simple["status"] == "completed", simple
    llm.reply("```python\ndef fib(n: int) -> int:\n    \"\"\"The n-th Fibonacci number.\"\"\"\n"
              "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n```")
    llm.reply("The code is correct; memoise it for large n.")
    chained = await engine.execute_workflow(workflow_id="validation_deps", tasks=[
        Task(task_id="generate", workflow_id="validation_deps", agent_name="coding_agent",
             task_type="code_generation", description="Create a Fibonacci function", priority=TaskPriority.HIGH),
        Task(task_id="review", workflow_id="validation_deps", agent_name="coding_agent", task_type="code_review",
             description="Review the generated code: {{ tasks.generate.output }}", dependencies=["generate"],
             priority=TaskPriority.MEDIUM),
    ], enable_monitoring=True)
    assert chained["status"] == "completed", chained
    assert [r["status"] for r in chained["results"].values()] == ["succeeded", "succeeded"]
    assert 0.0 < chained["overall_quality"] <= 1.0
    review = llm.requests[2].body["messages"]
    assert review[0]["content"].startswith(BUILTIN_AGENTS["coding_agent"].role)
    assert "def fib(n: int) -> int:" in review[-1]["content"]
    report = engine.monitor.get_monitoring_report()
    assert report["monitoring_status"] == "active"
    assert report["workflows"]["completed"] >= 2


async def test_an_invalid_workflow_lists_every_problem(engine: WorkflowOrchestrator) -> None:
    result = await engine.execute_workflow(workflow_id="wf_bad", tasks=[
        Task("a", task_type="teleport"),
        Task("b", task_type="echo", dependencies=["ghost"]),
        Task("c", task_type="sleep"),
    ], timeout=60)
    assert result["status"] == "invalid"
    assert len(result["errors"]) == 3
    assert result["errors"][0].startswith("task a.type: unknown task type 'teleport'")
    assert result["errors"][1].startswith("task b.dependencies: ")
    assert "ghost" in result["errors"][1]
    assert result["errors"][2].startswith("task c.parameters.seconds: ")


async def test_a_failed_attempt_is_retried_by_the_distributor(engine: WorkflowOrchestrator,
                                                              llm: OpenAIServer) -> None:
    llm.error(500)
    llm.reply("second time lucky")
    result = await engine.execute_workflow(workflow_id="wf_retry", tasks=[
        Task("ask", task_type="llm", parameters={"prompt": "hello"})], timeout=60)
    assert result["status"] == "completed", result
    assert result["results"]["ask"]["attempts"] == 2
    async with connected(engine.settings.nats_url or "") as connection:
        seen = await all_events(connection, "ymera.task.wf_retry.>")
    kinds = [type(e).__name__ for e in seen if not isinstance(e, events.TaskHeartbeat)]
    # The attempt ended before its first heartbeat: no TaskStarted; its result names its executor.
    assert kinds[:4] == ["TaskReady", "TaskFailed", "TaskRetryScheduled", "TaskReady"]
    failed = next(e for e in seen if isinstance(e, events.TaskFailed))
    assert (failed.kind, failed.retryable, failed.model) == ("server_error", True, "local/test-model")
    assert failed.executor != ""
    assert failed.started_at is not None


async def test_a_final_failure_skips_the_dependents_and_fails_the_workflow(engine: WorkflowOrchestrator) -> None:
    result = await engine.execute_workflow(workflow_id="wf_fail", tasks=[
        Task("slow", task_type="sleep", parameters={"seconds": 5}, timeout_seconds=0.3),
        Task("after", task_type="noop", dependencies=["slow"]),
        Task("later", task_type="noop", dependencies=["after"]),
    ], timeout=90)
    assert result["status"] == "failed"
    slow, after, later = (result["results"][t] for t in ("slow", "after", "later"))
    assert (slow["status"], slow["attempts"]) == ("failed", 3)
    assert slow["error"] == "timed out after 0.3s"
    assert (after["status"], after["error"]) == ("skipped", "dependency slow did not succeed")
    assert (later["status"], later["error"]) == ("skipped", "dependency after did not succeed")
    assert result["error"] == "task slow failed: timed out after 0.3s"


async def test_a_stray_malformed_message_on_a_workflow_subject_does_not_end_it(engine: WorkflowOrchestrator) -> None:
    async with connected(engine.settings.nats_url or "") as connection:
        started = await connection.follow(1, "ymera.task.wf_stray.nap.started")
        run = asyncio.create_task(engine.execute_workflow(workflow_id="wf_stray", tasks=[
            Task("nap", task_type="sleep", parameters={"seconds": 1.0})], timeout=60))
        await next_msg(started, 30)
        await started.stop()
        await connection.js.publish("ymera.wf.wf_stray.submitted", b"{not an event")
        result = await run
        rejected = await all_events(connection, "ymera.sec.wf_stray.rejected")
    assert [type(e).__name__ for e in rejected] == ["MessageRejected"]  # recorded, on the workflow's subject
    assert result["status"] == "completed", result
    assert result["results"]["nap"]["status"] == "succeeded"


async def test_a_second_run_while_one_is_active_is_refused_naming_it(engine: WorkflowOrchestrator) -> None:
    long = [Task("nap", task_type="sleep", parameters={"seconds": 1.0})]
    first = asyncio.create_task(engine.execute_workflow(workflow_id="wf_dup", tasks=long, timeout=60))
    async with connected(engine.settings.nats_url or "") as connection:
        admitted = await connection.follow(1, "ymera.wf.wf_dup.admitted")
        active = (await next_msg(admitted, 30)).data
        await admitted.stop()
    run_id = events.decode(active).run_id
    second = await engine.execute_workflow(workflow_id="wf_dup", tasks=long, timeout=60)
    assert (second["status"], second["error"]) == (
        "refused", f"workflow wf_dup already has an active run {run_id}; wait for it to end or cancel it")
    assert second["run_id"] != run_id
    result = await first
    assert (result["status"], result["run_id"]) == ("completed", run_id)


async def test_a_thousand_task_dag_runs_in_topological_order_by_priority(engine: WorkflowOrchestrator) -> None:
    rng = random.Random(1000)
    priorities = list(TaskPriority)
    tasks = []
    for i in range(1000):
        deps = sorted({f"t{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 3)))})
        tasks.append(Task(f"t{i}", task_type="noop", dependencies=deps, priority=rng.choice(priorities)))
    result = await engine.execute_workflow(workflow_id="wf_dag", tasks=tasks, timeout=240, max_parallel_tasks=1)
    assert result["status"] == "completed"
    async with connected(engine.settings.nats_url or "") as connection:
        seen = await all_events(connection, "ymera.task.wf_dag.*.ready")
    order = [e.task_id for e in seen if isinstance(e, events.TaskReady)]
    assert order == _expected_order(tasks)


def _expected_order(tasks: list[Task]) -> list[str]:
    """Kahn's algorithm, one task at a time: the highest priority ready task, first submitted first."""
    rank = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}
    index = {t.task_id: i for i, t in enumerate(tasks)}
    remaining = {t.task_id: len(t.dependencies) for t in tasks}
    children: dict[str, list[str]] = {}
    for t in tasks:
        for d in t.dependencies:
            children.setdefault(d, []).append(t.task_id)
    ready = [(rank[str(t.priority)], index[t.task_id], t.task_id) for t in tasks if not t.dependencies]
    heapq.heapify(ready)
    order = []
    while ready:
        _, _, task_id = heapq.heappop(ready)
        order.append(task_id)
        for child in children.get(task_id, ()):
            remaining[child] -= 1
            if remaining[child] == 0:
                c = tasks[index[child]]
                heapq.heappush(ready, (rank[str(c.priority)], index[child], child))
    return order

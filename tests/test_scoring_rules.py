"""The assessor's scores, continued: outputs no model wrote keep the rules of form; the weights
match docs/quality.md; scores are deterministic and bounded; the assessor hands the scorer the
outputs a task was given; the labelled set in tests/data/quality/ is well formed."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import events
from actors import Settings
from actors._quality import Scores, score
from actors.assessor import Assessor
from actors.registry import agent_task_types

from .quality_pairs import DATA, DOCS, FIELDS, PAIRS, pair_scores, scored, task_spec, verdict

# ---- what is not a model's answer keeps the plain rules -----------------------------------------


@pytest.mark.parametrize(
    ("case", "spec", "output", "expected"),
    [
        ("noop with no output", task_spec("noop"), None, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("sleep with empty output", task_spec("sleep", "wait a while"), "", (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("echo of a short text", task_spec("echo", "Explain sorting."), "Sorting puts things in order.",
         (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("empty echo", task_spec("echo", "Explain sorting."), "  ", (1.0, 0.0, 1.0, 1.0, 1.0, 0.8)),
        ("a quarter of the asked minimum length", task_spec("echo", min_length=100), "x" * 25,
         (1.0, 0.25, 1.0, 1.0, 1.0, 0.85)),
        ("structured output", task_spec("python", "d" * 800), {"answer": 4}, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("json asked, fenced", task_spec("echo", json=True), 'Here:\n```json\n{"a": 1}\n```',
         (1.0, 1.0, 0.5, 1.0, 1.0, 0.925)),
        ("json asked, prose given", task_spec("echo", json=True), "no json", (1.0, 1.0, 0.0, 1.0, 1.0, 0.85)),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else "",
)
def test_outputs_no_model_wrote_are_scored_on_form_only(case: str, spec: events.TaskSpec, output: Any,
                                                        expected: tuple[float, ...]) -> None:
    scores = scored(spec, output)
    assert tuple(getattr(scores, f) for f in FIELDS) == expected, case


def test_an_empty_model_answer_scores_zero() -> None:
    scores = scored(task_spec("llm", "Explain sorting."), "  ")
    assert (scores.accuracy, scores.completeness, scores.overall) == (0.0, 0.0, 0.0)
    assert scores.reasons["overall"][-1] == "capped at 0.0: no answer"


def test_weights_in_the_docs_match_the_code() -> None:
    text = DOCS.read_text()
    for name, weight in [("accuracy", "0.35"), ("completeness", "0.20"), ("consistency", "0.15"),
                         ("efficiency", "0.10"), ("maintainability", "0.20")]:
        assert re.search(rf"\|\s*{name}\s*\|\s*{weight}\s*\|", text), name


def test_scoring_twice_gives_the_same_scores_and_reasons() -> None:
    for pair_id in ("review-user-repo-good", "summary-incident-vague", "codegen-csv-json-tangled"):
        assert pair_scores(pair_id) == pair_scores(pair_id)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
answers = st.sampled_from([p["answer"] for p in list(PAIRS.values())[::5]] + ["", "```", "```python\ndef f(:\n"])
task_types = st.sampled_from(["noop", "sleep", "echo", "llm", *agent_task_types()])
expectations = st.none() | st.builds(events.Expectations, min_length=st.none() | st.integers(0, 500),
                                     json=st.booleans())


@given(
    type_=task_types,
    description=st.text(max_size=300),
    expect=expectations,
    output=json_values | answers | st.text(max_size=400),
    given_output=st.none() | answers | st.text(max_size=200),
    duration_ms=st.floats(),  # negative, infinite and NaN included
    timeout_seconds=st.floats(min_value=0, allow_nan=False, allow_infinity=True),
    passed=st.booleans(),
    problems=st.lists(st.text(max_size=10), max_size=6),
)
def test_every_score_is_between_0_and_1_and_overall_at_most_the_weighted_mean(
        type_: str, description: str, expect: events.Expectations | None, output: Any, given_output: str | None,
        duration_ms: float, timeout_seconds: float, passed: bool, problems: list[str]) -> None:
    spec = events.TaskSpec(id="t", type=type_, description=description, expect=expect,
                           dependencies=["d"] if given_output is not None else [])
    scores = score(spec, output, duration_ms=duration_ms, timeout_seconds=timeout_seconds,
                   outcome_passed=passed, outcome_problems=problems,
                   inputs={"d": given_output} if given_output is not None else None)
    values = [getattr(scores, f) for f in FIELDS]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(round(v, 4) == v for v in values)
    weighted = sum(w * getattr(scores, f) for f, w in
                   zip(FIELDS, (0.35, 0.2, 0.15, 0.1, 0.2), strict=False))
    capped = any(r.startswith("capped at") for r in scores.reasons["overall"])
    assert scores.overall <= weighted + 0.00005 + 1e-12
    assert capped or abs(scores.overall - weighted) <= 0.00005 + 1e-12
    # The scores and reasons fit the event they are published in.
    events.TaskAssessed(id="a", ts=events.now(), workflow_id="w", task_id="t", attempt=1,
                        **{f: getattr(scores, f) for f in Scores.__struct_fields__})


# ---- the assessor gives the scorer what the task was given --------------------------------------


async def test_the_assessor_scores_a_review_against_the_code_of_the_task_it_depends_on() -> None:
    code = PAIRS["review-user-repo-good"]["inputs"]["implement"]
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf", tasks=[
        events.TaskSpec(id="implement", type="code_generation", agent="coder", description="Write get_user."),
        events.TaskSpec(id="review", type="code_review", agent="reviewer", dependencies=["implement"],
                        description="Review the code given for correctness and security.")])
    common = {"ts": events.now(), "workflow_id": "wf", "run_id": sub.id, "duration_ms": 10.0}
    assessor = Assessor(Settings())
    stream: list[events.Event] = [sub]
    scored: list[events.TaskAssessed] = []
    for task, output in [("implement", code), ("review", PAIRS["review-user-repo-good"]["answer"])]:
        success = events.TaskSucceeded(id=events.new_id(), task_id=task, attempt=1, output=output, **common,
                                       judged=verdict(0.8) if task == "implement" else None)
        stream.append(success)
        for event in [sub, success] if task == "implement" else [success]:
            assessor.apply(event)
        out = await assessor.react(success)
        scored += [e for e in out if isinstance(e, events.TaskAssessed)]
        stream += out
    assert scored[0].reasons["accuracy"][0] == "relevance 0.80, judged by local/judge"  # the success's verdict
    review = scored[1]
    assert "mentions 7 of the 8 names in task implement's code" in " ".join(review.reasons["consistency"])
    assert review.overall == pair_scores("review-user-repo-good").overall  # as the bench scores it
    # A rebuild holds the same outputs; the run's end forgets them.
    rebuilt = Assessor(Settings())
    for event in stream:
        rebuilt.apply(event)
    assert rebuilt.outputs == assessor.outputs
    assert set(rebuilt.outputs[sub.id]) == {"implement"}  # no task depends on the review: its output is not kept
    rebuilt.apply(events.WorkflowCompleted(id=events.new_id(), ts=events.now(), workflow_id="wf", run_id=sub.id))
    assert rebuilt.outputs == {}
    assert rebuilt.to_assess == {}


async def test_the_assessor_scores_no_success_scored_in_its_attempt_but_keeps_it_for_its_dependents() -> None:
    code = PAIRS["review-user-repo-good"]["inputs"]["implement"]
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf", tasks=[
        events.TaskSpec(id="implement", type="echo", parameters={"text": code}),
        events.TaskSpec(id="review", type="code_review", agent="reviewer", dependencies=["implement"],
                        description="Review the code given for correctness and security.")])
    common = {"ts": events.now(), "workflow_id": "wf", "run_id": sub.id, "duration_ms": 10.0}
    carried = events.Quality(task_type="echo", accuracy=1.0, completeness=1.0, consistency=1.0, efficiency=1.0,
                             maintainability=0.9, overall=0.98)
    echoed = events.TaskSucceeded(id=events.new_id(), task_id="implement", attempt=1, output=code, quality=carried,
                                  **common)
    assessor = Assessor(Settings())
    for event in (sub, echoed):
        assessor.apply(event)
    assert await assessor.react(echoed) == []  # it carries its score
    assert assessor.to_assess == {}
    review = events.TaskSucceeded(id=events.new_id(), task_id="review", attempt=1, **common,
                                  output=PAIRS["review-user-repo-good"]["answer"])
    assessor.apply(review)
    [scored] = await assessor.react(review)
    assert isinstance(scored, events.TaskAssessed)
    # Compared with the code the echo passed on, as with a model's code (the test above).
    assert "mentions 7 of the 8 names in task implement's code" in " ".join(scored.reasons["consistency"])


def test_the_assessor_passes_over_unread_only_a_scored_success_no_task_of_its_run_depends_on() -> None:
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf", tasks=[
        events.TaskSpec(id="fetch", type="echo", parameters={"text": "x"}),
        events.TaskSpec(id="alone", type="noop"),
        events.TaskSpec(id="sum", type="summarization", description="Sum it up.", dependencies=["fetch"])])
    assessor = Assessor(Settings())
    assessor.apply(sub)
    carried = events.Quality(task_type="echo", accuracy=1.0, completeness=1.0, consistency=1.0, efficiency=1.0,
                             maintainability=1.0, overall=1.0)

    def success(task: str, quality: events.Quality | None) -> bytes:
        return events.encode(events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf",
                                                  run_id=sub.id, task_id=task, attempt=1, output="x",
                                                  quality=quality))

    assert assessor.passes_over(success("alone", carried))  # scored, and no one's input
    assert not assessor.passes_over(success("fetch", carried))  # the summary is compared with it
    assert not assessor.passes_over(success("sum", None))  # a model's answer: the assessor's to score
    assert not assessor.passes_over(success("alone", carried).replace(b'"quality":{', b'"quality":null,"q":{'))
    assert not assessor.passes_over(b"{not json")  # decoded in full, and rejected with its reason
    assert not assessor.passes_over(events.encode(sub))


# ---- the labelled set ---------------------------------------------------------------------------


def test_the_labelled_set_is_well_formed_with_60_pairs_or_more_and_every_label() -> None:
    required = {"id", "type", "description", "label", "why", "answer"}
    allowed = required | {"parameters", "dependencies", "expect"}
    ids: list[str] = []
    for path in sorted(DATA.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert set(doc) == {"inputs", "pairs"}, path.name
        for pair in doc["pairs"]:
            where = f"{path.name}: {pair.get('id')}"
            assert required <= set(pair) <= allowed, where
            assert pair["type"] in agent_task_types(), where
            assert pair["label"] in ("good", "mediocre", "bad"), where
            assert all(isinstance(pair[k], str) and pair[k].strip() for k in ("description", "why", "answer")), where
            for dep, name in pair.get("dependencies", {}).items():
                assert re.fullmatch(r"[A-Za-z0-9_-]+", dep), where
                assert name in doc["inputs"], where
            if "expect" in pair:
                msgspec.convert(pair["expect"], events.Expectations)
            ids.append(pair["id"])
    assert len(ids) == len(set(ids)) >= 60
    labels = {p["label"] for p in PAIRS.values()}
    assert labels == {"good", "mediocre", "bad"}
    assert {p["type"] for p in PAIRS.values()} >= {"code_generation", "code_review", "testing", "summarization",
                                                     "analysis", "documentation", "design"}

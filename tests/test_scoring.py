"""The assessor's scores: each dimension on real answers (most from the labelled set in
tests/data/quality/), in the order a reviewer would put them; the marks that cap an answer
(off-topic, refused, repeated, cut off, wrong language, not parsing); the judge's seam; the
assessor giving the scorer the outputs a task was given; and the labelled set's shape. How
well the scores rank the whole set is bench/quality_eval.py's to measure, not a test's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import events
from actors import Settings
from actors._checks import ruff_binary
from actors.assessor import Assessor, Scores, score
from actors.assessor._lint import lint_answer_blocking, lint_blocking
from actors.registry import agent_task_types

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "quality.md"
DATA = ROOT / "tests" / "data" / "quality"
FIELDS = ("accuracy", "completeness", "consistency", "efficiency", "maintainability", "overall")


def _labelled() -> dict[str, dict[str, Any]]:
    pairs: dict[str, dict[str, Any]] = {}
    for path in sorted(DATA.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for pair in doc["pairs"]:
            pair["inputs"] = {dep: doc["inputs"][name] for dep, name in pair.get("dependencies", {}).items()}
            pair["file"] = path.name
            pairs[pair["id"]] = pair
    return pairs


PAIRS = _labelled()


def _spec(type_: str = "llm", description: str = "", parameters: dict[str, Any] | None = None,
          dependencies: list[str] | None = None, **expect: Any) -> events.TaskSpec:
    return events.TaskSpec(id="t", type=type_, description=description, parameters=parameters or {},
                           dependencies=dependencies or [],
                           expect=events.Expectations(**expect) if expect else None)


def _score(spec: events.TaskSpec, output: Any, *, duration_ms: float = 100.0, timeout_seconds: float = 10.0,
           **evidence: Any) -> Scores:
    return score(spec, output, duration_ms=duration_ms, timeout_seconds=timeout_seconds, **evidence)


def pair_scores(pair_id: str, **evidence: Any) -> Scores:
    pair = PAIRS[pair_id]
    spec = _spec(pair["type"], pair["description"], pair.get("parameters"), list(pair["inputs"]))
    return _score(spec, pair["answer"], inputs=pair["inputs"], **evidence)


def reasons_text(scores: Scores, dimension: str) -> str:
    return " | ".join(scores.reasons[dimension])


# ---- the order a reviewer would put answers in ------------------------------------------------


def test_code_answers_rank_as_a_reviewer_would() -> None:
    """Good code, then working code with real flaws, then code that cannot be used: Java for a
    Python task, code cut off mid-method, a refusal; each of those below the 0.7 threshold."""
    good = pair_scores("codegen-token-bucket-python-good").overall
    mediocre = pair_scores("codegen-token-bucket-python-mediocre").overall
    java = pair_scores("codegen-token-bucket-java-for-python").overall
    cut = pair_scores("codegen-token-bucket-truncated").overall
    broken = pair_scores("codegen-parse-duration-syntax-error").overall
    refused = pair_scores("codegen-merge-intervals-refused").overall
    assert good > mediocre > max(java, cut, broken) >= min(java, cut, broken) > refused
    assert good >= 0.9
    assert mediocre >= 0.7
    assert max(java, cut, broken, refused) < 0.5


@pytest.mark.parametrize(("good", "mediocre", "bad"), [
    ("review-user-repo-good", "review-user-repo-misses-injection", "review-generic-never-mentions-code"),
    ("summary-incident-good", "summary-incident-vague", "summary-incident-wrong-document"),
    ("testing-parse-duration-good", "testing-parse-duration-one-case", "testing-parse-duration-junit"),
    ("analysis-latency-good", "analysis-latency-restates", "analysis-latency-off-topic"),
    ("docs-parse-duration-good", "docs-parse-duration-partial", "docs-wrong-api"),
])
def test_answers_on_given_material_rank_good_then_mediocre_then_bad(good: str, mediocre: str, bad: str) -> None:
    g, m, b = (pair_scores(p).overall for p in (good, mediocre, bad))
    assert g > m > b, (g, m, b)
    assert b <= 0.4


# ---- relevance: off-topic answers score low with no `expect` -----------------------------------


def test_an_off_topic_answer_scores_low_though_the_task_sets_no_expect() -> None:
    scores = pair_scores("design-url-shortener-off-topic")
    assert scores.accuracy < 0.35
    assert scores.overall == 0.4
    assert reasons_text(scores, "overall").endswith("capped at 0.4: off the task (relevance 0.24)")
    assert "uses 1 of the task's 7 content words (14%)" in reasons_text(scores, "accuracy")


def test_relevance_counts_the_task_s_words_by_stem_and_the_identifiers_it_names() -> None:
    spec = _spec("code_generation", "Write a Python function slugify(text) that turns a title into a URL slug.")
    named = _score(spec, "```python\ndef slugify(text):\n    return text.lower().replace(' ', '-')\n```")
    unnamed = _score(spec, "```python\ndef make_url(value):\n    return value.lower()\n```")
    assert named.accuracy == 1.0  # names the one identifier the task names
    assert unnamed.accuracy == 0.25
    assert "at most 0.25: none of them" in reasons_text(unnamed, "accuracy")


def verdict(relevance: float, correctness: float = 1.0, completeness: float = 1.0) -> events.Verdict:
    return events.Verdict(model="local/judge", relevance=relevance, correctness=correctness,
                          completeness=completeness, reasons=["answers the question"])


def test_a_judge_s_relevance_replaces_the_lexical_one() -> None:
    off_topic = PAIRS["research-jitter-off-topic"]
    spec = _spec("research", off_topic["description"])
    judged = _score(spec, off_topic["answer"], judged=verdict(0.9))
    lexical = _score(spec, off_topic["answer"])
    assert (judged.accuracy, lexical.accuracy) == (0.9, 0.2083)
    assert judged.reasons["accuracy"] == ["relevance 0.90, judged by local/judge", "answers the question"]
    assert judged.overall > 0.9 > lexical.overall


def test_a_judge_s_correctness_and_completeness_bound_accuracy_and_completeness() -> None:
    """The case lexical evidence cannot see: a review, on the right code, of defects it does not have."""
    wrong = PAIRS["held-review-retry-wrong"]
    spec = _spec(wrong["type"], wrong["description"], dependencies=list(wrong["inputs"]))
    unjudged = _score(spec, wrong["answer"], inputs=wrong["inputs"])
    judged = _score(spec, wrong["answer"], inputs=wrong["inputs"], judged=verdict(0.9, correctness=0.1,
                                                                                   completeness=0.5))
    assert unjudged.overall > 0.85
    assert (judged.accuracy, judged.completeness) == (0.1, 0.5)
    assert judged.reasons["accuracy"][-1] == "at most 0.10: the judge's correctness"
    assert judged.reasons["completeness"][-1] == "at most 0.50: the judge's completeness"
    assert judged.overall < 0.7  # below QUALITY_THRESHOLD: a re-run on a stronger model


def test_a_judge_cannot_lift_a_refusal() -> None:
    refused = PAIRS["analysis-refused"]
    spec = _spec(refused["type"], refused["description"], dependencies=list(refused["inputs"]))
    scores = _score(spec, refused["answer"], inputs=refused["inputs"], judged=verdict(1.0))
    assert (scores.accuracy, scores.overall) == (0.0, 0.1)


# ---- marks that cap an answer -------------------------------------------------------------------


@pytest.mark.parametrize(("pair_id", "overall", "reason"), [
    ("codegen-merge-intervals-refused", 0.1, "capped at 0.1: a refusal ('I'm sorry, but I can't')"),
    ("analysis-refused", 0.1, "capped at 0.1: a refusal ('As an AI language model, I am unable')"),
    ("codegen-merge-intervals-repeats-prompt", 0.15, "capped at 0.15: repeats the task (100% of its word triples)"),
    ("summary-incident-copied", 0.2, "capped at 0.2: copies the output of task report"),
    ("codegen-token-bucket-java-for-python", 0.25, "capped at 0.25: written in java, not python"),
    ("codegen-token-bucket-truncated", 0.3, "capped at 0.3: ends inside an unclosed ``` block"),
    ("review-truncated", 0.3, "capped at 0.3: ends mid-sentence: '...allows an attacker to'"),
    ("testing-token-bucket-advice-only", 0.3, "capped at 0.3: no code, and code was asked for"),
    ("codegen-parse-duration-syntax-error", 0.35, "capped at 0.35: its Python does not parse"),
    ("codegen-csv-json-stub", 0.35, "capped at 0.35: a stub (main, TODO left in the code)"),
])
def test_an_answer_that_cannot_be_good_is_capped_and_says_why(pair_id: str, overall: float, reason: str) -> None:
    scores = pair_scores(pair_id)
    assert scores.overall == overall
    assert scores.reasons["overall"][-1] == reason


def test_python_cut_off_inside_an_expression_is_truncated_not_merely_broken() -> None:
    spec = _spec("code_generation", "Write a Python function area(r) for a circle.")
    cut = _score(spec, "def area(r):\n    return 3.14159 * (r * r")
    assert "its Python stops mid-way: '(' was never closed (line 2)" in reasons_text(cut, "overall")
    assert cut.completeness == 0.3


def test_an_apology_followed_by_a_full_answer_is_not_a_refusal() -> None:
    answer = "Sorry, I can't run code here, but this will do it:\n\n" + PAIRS["codegen-slugify-good"]["answer"] * 3
    scores = _score(_spec("code_generation", PAIRS["codegen-slugify-good"]["description"]), answer)
    assert "refusal" not in reasons_text(scores, "overall")
    assert scores.overall > 0.9


# ---- consistency: the shape and language asked, and agreement with the inputs ------------------


@pytest.mark.parametrize(("pair_id", "consistency", "reason"), [
    ("codegen-token-bucket-python-good", 1.0, "code in python (parses), as asked"),
    ("codegen-go-reverse-good", 1.0, "code in go, as asked"),
    ("codegen-sql-top-customers-good", 1.0, "code in sql, as asked"),
    ("codegen-go-reverse-python-given", 0.1, "written in python; asked: go"),
    ("codegen-parse-duration-syntax-error", 0.2, "its Python does not parse: expected ':' (line 1)"),
    ("codegen-slugify-off-topic", 0.0, "code asked for, none given"),
    ("design-token-bucket-android", 0.3, "its code is java, the task's language is python"),
])
def test_consistency_is_the_code_asked_for_in_the_language_asked(pair_id: str, consistency: float,
                                                                 reason: str) -> None:
    scores = pair_scores(pair_id)
    assert scores.consistency == consistency
    assert scores.reasons["consistency"][0] == reason


def test_a_review_that_names_the_code_it_reviews_agrees_with_it_and_one_that_does_not_does_not() -> None:
    named = pair_scores("review-rate-limiter-good")
    generic = pair_scores("review-hallucinated-javascript")
    assert named.consistency > 0.85
    assert "mentions 6 of the 7 names in task implement's code (allow, capacity, rate, tokens, last)" \
        in reasons_text(named, "consistency")
    assert generic.consistency == 0.3
    assert "mentions 0 of the 7 names in task implement's code (none)" in reasons_text(generic, "consistency")


def test_tests_for_the_wrong_api_disagree_with_the_code_given() -> None:
    right, wrong = pair_scores("testing-token-bucket-good"), pair_scores("testing-token-bucket-wrong-api")
    assert right.consistency > 0.9 > 0.4 > wrong.consistency
    assert wrong.overall < 0.5 < 0.9 < right.overall


def test_a_summary_that_says_what_its_source_does_not_is_held_to_its_faithfulness() -> None:
    scores = pair_scores("summary-event-sourcing-hallucinated")
    assert scores.accuracy < 0.1
    assert "2 of its 22 content words are in what it summarises (9%)" in reasons_text(scores, "accuracy")


# ---- completeness, efficiency, maintainability --------------------------------------------------


def test_completeness_counts_the_tests_written() -> None:
    one, many = pair_scores("testing-parse-duration-one-case"), pair_scores("testing-parse-duration-good")
    assert (one.completeness, many.completeness) == (0.55, 1.0)
    assert "1 assertion(s) or case(s): x0.55" in reasons_text(one, "completeness")


def test_completeness_wants_the_part_an_agent_type_s_brief_asks_for() -> None:
    scores = pair_scores("docs-token-bucket-thin")
    assert scores.completeness == 0.8
    assert "no an example, which a documentation answer gives: x0.8" in reasons_text(scores, "completeness")


@pytest.mark.parametrize(
    ("share_of_limit", "efficiency"),
    [(0.0, 1.0), (0.05, 1.0), (0.1, 1.0), (0.325, 0.8), (0.55, 0.6), (0.775, 0.4), (1.0, 0.2), (3.0, 0.2)],
)
def test_efficiency_falls_linearly_from_10_percent_to_the_limit(share_of_limit: float, efficiency: float) -> None:
    assert _score(_spec("echo"), "x", duration_ms=share_of_limit * 60_000, timeout_seconds=60).efficiency == efficiency


def test_efficiency_without_a_time_limit_is_full() -> None:
    assert _score(_spec("echo"), "x", duration_ms=10**9, timeout_seconds=0).efficiency == 1.0


def test_maintainability_falls_with_complexity_nesting_and_lint_findings() -> None:
    clean = pair_scores("codegen-csv-json-good", lint=lint_answer_blocking(PAIRS["codegen-csv-json-good"]["answer"]))
    tangled_answer = PAIRS["codegen-csv-json-tangled"]["answer"]
    tangled = pair_scores("codegen-csv-json-tangled", lint=lint_answer_blocking(tangled_answer))
    assert clean.maintainability > 0.95 > 0.8 > tangled.maintainability
    why = reasons_text(tangled, "maintainability")
    assert "complexity 8 (main), nesting 7" in why
    assert "E722 line 21: Do not use bare `except`" in why


def test_ruff_is_found_and_its_findings_name_rule_and_line() -> None:
    assert ruff_binary() is not None  # a dev dependency: the lint part is measured in the tests
    assert lint_blocking("import os\n") == ["F401 line 1: `os` imported but unused"]
    assert lint_blocking("def f():\n    return 1\n") == []


def test_unlinted_python_says_so_and_scores_on_its_other_parts() -> None:
    scores = pair_scores("codegen-lru-good", lint=None)
    assert "not linted (no ruff findings given: ruff is not installed)" in reasons_text(scores, "maintainability")
    assert pair_scores("codegen-lru-good", lint=["F401 line 1: `os` imported but unused"]).maintainability \
        < scores.maintainability


def test_prose_has_no_code_to_maintain() -> None:
    scores = pair_scores("summary-meeting-good")
    assert (scores.maintainability, scores.reasons["maintainability"]) == (1.0, ["no code"])


# ---- accuracy from outcome checks ---------------------------------------------------------------


def test_outcome_checks_are_evidence_in_accuracy() -> None:
    pair = PAIRS["codegen-token-bucket-python-mediocre"]
    spec = _spec(pair["type"], pair["description"], pair["parameters"])
    checks = [events.CheckResult(check="parses:python", passed=True), events.CheckResult(check="tests", passed=True,
                                                                                           reason="4 passed")]
    plain, tested = _score(spec, pair["answer"]), _score(spec, pair["answer"], checks=checks)
    assert plain.accuracy < 0.9 == tested.accuracy
    assert tested.reasons["accuracy"][-3:] == ["check parses:python passed", "check tests passed: 4 passed",
                                               "its tests pass: at least 0.9"]
    failed = _score(spec, pair["answer"], outcome_passed=False, outcome_problems=["too short", "missing 'lock'"])
    assert failed.accuracy == round(plain.accuracy * 0.5, 4)
    assert "outcome check failed (too short; missing 'lock'): -50%" in reasons_text(failed, "accuracy")


# ---- what is not a model's answer keeps the plain rules -----------------------------------------


@pytest.mark.parametrize(
    ("case", "spec", "output", "expected"),
    [
        ("noop with no output", _spec("noop"), None, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("sleep with empty output", _spec("sleep", "wait a while"), "", (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("echo of a short text", _spec("echo", "Explain sorting."), "Sorting puts things in order.",
         (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("empty echo", _spec("echo", "Explain sorting."), "  ", (1.0, 0.0, 1.0, 1.0, 1.0, 0.8)),
        ("a quarter of the asked minimum length", _spec("echo", min_length=100), "x" * 25,
         (1.0, 0.25, 1.0, 1.0, 1.0, 0.85)),
        ("structured output", _spec("python", "d" * 800), {"answer": 4}, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ("json asked, fenced", _spec("echo", json=True), 'Here:\n```json\n{"a": 1}\n```',
         (1.0, 1.0, 0.5, 1.0, 1.0, 0.925)),
        ("json asked, prose given", _spec("echo", json=True), "no json", (1.0, 1.0, 0.0, 1.0, 1.0, 0.85)),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else "",
)
def test_outputs_no_model_wrote_are_scored_on_form_only(case: str, spec: events.TaskSpec, output: Any,
                                                        expected: tuple[float, ...]) -> None:
    scores = _score(spec, output)
    assert tuple(getattr(scores, f) for f in FIELDS) == expected, case


def test_an_empty_model_answer_scores_zero() -> None:
    scores = _score(_spec("llm", "Explain sorting."), "  ")
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

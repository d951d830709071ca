"""The assessor's scores: each dimension on real answers (most from the labelled set in
tests/data/quality/), in the order a reviewer would put them; the marks that cap an answer
(off-topic, refused, repeated, cut off, wrong language, not parsing); the judge's seam; the
assessor giving the scorer the outputs a task was given; and the labelled set's shape. How
well the scores rank the whole set is bench/quality_eval.py's to measure, not a test's."""

from __future__ import annotations

import pytest

import events
from actors._checks import ruff_binary
from actors._quality import lint_answer_blocking, lint_blocking

from .quality_pairs import PAIRS, pair_scores, reasons_text, scored, task_spec, verdict

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
    spec = task_spec("code_generation", "Write a Python function slugify(text) that turns a title into a URL slug.")
    named = scored(spec, "```python\ndef slugify(text):\n    return text.lower().replace(' ', '-')\n```")
    unnamed = scored(spec, "```python\ndef make_url(value):\n    return value.lower()\n```")
    assert named.accuracy == 1.0  # names the one identifier the task names
    assert unnamed.accuracy == 0.25
    assert "at most 0.25: none of them" in reasons_text(unnamed, "accuracy")


def test_a_judge_s_relevance_replaces_the_lexical_one() -> None:
    off_topic = PAIRS["research-jitter-off-topic"]
    spec = task_spec("research", off_topic["description"])
    judged = scored(spec, off_topic["answer"], judged=verdict(0.9))
    lexical = scored(spec, off_topic["answer"])
    assert (judged.accuracy, lexical.accuracy) == (0.9, 0.2083)
    assert judged.reasons["accuracy"] == ["relevance 0.90, judged by local/judge", "answers the question"]
    assert judged.overall > 0.9 > lexical.overall


def test_a_judge_s_correctness_and_completeness_bound_accuracy_and_completeness() -> None:
    """The case lexical evidence cannot see: a review, on the right code, of defects it does not have."""
    wrong = PAIRS["held-review-retry-wrong"]
    spec = task_spec(wrong["type"], wrong["description"], dependencies=list(wrong["inputs"]))
    unjudged = scored(spec, wrong["answer"], inputs=wrong["inputs"])
    judged = scored(spec, wrong["answer"], inputs=wrong["inputs"], judged=verdict(0.9, correctness=0.1,
                                                                                   completeness=0.5))
    assert unjudged.overall > 0.85
    assert (judged.accuracy, judged.completeness) == (0.1, 0.5)
    assert judged.reasons["accuracy"][-1] == "at most 0.10: the judge's correctness"
    assert judged.reasons["completeness"][-1] == "at most 0.50: the judge's completeness"
    assert judged.overall < 0.7  # below QUALITY_THRESHOLD: a re-run on a stronger model


def test_a_judge_cannot_lift_a_refusal() -> None:
    refused = PAIRS["analysis-refused"]
    spec = task_spec(refused["type"], refused["description"], dependencies=list(refused["inputs"]))
    scores = scored(spec, refused["answer"], inputs=refused["inputs"], judged=verdict(1.0))
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
    spec = task_spec("code_generation", "Write a Python function area(r) for a circle.")
    cut = scored(spec, "def area(r):\n    return 3.14159 * (r * r")
    assert "its Python stops mid-way: '(' was never closed (line 2)" in reasons_text(cut, "overall")
    assert cut.completeness == 0.3


def test_an_apology_followed_by_a_full_answer_is_not_a_refusal() -> None:
    answer = "Sorry, I can't run code here, but this will do it:\n\n" + PAIRS["codegen-slugify-good"]["answer"] * 3
    scores = scored(task_spec("code_generation", PAIRS["codegen-slugify-good"]["description"]), answer)
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
    scores = scored(task_spec("echo"), "x", duration_ms=share_of_limit * 60_000, timeout_seconds=60)
    assert scores.efficiency == efficiency


def test_efficiency_without_a_time_limit_is_full() -> None:
    assert scored(task_spec("echo"), "x", duration_ms=10**9, timeout_seconds=0).efficiency == 1.0


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
    spec = task_spec(pair["type"], pair["description"], pair["parameters"])
    checks = [events.CheckResult(check="parses:python", passed=True), events.CheckResult(check="tests", passed=True,
                                                                                           reason="4 passed")]
    plain, tested = scored(spec, pair["answer"]), scored(spec, pair["answer"], checks=checks)
    assert plain.accuracy < 0.9 == tested.accuracy
    assert tested.reasons["accuracy"][-3:] == ["check parses:python passed", "check tests passed: 4 passed",
                                               "its tests pass: at least 0.9"]
    failed = scored(spec, pair["answer"], outcome_passed=False, outcome_problems=["too short", "missing 'lock'"])
    assert failed.accuracy == round(plain.accuracy * 0.5, 4)
    assert "outcome check failed (too short; missing 'lock'): -50%" in reasons_text(failed, "accuracy")

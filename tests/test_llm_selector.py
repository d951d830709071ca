"""The matcher and the selector (`llm.Selector`): which models may take a task, and which one a
call goes to, with its reason; on the shipped catalogue and a tracker fed by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import llm
from actors import load_settings

OPENAI_DEFAULT, GROQ_DEFAULT = "openai/gpt-4o-mini", "groq/llama-3.1-8b-instant"


def selector(tmp_path: Path, *providers: str, **env: str) -> llm.Selector:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path), **{f"{p}_API_KEY": "k" for p in providers}, **env},
                             dotenv=None)
    models = llm.Models(settings, llm.Catalogue.load())
    client_pools = {name: llm.KeyPool(endpoint) for name, endpoint in models.endpoints.items() if endpoint.keys}
    return llm.Selector(models, llm.Tracker(), client_pools)


def need(task_type: str = "analysis", **fields: object) -> llm.Need:
    return llm.Need(task_type=task_type, **fields)  # type: ignore[arg-type]


def scored(tracker: llm.Tracker, model: str, task_type: str, *scores: float) -> None:
    for score in scores:
        tracker.assessed(model, task_type, score)


def test_unmeasured_a_task_naming_no_model_gets_the_first_configured_providers_default(tmp_path: Path) -> None:
    choice = selector(tmp_path, "OPENAI", "GROQ").choose(need())
    assert choice.target.ref == OPENAI_DEFAULT
    assert choice.candidates[:1] == (OPENAI_DEFAULT,)
    assert GROQ_DEFAULT in choice.candidates
    assert choice.reason == f"{OPENAI_DEFAULT}: not measured yet for analysis"


def test_measured_quality_moves_the_choice_and_says_so(tmp_path: Path) -> None:
    chooser = selector(tmp_path, "OPENAI", "GROQ")
    scored(chooser.tracker, GROQ_DEFAULT, "analysis", 0.9, 0.95, 0.9, 0.92)
    scored(chooser.tracker, OPENAI_DEFAULT, "analysis", 0.5, 0.4)
    choice = chooser.choose(need())
    assert choice.target.ref == GROQ_DEFAULT
    assert choice.reason == f"{GROQ_DEFAULT}: for analysis: quality 0.92 over 4 scored"
    # ... at that task type only: another type is not measured, so the catalogue's order holds there.
    assert chooser.choose(need("summarization")).target.ref == OPENAI_DEFAULT


def test_a_model_that_fails_often_ranks_below_one_that_does_not(tmp_path: Path) -> None:
    chooser = selector(tmp_path, "OPENAI", "GROQ")
    for outcome in ("server_error", "timeout", "ok", "server_error"):
        chooser.tracker.called(OPENAI_DEFAULT, "analysis", outcome, 0.0, 0.001)
    chooser.tracker.called(GROQ_DEFAULT, "analysis", "rate_limited", 0.0, None)  # a 429 is the key's, not the model's
    choice = chooser.choose(need())
    assert choice.target.ref == GROQ_DEFAULT
    assert chooser.tracker.get(OPENAI_DEFAULT, "analysis").failure_rate == 0.75  # type: ignore[union-attr]
    assert chooser.tracker.get(GROQ_DEFAULT, "analysis") is None


def test_peoples_ratings_move_the_choice_for_their_agent_only(tmp_path: Path) -> None:
    chooser = selector(tmp_path, "OPENAI", "GROQ")
    for _ in range(3):
        chooser.tracker.rated("analyst", GROQ_DEFAULT, "analysis", 1.0)
        chooser.tracker.rated("analyst", OPENAI_DEFAULT, "analysis", 0.1)
    assert chooser.choose(need(agent="analyst")).target.ref == GROQ_DEFAULT
    assert chooser.choose(need(agent="researcher")).target.ref == OPENAI_DEFAULT


def test_a_retry_falls_back_to_the_next_candidate_and_says_from_which(tmp_path: Path) -> None:
    choice = selector(tmp_path, "OPENAI", "GROQ").choose(need(tried=(OPENAI_DEFAULT,)))
    assert choice.target.ref != OPENAI_DEFAULT
    assert choice.reason.startswith(f"falls back from {OPENAI_DEFAULT} (attempt 1 failed); {choice.target.ref}: ")


def test_a_model_the_task_names_is_its_only_candidate_with_its_own_fallbacks(tmp_path: Path) -> None:
    chooser = selector(tmp_path, "OPENAI", "GROQ")
    pinned = need(model="gpt-4o", named_by="the task", pinned=True)
    assert chooser.choose(pinned).candidates == ("openai/gpt-4o",)
    again = chooser.choose(need(model="gpt-4o", named_by="the task", pinned=True, tried=("openai/gpt-4o",)))
    assert again.target.ref == "openai/gpt-4o"
    assert again.reason.startswith("tried before (openai/gpt-4o), and no other candidate is left; ")
    listed = need(model="gpt-4o", named_by="the task", pinned=True, fallbacks=("groq/llama-3.3-70b-versatile",),
                  tried=("openai/gpt-4o",))
    assert chooser.choose(listed).target.ref == "groq/llama-3.3-70b-versatile"


def test_a_model_named_by_the_agent_comes_first_whatever_is_measured(tmp_path: Path) -> None:
    chooser = selector(tmp_path, "OPENAI", "GROQ")
    scored(chooser.tracker, OPENAI_DEFAULT, "analysis", 0.95, 0.95, 0.95)
    choice = chooser.choose(need(model=GROQ_DEFAULT, named_by="agent analyst"))
    assert choice.target.ref == GROQ_DEFAULT
    assert choice.reason == f"{GROQ_DEFAULT}, named by agent analyst: not measured yet for analysis"
    assert choice.candidates[1] == OPENAI_DEFAULT  # the best measured next, for a fallback


def test_a_quality_rerun_takes_the_strongest_candidate_not_tried(tmp_path: Path) -> None:
    chooser = selector(tmp_path, "GROQ")
    choice = chooser.choose(need(tried=(GROQ_DEFAULT,), upgrade="quality 0.41 of attempt 1 is below 0.7"))
    # Unmeasured, the dearer model is taken for the stronger.
    assert choice.target.ref == "groq/llama-3.3-70b-versatile"
    assert choice.reason.startswith("quality 0.41 of attempt 1 is below 0.7; groq/llama-3.3-70b-versatile is the "
                                    "strongest candidate not tried: ")


def test_a_code_task_gets_a_model_the_catalogue_says_writes_code(tmp_path: Path) -> None:
    chooser = selector(tmp_path, "COHERE")  # its default, command-r, has no code capability listed
    assert chooser.choose(need("code_generation")).target.ref == "cohere/command-a-03-2025"
    assert chooser.choose(need("summarization")).target.ref == "cohere/command-r-08-2024"


def test_a_provider_whose_keys_all_rest_is_passed_over_while_another_has_one_free(tmp_path: Path) -> None:
    chooser = selector(tmp_path, "OPENAI", "GROQ")
    chooser.pools["openai"].apply(_RateLimited("openai:0"))
    choice = chooser.choose(need())
    assert choice.target.ref == GROQ_DEFAULT
    assert f"{OPENAI_DEFAULT} has no key free for" in choice.reason


def test_a_budget_refusal_moves_to_a_cheaper_candidate_or_says_none_fits(tmp_path: Path) -> None:
    chooser = selector(tmp_path, "OPENAI")
    price = {t.ref: (t.info.price_out if t.info else 0) for t in chooser.candidates(need())}
    cheap = chooser.choose(need(), exclude=("openai/gpt-4o",), fits=lambda t: price[t.ref] < 10.0,
                           because="downgraded from openai/gpt-4o: the budget cannot cover this call")
    assert price[cheap.target.ref] < 10.0
    assert cheap.reason.startswith("downgraded from openai/gpt-4o: the budget cannot cover this call; ")
    with pytest.raises(llm.LLMError) as refused:
        chooser.choose(need(), fits=lambda t: False, because="downgraded from openai/gpt-4o: no budget")
    assert (refused.value.kind, refused.value.message) == (
        "budget", "downgraded from openai/gpt-4o: no budget; no other candidate model fits")


def test_a_named_model_no_configured_provider_serves_is_refused_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(llm.LLMError) as refused:
        selector(tmp_path, "GROQ").choose(need(model="gpt-4o", named_by="the task", pinned=True))
    assert refused.value.message == ("model 'gpt-4o' is served by openai, and none of them is configured: set "
                                     "OPENAI_API_KEY or OPENAI_API_KEY_1, OPENAI_API_KEY_2, ...")


class _RateLimited:
    """A 429 on one key, as the pools fold it (`llm.CallRecord`)."""

    def __init__(self, key_id: str) -> None:
        self.ts = datetime.now(UTC)
        self.provider, self.model, self.key_id = "openai", "gpt-4o-mini", key_id
        self.outcome, self.error, self.retry_after_seconds = "rate_limited", "slow down", 30.0
        self.tokens_in = self.tokens_out = 0
        self.cost_usd = None

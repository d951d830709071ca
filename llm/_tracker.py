"""The performance tracker: quality, latency, failure rate and cost per model and task type,
and people's ratings per agent, task type and model. A fold over what calls recorded, what
the assessor scored and what people said (the executor folds the stream into one; `ymera
models` folds the log into another); no I/O.

Failures counted are the model's own (a server error, a timeout, an answer cut off or
filtered, a malformed body): a 429, a refused key or a budget says nothing about the model.
"""

from __future__ import annotations

import statistics
from collections import deque

import msgspec

from ._providers import PROVIDERS

__all__ = ["KEY_ANSWERED", "MODEL_FAILURES", "Measure", "Tracker", "model_ref"]

# The call outcomes that count against a model (the rest are about keys, budgets or requests).
MODEL_FAILURES = frozenset({"server_error", "timeout", "cut_off", "content_filtered"})
# The call outcomes that say a key works (an answer came): what tells a refused key works again.
KEY_ANSWERED = frozenset({"ok", "cut_off", "content_filtered", "context_too_long", "bad_request"})


def model_ref(named: str | None, called: str | None = None) -> str | None:
    """The ref of a model a score or rating names: the name itself if it is a ref (its first part a
    known provider; some providers' own names hold a '/', `meta-llama/...`), else the ref of the
    call that produced it, else the name as it is."""
    if named:
        provider, _, rest = named.partition("/")
        if rest and provider in PROVIDERS:
            return named
    return called or named or None


_LATENCIES_KEPT = 200  # the latest calls' latencies a median is taken over


class Measure(msgspec.Struct, kw_only=True):
    """What is known of one model at one task type (`task_type` "" for every type together)."""

    model: str  # "<provider>/<name>"
    task_type: str = ""
    calls: int = 0
    failures: int = 0
    cost_usd: float = 0.0
    scored: int = 0
    quality_sum: float = 0.0
    rated: int = 0
    rating_sum: float = 0.0
    latencies: deque[float] = msgspec.field(default_factory=lambda: deque(maxlen=_LATENCIES_KEPT))

    @property
    def quality(self) -> float | None:
        """The assessor's mean score, None before any."""
        return self.quality_sum / self.scored if self.scored else None

    @property
    def rating(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

    @property
    def latency_ms(self) -> float | None:
        """The median of the latest calls' latencies."""
        return statistics.median(self.latencies) if self.latencies else None

    @property
    def cost_per_call(self) -> float | None:
        return self.cost_usd / self.calls if self.calls else None


class Tracker:
    """Measures by (model, task type), and ratings by (agent, task type, model)."""

    def __init__(self) -> None:
        self.measures: dict[tuple[str, str], Measure] = {}
        self.ratings: dict[tuple[str, str, str], Measure] = {}

    def called(self, model: str, task_type: str, outcome: str, latency_ms: float, cost_usd: float | None) -> None:
        """One call's record (a call refused before it was made, a 429, counts no latency)."""
        if outcome in ("rate_limited", "auth", "quota", "budget"):
            return
        measure = self._measure(model, task_type)
        measure.calls += 1
        measure.failures += outcome in MODEL_FAILURES
        measure.cost_usd += cost_usd or 0.0
        measure.latencies.append(latency_ms)

    def assessed(self, model: str, task_type: str, quality: float) -> None:
        measure = self._measure(model, task_type)
        measure.scored += 1
        measure.quality_sum += quality

    def rated(self, agent: str | None, model: str, task_type: str, rating: float) -> None:
        """A person's rating of a result: for the model at the task type, and for the agent."""
        measure = self._measure(model, task_type)
        measure.rated += 1
        measure.rating_sum += rating
        key = (agent or "", task_type, model)
        preference = self.ratings.get(key)
        if preference is None:
            preference = self.ratings[key] = Measure(model=model, task_type=task_type)
        preference.rated += 1
        preference.rating_sum += rating

    def get(self, model: str, task_type: str) -> Measure | None:
        return self.measures.get((model, task_type))

    def preference(self, agent: str | None, model: str, task_type: str) -> Measure | None:
        """People's ratings of `model`'s results for `agent` at `task_type`."""
        return self.ratings.get((agent or "", task_type, model))

    def by_model(self) -> list[Measure]:
        """Every model's measures over all task types together, most called first."""
        totals: dict[str, Measure] = {}
        for measure in self.measures.values():
            total = totals.get(measure.model)
            if total is None:
                total = totals[measure.model] = Measure(model=measure.model)
            total.calls += measure.calls
            total.failures += measure.failures
            total.cost_usd += measure.cost_usd
            total.scored += measure.scored
            total.quality_sum += measure.quality_sum
            total.rated += measure.rated
            total.rating_sum += measure.rating_sum
            total.latencies.extend(measure.latencies)
        return sorted(totals.values(), key=lambda m: (-m.calls, m.model))

    def _measure(self, model: str, task_type: str) -> Measure:
        measure = self.measures.get((model, task_type))
        if measure is None:
            measure = self.measures[(model, task_type)] = Measure(model=model, task_type=task_type)
        return measure

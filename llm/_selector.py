"""The agent-model matcher and the selector: which models may take a task, best first, and
which one a call goes to, with the reason in words (the executor records it as a
`ModelChosen`). No I/O: what it knows of the models is the catalogue, the tracker (a fold
of the log) and the key pools.

The matcher: a model the task names is its only candidate, with the task's own
`fallback_models` after it; otherwise the model its agent or the settings name comes first,
then every catalogue model of a configured provider that has the capability its task type
needs (code, for code generation, review and tests; every model when none has it).

The selector ranks the rest by estimated quality (the assessor's scores and people's ratings
for this agent, drawn towards `PRIOR_QUALITY` while there are few), less a penalty for the
model's failures and latency; a model not measured yet ranks by the catalogue (its
provider's default first, then the cheaper). It takes the first candidate with a key free
now; a retry takes the first its earlier attempts did not run on; a quality re-run the
strongest of those; a call a budget refused, the first that costs less.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

import msgspec

from ._catalogue import ModelInfo
from ._errors import LLMError
from ._keys import KeyPool
from ._models import Models, Target
from ._providers import LOCAL
from ._tracker import Measure, Tracker

__all__ = ["CAPABILITY", "PRIOR_QUALITY", "Choice", "Need", "Selector"]

# The capability a task type needs of its model, where the catalogue lists it.
CAPABILITY: Mapping[str, str] = {"code_generation": "code", "code_review": "code", "testing": "code"}
PRIOR_QUALITY = 0.6  # what a model not measured yet is taken to score
PRIOR_WEIGHT = 3.0  # ... counted as this many scores: three results move an estimate halfway
RATING_WEIGHT = 2.0  # a person's rating counts as two of the assessor's scores
FAILURE_PENALTY = 0.5  # per unit of failure rate
LATENCY_PENALTY = 0.02  # per second of median latency ...
MAX_LATENCY_PENALTY = 0.1  # ... at most


class Need(msgspec.Struct, frozen=True, kw_only=True):
    """What a call needs: its task type and agent, the model named for it and by whom, and
    what came of the task's earlier attempts."""

    task_type: str
    agent: str | None = None
    model: str | None = None  # named by the task, its agent or the settings
    named_by: str = ""  # "the task", "agent <name>", "YMERA_LLM_MODEL"
    pinned: bool = False  # named by the task itself: its candidates are it and `fallbacks`
    fallbacks: tuple[str, ...] = ()
    base_url: str | None = None  # the task's own endpoint: its model is the only candidate
    tried: tuple[str, ...] = ()  # the models earlier attempts ran on, oldest first
    upgrade: str | None = None  # why this attempt must run on a stronger model


class Choice(msgspec.Struct, frozen=True):
    target: Target
    candidates: tuple[str, ...]  # ranked, best first
    reason: str


class Selector:
    def __init__(self, models: Models, tracker: Tracker | None = None,
                 pools: Mapping[str, KeyPool] | None = None) -> None:
        self.models = models
        self.tracker = tracker if tracker is not None else Tracker()
        self.pools = pools if pools is not None else {}

    def candidates(self, need: Need) -> list[Target]:
        """The matcher: the models that may take `need`, the named one first, the rest ranked.
        An `LLMError` (bad_request) when the named model cannot be called here."""
        return self._ranked(need)[1]

    def _ranked(self, need: Need) -> tuple[str | None, list[Target]]:
        """The candidates, and the ref of the model `need` names (None: none named)."""
        resolve = self.models.resolve
        if need.base_url:
            target = resolve(need.model, need.base_url)
            return target.ref, [target]
        catalogued = self._catalogued(need.task_type)
        named = resolve(need.model) if need.model or not catalogued else None
        ref = named.ref if named is not None and need.model else None
        if need.pinned:
            assert named is not None
            return ref, _unique([named, *(resolve(model) for model in need.fallbacks)])
        return ref, _unique([named, *sorted(catalogued, key=lambda t: self._order(t, need))])

    def choose(self, need: Need, *, exclude: Collection[str] = (),
               fits: Callable[[Target], bool] | None = None, because: str = "") -> Choice:
        """The target of a call for `need`, among the candidates not in `exclude` that `fits`
        (a budget's room); `because` says why an earlier choice was set aside."""
        named, candidates = self._ranked(need)
        ranked = [t for t in candidates if t.ref not in exclude]
        refs = tuple(t.ref for t in ranked)
        if fits is not None:
            ranked = [t for t in ranked if fits(t)]
        if not ranked:
            raise LLMError("budget" if fits is not None else "bad_request",
                           f"{because}; no other candidate model fits" if because else
                           "no candidate model is left for this task", retryable=False)
        if need.upgrade:
            return self._upgrade(need, ranked, refs, named)
        fresh = [t for t in ranked if t.ref not in need.tried] or ranked
        waits = {t.ref: self._free_in(t) for t in fresh}
        free = [t for t in fresh if waits[t.ref] == 0.0]
        target = (free or fresh)[0]
        words = [self._why(target, need, named)]
        if need.tried and target.ref not in need.tried:
            words.insert(0, f"falls back from {need.tried[-1]} (attempt {len(need.tried)} failed)")
        elif need.tried:
            words.insert(0, f"tried before ({', '.join(need.tried)}), and no other candidate is left")
        skipped = [t for t in fresh[:fresh.index(target)] if t not in free]
        if skipped:
            words.append("; ".join(f"{t.ref} has no key free for {waits[t.ref]:.3g}s" for t in skipped))
        if because:
            words.insert(0, because)
        return Choice(target, refs, "; ".join(words))

    # ---- how it decides ------------------------------------------------------------------------

    def _upgrade(self, need: Need, ranked: list[Target], refs: tuple[str, ...], named: str | None) -> Choice:
        """A quality re-run: the strongest candidate the task has not run on (estimated quality,
        then price: before measurements, the dearer model is taken for the stronger)."""
        fresh = [t for t in ranked if t.ref not in need.tried]
        if not fresh:
            return Choice(ranked[0], refs, f"{need.upgrade}; no other candidate model: {ranked[0].ref} again")
        target = max(fresh, key=lambda t: (self.quality(t, need), _price(t.info)))
        return Choice(target, refs, f"{need.upgrade}; {target.ref} is the strongest candidate not tried: "
                                    f"{self._why(target, need, named)}")

    def quality(self, target: Target, need: Need) -> float:
        """Estimated quality of `target` at `need`'s task type for its agent: the assessor's
        scores and people's ratings, drawn towards PRIOR_QUALITY while there are few."""
        total, weight = PRIOR_QUALITY * PRIOR_WEIGHT, PRIOR_WEIGHT
        measure = self.tracker.get(target.ref, need.task_type)
        if measure is not None:
            total, weight = total + measure.quality_sum, weight + measure.scored
        rated = self.tracker.preference(need.agent, target.ref, need.task_type)
        if rated is not None:
            total, weight = total + RATING_WEIGHT * rated.rating_sum, weight + RATING_WEIGHT * rated.rated
        return total / weight

    def score(self, target: Target, need: Need) -> float:
        measure = self.tracker.get(target.ref, need.task_type)
        score = self.quality(target, need)
        if measure is not None:
            score -= FAILURE_PENALTY * measure.failure_rate
            latency = measure.latency_ms
            if latency is not None:
                score -= min(MAX_LATENCY_PENALTY, LATENCY_PENALTY * latency / 1000)
        return score

    def _order(self, target: Target, need: Need) -> tuple[float, bool, int, float]:
        info = target.info
        default = info is not None and info.default
        return (-round(self.score(target, need), 2), not default, self._providers().index(target.endpoint.name),
                _price(info))

    def _why(self, target: Target, need: Need, named: str | None) -> str:
        head = f"{target.ref}, named by {need.named_by}" if target.ref == named and need.named_by else target.ref
        return f"{head}: {_measured(self.tracker.get(target.ref, need.task_type), need.task_type)}"

    def _free_in(self, target: Target) -> float:
        """Seconds until a key of `target`'s provider may be called for it (0: now)."""
        pool = self.pools.get(target.endpoint.name)
        if pool is None:
            return 0.0
        try:
            pool.choose(target.info, target.model)
        except LLMError as exc:
            return exc.retry_after if exc.retry_after is not None else float("inf")
        return 0.0

    def _providers(self) -> list[str]:
        return list(self.models.endpoints)

    def _catalogued(self, task_type: str | None = None) -> list[Target]:
        """Every catalogue model of a configured provider (the local endpoint's named model
        stands for it), those with the capability `task_type` needs when any has it."""
        endpoints = self.models.endpoints
        found = [Target(endpoints[info.provider], info.name, info)
                 for info in self.models.catalogue.models.values() if info.provider in endpoints
                 and info.provider != LOCAL]
        wanted = CAPABILITY.get(task_type or "")
        able = [t for t in found if wanted is not None and t.info is not None and wanted in t.info.capabilities]
        return able or found


def _measured(measure: Measure | None, task_type: str) -> str:
    if measure is None or not (measure.calls or measure.scored or measure.rated):
        return f"not measured yet for {task_type}" if task_type else "not measured yet"
    parts = []
    if measure.quality is not None:
        parts.append(f"quality {measure.quality:.2f} over {measure.scored} scored")
    if measure.rating is not None:
        parts.append(f"rated {measure.rating:.2f} by {measure.rated}")
    if measure.calls:
        parts.append(f"{measure.failure_rate:.0%} of {measure.calls} calls failed")
    if measure.latency_ms is not None:
        parts.append(f"median {measure.latency_ms:.0f} ms")
    return f"for {task_type}: " + ", ".join(parts) if task_type else ", ".join(parts)


def _price(info: ModelInfo | None) -> float:
    if info is None or info.price_out is None:
        return 0.0
    return info.price_out


def _unique(targets: Iterable[Target | None]) -> list[Target]:
    seen: set[str] = set()
    out = []
    for target in targets:
        if target is not None and target.ref not in seen:
            seen.add(target.ref)
            out.append(target)
    return out

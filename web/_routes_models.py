"""`GET /api/models` and `GET /api/keys`, from projection "model_calls" (folded by the view).

The projection folds every model call (`LLMCalled`), score (`TaskAssessed`) and rating
(`FeedbackGiven`) into an `llm.Tracker`, as `ymera models` does, and each key's health: calls,
failures, its last outcome, and whether its last refusal (an `auth` outcome) came after its last
answer. Keys are shown by id (`<provider>:<n>`) only, never a key's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar import get

import llm
from events import Event, FeedbackGiven, LLMCalled, TaskAssessed

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from ._view import View

__all__ = ["KeyHealth", "ModelCalls", "ModelCallsState", "model_routes"]


@dataclass
class KeyHealth:
    calls: int = 0
    failures: int = 0  # calls that got no answer, or a refusal
    last_outcome: str | None = None
    last_call: float | None = None  # event time, epoch seconds
    last_refused: float | None = None  # its last `auth` outcome
    last_answered: float | None = None


@dataclass
class ModelCallsState:
    tracker: llm.Tracker = field(default_factory=llm.Tracker)
    keys: dict[str, KeyHealth] = field(default_factory=dict)
    # (run, task) -> the ref and task type of its last call, for a score or rating that names no
    # provider or no task type
    called: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


class ModelCalls:
    """Projection "model_calls": the model calls, scores and ratings, and each key's health."""

    name = "model_calls"
    by_reference = frozenset({"LLMCalled.response"})

    def initial(self) -> ModelCallsState:
        return ModelCallsState()

    def apply(self, state: ModelCallsState, event: Event) -> ModelCallsState:
        if isinstance(event, LLMCalled):
            ref = f"{event.provider}/{event.model}"
            state.called[(event.run_id, event.task_id)] = (ref, event.task_type)
            if event.replay_of is None:
                state.tracker.called(ref, event.task_type, event.outcome, event.latency_ms, event.cost_usd)
            if event.key_id is not None:
                key = state.keys.setdefault(event.key_id, KeyHealth())
                ts = event.ts.timestamp()
                key.calls += 1
                key.failures += event.outcome not in llm.KEY_ANSWERED
                key.last_outcome, key.last_call = event.outcome, ts
                if event.outcome == "auth":
                    key.last_refused = ts
                elif event.outcome in llm.KEY_ANSWERED:
                    key.last_answered = ts
        elif isinstance(event, TaskAssessed | FeedbackGiven):
            # As `ymera models` rates (ymera/_models.py): the model a score names, else its call's;
            # its task type, else its call's.
            call_ref, call_type = state.called.get((event.run_id, event.task_id), (None, ""))
            rated, task_type = llm.model_ref(event.model, call_ref), event.task_type or call_type
            if rated is None:
                return state
            if isinstance(event, TaskAssessed):
                if event.replay_of is None:
                    state.tracker.assessed(rated, task_type, event.overall)
            else:
                state.tracker.rated(event.agent, rated, task_type, event.rating)
        return state


def _measure(m: llm.Measure) -> dict[str, Any]:
    return {"model": m.model, "calls": m.calls, "failures": m.failures, "failure_rate": round(m.failure_rate, 4),
            "latency_ms": m.latency_ms, "cost_usd": round(m.cost_usd, 10), "quality": m.quality,
            "scored": m.scored, "rating": m.rating, "rated": m.rated}


def _key(key_id: str, health: KeyHealth | None) -> dict[str, Any]:
    health = health or KeyHealth()
    refused = health.last_refused is not None and (health.last_answered or 0.0) <= health.last_refused
    state = "unused" if not health.calls else "refused" if refused else "ok"
    return {"key": key_id, "state": state, "calls": health.calls, "failures": health.failures,
            "last_outcome": health.last_outcome, "last_call": health.last_call}


def model_routes(view: View) -> list[HTTPRouteHandler]:
    models = llm.Models(view.settings, llm.Catalogue.load(view.settings.models_file))
    configured = list(models.endpoints)

    def calls() -> ModelCallsState:
        state = view.states["model_calls"]
        assert isinstance(state, ModelCallsState)
        return state

    @get("/api/models", summary="Every model: calls, failures, latency, cost, quality, ratings",
         description="Each model seen in the log, most called first, then the catalogue's models of the configured "
                     "providers that were not called; `by_task_type` splits each model's measures by task type.")
    async def list_models() -> dict[str, Any]:
        tracker = calls().tracker
        seen = tracker.by_model()
        known = {m.model for m in seen}
        catalogue = [llm.Measure(model=info.ref) for info in models.catalogue.models.values()
                     if info.provider in models.endpoints and info.ref not in known]
        by_type = sorted((m for (_, task_type), m in tracker.measures.items() if task_type),
                         key=lambda m: (m.model, m.task_type))
        return {"models": [{**_measure(m), "configured": m.model.partition("/")[0] in configured}
                           for m in seen + catalogue],
                "by_task_type": [{**_measure(m), "task_type": m.task_type} for m in by_type],
                "configured": configured, "as_of_seq": view.last_seq}

    @get("/api/keys", summary="Provider keys by id, with their health (admin)", opt={"role": "admin"},
         description="Each configured provider's keys by id (`<provider>:<n>`; never a key), and keys the log names "
                     "that this server's settings do not: `state` is `ok`, `refused` (its last refusal came after its "
                     "last answer) or `unused`.")
    async def list_keys() -> dict[str, Any]:
        keys = calls().keys
        providers: dict[str, list[dict[str, Any]]] = {
            name: [_key(key_id, keys.get(key_id)) for key_id, _ in endpoint.keys]
            for name, endpoint in models.endpoints.items()}
        listed = {k["key"] for ks in providers.values() for k in ks}
        others = [_key(key_id, health) for key_id, health in sorted(keys.items()) if key_id not in listed]
        return {"providers": providers, "unconfigured": others, "as_of_seq": view.last_seq}

    return [list_models, list_keys]

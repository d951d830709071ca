"""`GET /metrics` for Prometheus: the view's "prometheus" projection (web/_prometheus.py), and where
the view, the stream, the store and each actor's durable consumer stand, asked at each scrape.

The route renders a registry of its own (never prometheus-client's global one) whose one
collector reads the projection's state when Prometheus scrapes; the gauges of the moment
(`Live`) are read from the bus and the log just before, in the request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder

from bus import BusError, ConsumerState
from store import SCORES, StoreError

from ._fresh import REFRESH_SECONDS, Fresh
from ._health import consumer_states
from ._prometheus import (
    DURATION_BUCKETS,
    OTHER,
    QUALITY_BUCKETS,
    SERIES_KEPT,
    Histogram,
    Prometheus,
    PrometheusState,
)

if TYPE_CHECKING:
    from ._view import View

__all__ = [
    "OTHER",
    "SERIES_KEPT",
    "Histogram",
    "Live",
    "Prometheus",
    "PrometheusState",
    "ViewCollector",
    "live",
    "metrics_routes",
]



@dataclass
class Live:
    """What a scrape asks of the bus and the log, as it happens: None where nothing answered."""

    stream_last_seq: int | None = None
    store_head_seq: int | None = None
    consumers: dict[str, ConsumerState] = field(default_factory=dict)


async def live(view: View) -> Live:
    """Where the stream, the store and each actor's durable consumer stand now."""
    out = Live()
    with contextlib.suppress(StoreError):
        out.store_head_seq = (await view.log.head())[0]
    if view.bus is None:
        return out
    try:
        out.stream_last_seq = (await view.bus.stream_state()).last_seq
        out.consumers = await consumer_states(view.bus)
    except BusError:
        return out
    return out


class ViewCollector:
    """A prometheus-client collector over the view's "prometheus" state and the latest `Live`."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.live = Live()

    def collect(self) -> Iterator[Metric]:
        state = self.view.states["prometheus"]
        assert isinstance(state, PrometheusState)
        yield from _projected(state)
        yield from _where(self.view.last_seq, self.live)


def _projected(state: PrometheusState) -> Iterator[Metric]:
    yield _gauge("ymera_workflow_runs", "Workflow runs in flight, by state.", ("state",),
                 _one(state.workflows))
    yield _counter("ymera_workflow_runs_ended", "Workflow runs ended, by how they ended.", ("state",),
                   _one(state.workflows_ended))
    yield _gauge("ymera_tasks", "Tasks of the workflow runs in flight, by state.", ("state",),
                 _one(state.tasks))
    yield _counter("ymera_tasks_ended", "Tasks of ended workflow runs, by final state.", ("state",),
                   _one(state.tasks_ended))
    yield _counter("ymera_task_attempts", "Task attempts ended, by task kind and outcome "
                   "(succeeded, failed, timed_out).", ("kind", "outcome"), state.attempts.items())
    yield _counter("ymera_task_retries", "Task retries scheduled.", (), [((), state.retries)])
    yield _counter("ymera_task_late_results", "Results of attempts that had already been timed out "
                   "(never a task's result).", (), [((), state.late_results)])
    durations = HistogramMetricFamily("ymera_task_duration_seconds", "Duration of successful task attempts, "
                                      "by task kind and model.", labels=("kind", "model"))
    for key, hist in sorted(state.durations.items()):
        durations.add_metric(key, hist.cumulative(DURATION_BUCKETS), hist.total)
    yield durations
    yield _counter("ymera_llm_calls", "LLM calls, by provider, model and outcome.", ("provider", "model", "outcome"),
                   state.llm_calls.items())
    yield _counter("ymera_llm_tokens", "LLM tokens, by provider, model and direction (input, output).",
                   ("provider", "model", "direction"), state.llm_tokens.items())
    yield _counter("ymera_llm_cost_usd", "Cost of LLM calls in US dollars at the model catalogue's price (every "
                   "call, those of failed attempts too), by provider and model.", ("provider", "model"),
                   state.llm_cost_usd.items())
    yield _counter("ymera_task_cost_usd", "Cost of successful task attempts in US dollars (the task's own price where "
                   "it sets one: what the dashboard's cost adds up), by task kind and model.", ("kind", "model"),
                   state.task_cost_usd.items())
    quality = SummaryMetricFamily("ymera_quality_score", "Quality scores of assessed tasks (0 to 1), by dimension: "
                                  "sum and count (mean = sum / count).", labels=("dimension",))
    for name in SCORES:
        quality.add_metric((name,), state.assessed, state.quality_sum[name])
    yield quality
    overall = HistogramMetricFamily("ymera_quality_overall_score", "Overall quality score of assessed tasks (0 to 1).")
    overall.add_metric((), state.overall.cumulative(QUALITY_BUCKETS), state.overall.total)
    yield overall
    open_alerts: dict[tuple[str, str], int] = {}
    for _, alert, severity in state.alerts_open.values():
        open_alerts[(alert, severity)] = open_alerts.get((alert, severity), 0) + 1
    yield _gauge("ymera_alerts_open", "Alerts raised and not resolved, by alert and severity.", ("alert", "severity"),
                 open_alerts.items())
    yield _counter("ymera_alerts_raised", "Alerts raised, by alert and severity.", ("alert", "severity"),
                   state.alerts_raised.items())
    yield _counter("ymera_security_findings", "Security findings, by stage (input, edge, output), type and severity.",
                   ("stage", "type", "severity"), state.findings.items())
    yield _counter("ymera_tool_refusals", "Tool calls refused or stopped at a limit, by tool and kind.",
                   ("tool", "kind"), state.tool_refusals.items())
    yield _counter("ymera_messages_rejected", "Messages the store writer rejected, by kind (malformed, untrusted).",
                   ("kind",), _one(state.rejected))


def _where(view_seq: int, live: Live) -> Iterator[Metric]:
    yield GaugeMetricFamily("ymera_view_seq", "The last stream seq this server's view has folded.", value=view_seq)
    yield GaugeMetricFamily("ymera_bus_up", "1 if NATS answered this scrape, else 0.",
                            value=float(live.stream_last_seq is not None))
    if live.stream_last_seq is not None:
        yield GaugeMetricFamily("ymera_stream_last_seq", "The last seq in the YMERA stream.",
                                value=live.stream_last_seq)
        yield GaugeMetricFamily("ymera_view_lag_events", "Events in the stream this server's view has not folded yet.",
                                value=max(0, live.stream_last_seq - view_seq))
    if live.store_head_seq is not None:
        yield GaugeMetricFamily("ymera_store_head_seq", "The last seq the event log (SQLite) holds.",
                                value=live.store_head_seq)
    consumers = sorted(live.consumers.items())
    yield _gauge("ymera_consumer_pending_messages", "Messages each actor's durable consumer has not delivered yet "
                 "(its queue depth, how far it lags the stream).", ("consumer",),
                 [((name,), s.num_pending) for name, s in consumers])
    yield _gauge("ymera_consumer_ack_pending_messages", "Messages delivered to each actor's durable consumer and "
                 "not acknowledged yet (in flight).", ("consumer",),
                 [((name,), s.num_ack_pending) for name, s in consumers])


def _one(counts: dict[str, int]) -> list[tuple[tuple[str], int]]:
    return [((key,), n) for key, n in counts.items()]


def _gauge(name: str, doc: str, labels: tuple[str, ...], values: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values):
        family.add_metric(key, value)
    return family


def _counter(name: str, doc: str, labels: tuple[str, ...], values: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values):
        family.add_metric(key, value)
    return family


def _encoder(accept: str) -> tuple[Callable[[CollectorRegistry], bytes], str]:
    """The format `accept` asks for (prometheus-client's choice) and its media type. An Accept header
    prometheus-client cannot read (a version that is no version) gets the text format."""
    try:
        encode, content_type = choose_encoder(accept)
    except (TypeError, ValueError):
        encode, content_type = generate_latest, CONTENT_TYPE_PLAIN_0_0_4
    return encode, _uncharset(content_type)


def _uncharset(content_type: str) -> str:
    """The content type without its charset, which Litestar adds to a text/* type itself (twice, else)."""
    return "; ".join(p for p in content_type.split("; ") if not p.startswith("charset="))


def metrics_routes(view: View, refresh: float = REFRESH_SECONDS) -> list[HTTPRouteHandler]:
    """`GET /metrics`: the Prometheus text format, over a registry of its own (not the global one),
    rendered at most every `refresh` seconds per format while events arrive (web/_fresh.py: the
    consumers' state is a request to NATS for each actor)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = ViewCollector(view)
    registry.register(collector)
    fresh = Fresh(lambda: view.last_seq, refresh)

    @get("/metrics", media_type=CONTENT_TYPE_PLAIN_0_0_4, tags=["metrics"], summary="Prometheus metrics",
         description="Workflow runs and tasks by state, task durations, LLM calls, tokens and cost, quality, alerts, "
         "security findings, and where the view, stream, store and consumers stand (docs/web.md). The Prometheus "
         "text format, or OpenMetrics when the Accept header asks for it.")
    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        encode, media_type = _encoder(request.headers.get("accept", ""))

        async def render() -> bytes:
            collector.live = await live(view)
            return encode(registry)

        body = await fresh.get(media_type, render, same_seq_same_answer=False)
        return Response(body, media_type=media_type)

    return [metrics]

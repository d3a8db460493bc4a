"""The metrics API against prometheus-client's own parser: what the core calls is what a scrape reads, no id ever
becomes a label, and metrics that are off record nothing."""

from __future__ import annotations

import asyncio
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.errors import (
    BudgetExhausted,
    Cancelled,
    CircuitOpen,
    CoolingDown,
    GenerationFailed,
    ImageBlocked,
    InvalidRequest,
    ModerationBlocked,
    OperatorError,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    ShuttingDown,
    TextOnlyAnswer,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.ops.metrics import DOORS, OTHER, OUTCOMES, Metrics, outcome_of


def scrape(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    """sample name -> [(labels, value)], as Prometheus would read the exposition."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    for got, number in scrape(metrics).get(name, []):
        if got == labels:
            return number
    return None


def test_request_counter_moves_with_each_call():
    metrics = Metrics(models=["gemini-2.5-flash-image"], providers=["gemini"])
    labels = dict(door="imagine", model="gemini-2.5-flash-image", provider="gemini", outcome="delivered")
    assert value(metrics, "imagebot_requests_total", **labels) is None
    metrics.request_finished(**labels)
    metrics.request_finished(**labels)
    metrics.request_finished(**{**labels, "door": "reply", "outcome": "quota"})
    assert value(metrics, "imagebot_requests_total", **labels) == 2
    assert value(metrics, "imagebot_requests_total", **{**labels, "door": "reply", "outcome": "quota"}) == 1


def test_every_metric_of_the_issue_is_exposed_with_its_labels():
    m = Metrics()
    m.queue_depth(3)
    m.queue_wait(4.2)
    m.upstream_call(provider="gemini", model="gemini-3-pro-image", seconds=7.5)
    m.upstream_rate_limited(provider="gemini")
    m.circuit_state(provider="gemini", state="open")
    m.spent(model="gemini-3-pro-image", provider="gemini", credits=4, usd=0.134)
    m.moderation_blocked(tier="local", category="gore")
    m.discord_rate_limited(scope="user")
    m.gateway_latency(0.081)
    m.loop_lag(0.002)
    model = {"model": "gemini-3-pro-image", "provider": "gemini"}
    assert value(m, "imagebot_queue_depth") == 3
    assert value(m, "imagebot_queue_wait_seconds_count") == 1
    assert value(m, "imagebot_queue_wait_seconds_sum") == pytest.approx(4.2)
    assert value(m, "imagebot_queue_wait_seconds_bucket", le="5.0") == 1
    assert value(m, "imagebot_queue_wait_seconds_bucket", le="2.0") == 0
    assert value(m, "imagebot_upstream_latency_seconds_count", **model) == 1
    assert value(m, "imagebot_upstream_rate_limited_total", provider="gemini") == 1
    assert value(m, "imagebot_upstream_circuit_state", provider="gemini") == 2
    assert value(m, "imagebot_credits_spent_total", **model) == 4
    assert value(m, "imagebot_cost_usd_total", **model) == pytest.approx(0.134)
    assert value(m, "imagebot_moderation_blocks_total", tier="local", category="gore") == 1
    assert value(m, "imagebot_discord_rate_limited_total", scope="user") == 1
    assert value(m, "imagebot_gateway_latency_seconds") == pytest.approx(0.081)
    assert value(m, "imagebot_event_loop_lag_seconds") == pytest.approx(0.002)
    m.circuit_state(provider="gemini", state="closed")
    assert value(m, "imagebot_upstream_circuit_state", provider="gemini") == 0


def test_ids_never_become_labels():
    m = Metrics()
    snowflake = "1234567890123456789"
    m.request_finished(door=snowflake, model=snowflake, provider="gemini", outcome="delivered")
    m.moderation_blocked(tier="local", category="user 1234567890123456789")
    m.request_finished(door="imagine", model="gemini-2.5-flash-image", provider=snowflake, outcome=snowflake)
    values = {v for samples in scrape(m).values() for labels, _ in samples for v in labels.values()}
    assert not [v for v in values if re.search(r"\d{15,}", v)], values
    assert value(m, "imagebot_requests_total", door=OTHER, model=OTHER, provider="gemini", outcome="delivered") == 1
    assert value(m, "imagebot_moderation_blocks_total", tier="local", category=OTHER) == 1


def test_open_label_sets_stop_growing():
    m = Metrics()
    for n in range(100):
        m.moderation_blocked(tier="local", category=f"made_up_{n}")
    categories = {labels["category"] for labels, _ in scrape(m)["imagebot_moderation_blocks_total"]}
    assert len(categories) <= m.category.max_values + 1 and OTHER in categories
    total = sum(v for _, v in scrape(m)["imagebot_moderation_blocks_total"])
    assert total == 100  # nothing lost, only folded into "other"


def test_fixed_sets_are_what_the_core_can_say():
    assert set(DOORS) >= {"imagine", "edit", "reply", "thread", "reroll", "cli"}
    m = Metrics()
    for outcome in OUTCOMES:
        m.request_finished(door="edit", model="m", provider="p", outcome=outcome)
    assert {labels["outcome"] for labels, _ in scrape(m)["imagebot_requests_total"]} == set(OUTCOMES)


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (None, "delivered"),
        (ModerationBlocked("gore"), "blocked"),
        (CoolingDown(0), "blocked"),
        (ImageBlocked("IMAGE_SAFETY"), "blocked"),
        (QuotaExceeded(10, 0), "quota"),
        (BudgetExhausted("server", 0), "budget"),
        (QueueFull(3), "queue_full"),
        (InvalidRequest("empty"), "invalid"),
        (Cancelled(), "cancelled"),
        (asyncio.CancelledError(), "cancelled"),
        (ShuttingDown(), "shutdown"),
        (UpstreamTimeout(), "timeout"),
        (RateLimited("slow down", 5), "rate_limited"),
        (UpstreamUnavailable(), "unavailable"),
        (CircuitOpen(0), "unavailable"),
        (GenerationFailed("OTHER"), "upstream_error"),
        (TextOnlyAnswer("no"), "upstream_error"),
        (OperatorError("key"), "upstream_error"),
        (KeyError("x"), "internal"),
    ],
)
def test_outcome_of_each_ending(exc, outcome):
    assert outcome_of(exc) == outcome
    assert outcome in OUTCOMES


def test_two_instances_do_not_share_numbers():
    a, b = Metrics(), Metrics()
    a.request_finished(door="imagine", model="m", provider="p", outcome="delivered")
    assert value(a, "imagebot_requests_total", door="imagine", model="m", provider="p", outcome="delivered") == 1
    assert "imagebot_requests_total" not in scrape(b)


def test_metrics_off_record_nothing_and_accept_every_call():
    m = Metrics.disabled()
    m.request_finished(door="imagine", model="m", provider="p", outcome="delivered")
    m.queue_depth(5)
    m.queue_wait(1)
    m.upstream_call(provider="p", model="m", seconds=1)
    m.upstream_rate_limited(provider="p")
    m.circuit_state(provider="p", state="open")
    m.spent(model="m", provider="p", credits=1, usd=0.1)
    m.moderation_blocked(tier="ai", category="hate")
    m.discord_rate_limited()
    m.gateway_latency(0.1)
    assert not [name for name in scrape(m) if name.startswith("imagebot_")]

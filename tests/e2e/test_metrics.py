"""/metrics in the Prometheus text format, counting what really happened."""

from __future__ import annotations

import asyncio
import gc

import pytest
from prometheus_client.parser import text_string_to_metric_families

from codex import looplag
from tests.harness import Harness, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]


async def scrape(h: Harness) -> dict[str, float]:
    resp = await h.request("GET", "/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(resp.body):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return values


async def test_metrics_count_executions_events_and_the_pool() -> None:
    async with running_app(pool_size=1, rate_limit_execute="3/minute") as h:
        before = await scrape(h)
        assert before["codex_active_sessions"] == 0
        await h.run("x = input('? ')\nprint(x)\n", ["hello"])
        await h.run("1/0")
        await h.run("print(")  # syntax error: no sandbox
        refused = await h.request("POST", "/api/execute", {"code": "print(1)"})
        assert refused.status == 429
        await asyncio.sleep(looplag.INTERVAL * 1.5)  # at least one look at the loop since
        gc.collect()  # a full collection: the app (in this process) times it
        after = await scrape(h)
    assert after["codex_executions_total{status=ok}"] == 1
    assert after["codex_executions_total{status=runtime_error}"] == 1
    assert after["codex_executions_total{status=syntax_error}"] == 1
    assert after["codex_input_required_total"] == 1
    assert after["codex_output_bytes_total"] > 0
    assert after["codex_rate_limited_total"] == 1
    assert after["codex_pool_hits_total"] + after["codex_pool_misses_total"] == 2
    assert after["codex_sandbox_start_seconds_count"] == 2
    assert after["codex_first_output_seconds_count"] == 2
    # The loop's lag is looked at four times a second, the whole time.
    looks = "codex_event_loop_lag_seconds_count"
    assert after[looks] > before[looks]
    assert after["codex_gc_pause_seconds_count"] > before["codex_gc_pause_seconds_count"]
    assert after["codex_gc_frozen_objects"] > 1000  # what the start made, frozen

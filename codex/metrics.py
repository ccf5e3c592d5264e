"""Prometheus metrics, served at /metrics in the text format.

One registry per app (not the library's global one), so several apps in one process
(the tests) never collide. Updating a metric is a few attribute operations: nothing
here is on the per-byte path except one counter increment per frame.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from codex import looplag

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)
# What held the event loop: from a millisecond (a quiet loop) to seconds (a stall).
STALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ReadCounters(Collector):
    """Counters whose value another part owns and this one reads at scrape time (a
    ``Counter`` cannot be set from a function, and a ``Gauge`` would be typed wrong):
    each is exposed as ``<name>_total`` of type counter, created when this is."""

    def __init__(self, docs: dict[str, str]) -> None:
        self.docs = docs
        self.created = time.time()
        self.reads: dict[str, Callable[[], float]] = {name: lambda: 0.0 for name in docs}

    def describe(self) -> Iterator[Metric]:
        for name, doc in self.docs.items():
            yield CounterMetricFamily(name, doc)

    def collect(self) -> Iterator[Metric]:
        for name, doc in self.docs.items():
            yield CounterMetricFamily(name, doc, value=self.reads[name](), created=self.created)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.executions = Counter(
            "codex_executions", "Executions that finished, by verdict.", ["status"], registry=r
        )
        self.active = Gauge("codex_active_sessions", "Executions running now.", registry=r)
        self.pool_ready = Gauge("codex_pool_ready", "Prepared sandboxes waiting.", registry=r)
        self.start_latency = Histogram(
            "codex_sandbox_start_seconds",
            "From asking the runtime for a sandbox to the program being sent.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_output = Histogram(
            "codex_first_output_seconds",
            "From the execute request to the program's first output.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._stall_metrics(r)
        self.input_required = Counter(
            "codex_input_required", "input_required events announced.", registry=r
        )
        self.output_bytes = Counter(
            "codex_output_bytes", "Bytes of program output forwarded.", registry=r
        )
        self.counts = ReadCounters(
            {
                "codex_pool_hits": "Executions started from the pool.",
                "codex_pool_misses": "Executions that found the pool empty.",
                "codex_pool_paced": "Starts that waited for their network's pace.",
                "codex_rate_limited": "Requests refused by the rate limiter.",
            }
        )
        r.register(self.counts)

    def _stall_metrics(self, r: CollectorRegistry) -> None:
        """What holds the event loop beyond a session's own work: the loop's lag and
        the cyclic garbage collector (codex.looplag, codex.gcpauses)."""
        self.loop_lag = Histogram(
            "codex_event_loop_lag_seconds",
            f"How late the event loop ran a timer due every {looplag.INTERVAL:g} s: how long "
            "it was busy (every session's work shares it) when the timer fell due.",
            buckets=STALL_BUCKETS,
            registry=r,
        )
        self.gc_pause = Histogram(
            "codex_gc_pause_seconds",
            "Full collections of the cyclic garbage collector, by how long each took (wall "
            "clock: the event loop waits meanwhile).",
            buckets=STALL_BUCKETS,
            registry=r,
        )
        self.gc_frozen = Gauge(
            "codex_gc_frozen_objects",
            "Objects of the server's start that no collection walks (gc.freeze).",
            registry=r,
        )
        self.gc_frozen.set_function(gc.get_freeze_count)

    def watch(
        self,
        active: Callable[[], float],
        pool: Callable[[], tuple[int, int, int, int]],
        rate_limited: Callable[[], float],
    ) -> None:
        """Gauges and counters read at scrape time from the parts that own the numbers."""
        self.active.set_function(active)
        self.pool_ready.set_function(lambda: pool()[0])
        self.counts.reads["codex_pool_hits"] = lambda: pool()[1]
        self.counts.reads["codex_pool_misses"] = lambda: pool()[2]
        self.counts.reads["codex_pool_paced"] = lambda: pool()[3]
        self.counts.reads["codex_rate_limited"] = rate_limited

    def render(self) -> bytes:
        return generate_latest(self.registry)

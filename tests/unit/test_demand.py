"""Demand: how many ready sandboxes the next moments call for (no pool, no clock: the
times are given)."""

from __future__ import annotations

from codex.runtime.docker import demand as demand_module
from codex.runtime.docker.demand import Demand


def test_the_floor_holds_when_nothing_happens() -> None:
    d = Demand(4, 40)
    assert d.target(headroom=64, now=100.0) == 4


def test_open_pages_call_for_one_each_within_the_ceiling_and_headroom() -> None:
    d = Demand(4, 40)
    d.idle_clients = lambda: 30
    assert d.target(headroom=64, now=0.0) == 30
    d.idle_clients = lambda: 90
    assert d.target(headroom=64, now=0.0) == 40
    assert d.target(headroom=12, now=0.0) == 12
    assert d.target(headroom=-3, now=0.0) == 0


def test_the_rate_of_run_calls_for_what_arrives_before_a_refill() -> None:
    d = Demand(2, 100)
    for i in range(20):  # 20 asks within a second: 4 a second over RATE_WINDOW
        d.asked(10.0 + i / 20)
    expected = round(20 / demand_module.RATE_WINDOW * demand_module.LEAD)
    assert d.target(headroom=100, now=11.0) == expected
    # Long after, the asks have aged out, and after the linger the floor is back.
    assert d.target(headroom=100, now=11.0 + demand_module.RATE_WINDOW + d.linger + 1) == 2


def test_the_size_lingers_then_follows_demand_down() -> None:
    d = Demand(2, 50, linger=30.0)
    d.idle_clients = lambda: 40
    assert d.target(64, now=0.0) == 40
    d.idle_clients = lambda: 0
    assert d.target(64, now=29.0) == 40  # a class reading its output runs again soon
    assert d.target(64, now=31.0) == 2


def test_the_budget_holds_what_the_measured_footprint_allows_never_below_the_floor() -> None:
    d = Demand(4, 100, budget_bytes=64 << 20)
    d.idle_clients = lambda: 100
    d.footprint = 16 << 20
    assert d.target(200, now=0.0) == 4
    d.footprint = 1 << 20
    assert d.target(200, now=0.0) == 64
    d.footprint = 1 << 30  # absurd: still the floor
    assert d.target(200, now=0.0) == 4


def test_a_measurement_moves_the_footprint_smoothly() -> None:
    d = Demand(1, 1)
    start = d.footprint
    d.measured(start // 2)
    assert start // 2 < d.footprint < start
    d.measured(0)  # nothing measured: ignored
    d.measured(-5)
    assert d.footprint < start

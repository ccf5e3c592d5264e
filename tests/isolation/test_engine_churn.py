"""Engine churn from a few addresses must not starve everyone else (real Docker).

Six "addresses" (X-Forwarded-For from a trusted proxy) create and DELETE executions in
a burst while a learner at another address runs `print('hi')` and an `input()`
program. The learner's first output stays close to what it is on a quiet server,
measured in the same test, and a session cancelled before its start costs no
container.
"""

from __future__ import annotations

import asyncio
import collections
import re
import statistics
import threading
import time
from typing import Any

import jwt
import pytest

from codex.identity.credentials import LEARNER
from codex.runtime.docker.gate import share_group
from codex.runtime.docker.runtime import DockerRuntime
from tests.dockerutil import assert_gone_soon, containers_of
from tests.harness import Harness, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=180)]

ATTACKERS = [f"203.0.113.{k}" for k in range(1, 7)]
VICTIM = "198.51.100.10"
BURST = 36  # executions, created and deleted within about a second
HOLD = "input('x')\n"  # an attacker's program: would hold its container until deleted


def settings(**extra: Any) -> dict[str, Any]:
    return {
        "trusted_proxies": ("127.0.0.1",),
        "rate_limit_execute": "",
        "rate_limit_join": "",
        "pool_size": 4,
        **extra,
    }


def as_client(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def runtime_of(h: Harness) -> DockerRuntime:
    assert h.app is not None
    runtime = h.app.runtime
    assert isinstance(runtime, DockerRuntime) and runtime.pool is not None
    return runtime


def count_creates(runtime: DockerRuntime) -> list[str | None]:
    """Every container the engine is asked to create, by session id (None: pool)."""
    created: list[str | None] = []
    lock = threading.Lock()
    real = runtime.create_started

    def create_started(session_id: str | None) -> str:
        with lock:
            created.append(session_id)
        return real(session_id)

    runtime.create_started = create_started  # type: ignore[method-assign]
    return created


def record_starts(runtime: DockerRuntime) -> dict[str, float]:
    """When each session's start (warm or cold) returned, by session id."""
    started: dict[str, float] = {}
    real = runtime.start

    async def start(spec: Any) -> Any:
        execution = await real(spec)
        started[spec.session_id] = time.monotonic()
        return execution

    runtime.start = start  # type: ignore[method-assign]
    return started


def record_turns(runtime: DockerRuntime) -> collections.Counter[str]:
    """How many starts of each network went through its pace (only a heavy network's
    do, even those that find a token at once)."""
    turns: collections.Counter[str] = collections.Counter()
    assert runtime.pool is not None
    pacer = runtime.pool.pacer
    real = pacer.turn

    async def turn(key: str) -> float:
        turns[key] += 1
        return await real(key)

    pacer.turn = turn  # type: ignore[method-assign]
    return turns


async def wait_pool_full(h: Harness, timeout: float = 20) -> None:
    pool = runtime_of(h).pool
    assert pool is not None
    deadline = time.monotonic() + timeout
    while pool.ready < pool.size:
        assert time.monotonic() < deadline, f"pool has {pool.ready}"
        await asyncio.sleep(0.05)


async def learner(
    h: Harness, code: str, answers: list[str] | None = None, address: str = VICTIM
) -> tuple[float, str, str]:
    """The seed frontend's flow from `address`: (seconds from POST to first output,
    all output, status)."""
    first: list[float] = []
    async with h.client(headers=as_client(address)) as sio:
        t0 = time.monotonic()
        resp = await h.request(
            "POST",
            "/api/execute",
            {"code": code, "language": "python"},
            headers=as_client(address),
        )
        assert resp.status == 201, resp

        async def on_event(event: str, data: Any) -> None:
            if event == "output" and not first:
                first.append(time.monotonic() - t0)

        t = await h.follow(resp.body["sessionId"], answers, sio=sio, on_event=on_event)
    assert first, t.events
    return first[0], t.output, t.complete["status"]


async def churn(h: Harness, cancelled: dict[str, str]) -> None:
    """BURST executions from six addresses, each DELETEd as soon as it exists, spread
    over about one second."""

    async def one(k: int) -> None:
        await asyncio.sleep(k / BURST)
        address = ATTACKERS[k % len(ATTACKERS)]
        resp = await h.request(
            "POST", "/api/execute", {"code": HOLD, "language": "python"}, headers=as_client(address)
        )
        assert resp.status == 201, resp
        session_id = resp.body["sessionId"]
        gone = await h.request("DELETE", f"/api/sessions/{session_id}", headers=as_client(address))
        assert gone.status == 202, gone
        cancelled[session_id] = gone.body["state"]

    await asyncio.gather(*(one(k) for k in range(BURST)))


async def test_churn_from_six_addresses_does_not_starve_a_learner() -> None:
    async with running_app(**settings()) as h:
        runtime = runtime_of(h)
        await wait_pool_full(h)
        # The quiet baseline, in this same test: first output of a pool hit.
        quiet = []
        for _ in range(3):
            await wait_pool_full(h)
            latency, output, status = await learner(h, "print('hi')")
            assert output == "hi\r\n" and status == "ok"
            quiet.append(latency)
        baseline = statistics.median(quiet)
        await wait_pool_full(h)
        created = count_creates(runtime)

        cancelled: dict[str, str] = {}
        attack = asyncio.ensure_future(churn(h, cancelled))
        await asyncio.sleep(0.3)  # the burst is under way: the pool is under pressure
        loud: list[float] = []
        prompt = asyncio.ensure_future(
            learner(h, "name = input('name? ')\nprint('hello', name)\n", ["ada"])
        )
        for _ in range(3):
            latency, output, status = await learner(h, "print('hi')")
            assert output == "hi\r\n" and status == "ok", (output, status)
            loud.append(latency)
        latency, output, status = await prompt
        assert "name? " in output and "hello ada" in output and status == "ok", output
        loud.append(latency)
        await attack

        # Wide, for a shared machine (before the gate: 3.8 s); the 3x target is
        # measured by bench/hostile.py.
        bound = max(3 * baseline, 1.5)
        print(
            f"\nfirst output: quiet {[round(x, 3) for x in quiet]} s, during churn "
            f"{[round(x, 3) for x in loud]} s, bound {bound:.3f} s; pool refused "
            f"{runtime.pool.refused if runtime.pool else 0}, creates {len(created)}"
        )
        assert max(loud) <= bound, (loud, baseline)

        # Every attacker session ended cancelled and left no container behind.
        assert len(cancelled) == BURST
        for session_id in cancelled:
            body = await h.wait_finished(session_id)
            assert body["result"]["status"] == "cancelled", body
        for session_id in cancelled:
            await assert_gone_soon(session_id, within=10)
        # A session still queued for the engine when it was deleted never cost a
        # container: far fewer were created than were asked for.
        made_for_attackers = [s for s in created if s in cancelled]
        assert len(made_for_attackers) < BURST // 2, (len(made_for_attackers), cancelled)


async def test_a_session_cancelled_while_queued_creates_no_container() -> None:
    async with running_app(**settings(pool_size=0, engine_concurrency=2)) as h:
        runtime = runtime_of_any(h)
        created = count_creates(runtime)
        # Hold every slot of the engine gate, so what comes next must queue.
        release = asyncio.get_running_loop().create_future()
        blockers = [
            # One lane holds at most half the slots: a blocker per lane.
            asyncio.ensure_future(runtime.gate.run(f"someone-{k}", lambda: release))
            for k in range(runtime.gate.concurrency)
        ]
        await asyncio.sleep(0.05)
        assert runtime.gate.busy == runtime.gate.concurrency
        ids = []
        for k in range(6):
            address = ATTACKERS[k % 3]
            resp = await h.request(
                "POST", "/api/execute", {"code": HOLD}, headers=as_client(address)
            )
            assert resp.status == 201, resp
            ids.append(resp.body["sessionId"])
        await asyncio.sleep(0.05)
        assert runtime.gate.waiting == 6
        for session_id in ids:
            gone = await h.request("DELETE", f"/api/sessions/{session_id}")
            assert gone.status == 202 and gone.body["state"] == "starting", gone
        for session_id in ids:
            body = await h.wait_finished(session_id)
            assert body["result"]["status"] == "cancelled", body
        assert runtime.gate.waiting == 0
        release.set_result(None)
        await asyncio.gather(*blockers)
        await asyncio.sleep(0.2)
        assert created == []  # the engine was never asked
        assert all(not containers_of(s) for s in ids)
        # The engine path still works afterwards.
        t = await h.run("print('after')")
        assert t.output == "after\r\n"


def runtime_of_any(h: Harness) -> DockerRuntime:
    assert h.app is not None and isinstance(h.app.runtime, DockerRuntime)
    return h.app.runtime


async def test_a_network_asking_far_more_than_a_class_is_paced() -> None:
    """A network asking for more than pool_paced_after while another network asks:
    its starts, warm or cold, come at pool_paced_rate; each still runs to its end,
    and the learner at the other network is not paced meanwhile."""
    # The learner asks four times in ~2 s (its score under 3): under `after`.
    rate, after, asked = 0.5, 4, 10
    async with running_app(
        **settings(
            pool_size=2, pool_paced_rate=rate, pool_paced_after=after, pool_paced_waiting=asked
        )
    ) as h:
        runtime = runtime_of(h)
        await wait_pool_full(h)
        latency, output, status = await learner(h, "print('hi')")  # another network asked
        assert output == "hi\r\n" and status == "ok"
        started = record_starts(runtime)
        turns = record_turns(runtime)
        ids = []
        for k in range(asked):
            address = ATTACKERS[k % len(ATTACKERS)]
            resp = await h.request(
                "POST", "/api/execute", {"code": "print(1)"}, headers=as_client(address)
            )
            assert resp.status == 201, resp
            ids.append(resp.body["sessionId"])
        loud = []
        for _ in range(3):  # the learner, while the attacker's starts wait their pace
            await asyncio.sleep(0.5)
            latency, output, status = await learner(h, "print('hi')")
            assert output == "hi\r\n" and status == "ok", (output, status)
            loud.append(latency)
        for session_id in ids:
            body = await h.wait_finished(session_id, timeout=60)
            assert body["result"]["status"] == "ok", body
        assert runtime.pool is not None
        times = sorted(started[s] for s in ids)
        print(f"\nattacker starts at {[round(t - times[0], 2) for t in times]} s")
        # Its first asks are not yet heavy (its score under `after`), then the pacer's
        # one saved token; the rest one per 1/rate seconds (less a margin for a busy
        # machine's clock). Unpaced, all of them start within a second or two.
        paced = asked - after - 1
        assert runtime.pool.pacer.paced >= paced
        assert times[-1] - times[0] >= 0.8 * paced / rate, times
        # The learner's network never went through the pace (a machine busy with the
        # attacker's starts may still make one of its runs slow: no bound on time).
        assert turns[share_group(VICTIM)] == 0 and turns[share_group(ATTACKERS[0])] > 0
        assert max(loud) <= 5, loud
        metrics = await h.request("GET", "/metrics")
        counted = re.search(r"^codex_pool_paced_total (\S+)$", metrics.body, re.M)
        assert counted and float(counted.group(1)) >= paced, metrics.body[:2000]


async def test_a_paced_network_cannot_fill_max_sessions_with_waiting_starts() -> None:
    """Beyond pool_paced_waiting starts waiting for their pace, the network's new
    executions are refused (429, Retry-After) instead of each holding a place in
    max_sessions; a learner of another network still starts at once, not queued."""
    rate, after, queue, tried = 0.5, 3, 3, 14
    async with running_app(
        **settings(
            pool_size=2,
            pool_paced_rate=rate,
            pool_paced_after=after,
            pool_paced_waiting=queue,
            max_sessions=12,
        )
    ) as h:
        await wait_pool_full(h)
        await learner(h, "print('hi')")  # another network asked
        turns = record_turns(runtime_of(h))
        admitted: list[tuple[str, str]] = []
        refused = []
        for k in range(tried):
            address = ATTACKERS[k % len(ATTACKERS)]
            resp = await h.request(
                "POST", "/api/execute", {"code": HOLD}, headers=as_client(address)
            )
            if resp.status == 201:
                admitted.append((resp.body["sessionId"], address))
            else:
                assert resp.status == 429 and resp.body["code"] == "rate_limited", resp
                refused.append(int(resp.headers["Retry-After"]))
            await asyncio.sleep(0.05)  # its start reaches the pace before the next ask
        print(f"\nadmitted {len(admitted)}, refused {len(refused)}, retry after {refused}")
        # Unpaced ones (its score under `after`), the saved token, then `queue` waiting
        # (a margin of two for a slow machine's starts); no more hold places.
        assert len(admitted) <= after + 1 + queue + 2, admitted
        assert len(refused) >= tried - (after + 1 + queue + 2) and min(refused) >= 1
        latency, output, status = await learner(h, "print('hi')")
        assert output == "hi\r\n" and status == "ok" and latency <= 5, (latency, output)
        assert turns[share_group(VICTIM)] == 0, turns  # never paced, nor refused
        for session_id, address in admitted:
            gone = await h.request(
                "DELETE", f"/api/sessions/{session_id}", headers=as_client(address)
            )
            assert gone.status == 202, gone
        for session_id, _ in admitted:
            await h.wait_finished(session_id, timeout=30)


async def test_with_identity_a_learner_is_paced_and_her_neighbour_behind_one_address_not() -> None:
    """Identity on: the key is the learner. Mallory asks for far more than one person
    would (pool_paced_after_learner) from the same address as Ada; Mallory's starts
    come at pool_paced_rate, Ada's are not delayed."""
    secret = "a-long-enough-secret-for-hs256-tokens!!"

    def bearer(sub: str) -> dict[str, str]:
        claims = {"sub": sub, "exp": int(time.time()) + 600}
        return {"Authorization": f"Bearer {jwt.encode(claims, secret, 'HS256')}"}

    rate, after, asked = 0.5, 4, 9
    async with running_app(
        **settings(
            pool_size=2,
            pool_paced_rate=rate,
            pool_paced_after_learner=after,
            pool_paced_waiting=asked,
        ),
        token_secret=secret,
        max_sessions_per_ip=64,
    ) as h:
        runtime = runtime_of(h)
        await wait_pool_full(h)
        ada, mallory = bearer("ada"), bearer("mallory")

        async def run(who: dict[str, str]) -> float:
            t0 = time.monotonic()
            resp = await h.request(
                "POST", "/api/execute?wait=true", {"code": "print('hi')"}, headers=who
            )
            assert resp.status == 200 and resp.body["output"] == "hi\r\n", resp
            return time.monotonic() - t0

        await run(ada)  # another learner asked
        started = record_starts(runtime)
        turns = record_turns(runtime)
        flood = asyncio.gather(*(run(mallory) for _ in range(asked)))
        loud = []
        for _ in range(3):
            await asyncio.sleep(0.5)
            loud.append(await run(ada))
        await flood
        assert len(started) == asked + 3
        times = sorted(started.values())  # Ada's three starts are among them: not paced
        print(f"\nstarts at {[round(t - times[0], 2) for t in times]} s; ada {loud}")
        paced = asked - after - 1
        assert times[-1] - times[0] >= 0.8 * paced / rate, times
        assert turns[f"{LEARNER}ada"] == 0 and turns[f"{LEARNER}mallory"] > 0, turns
        assert max(loud) <= 5, loud

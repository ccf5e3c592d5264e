"""The settings of capacity: how many programs run at once, the warm pool that follows
demand, the engine's fair admission path and the queue beyond max_sessions. A base of
codex.config.Settings, declared here to keep each module small."""

from __future__ import annotations

from dataclasses import dataclass

from codex.config_request import setting


@dataclass(frozen=True)
class CapacitySettings:
    pool_size: int = setting(
        4,
        "The pool's floor: started containers kept ready, each for exactly one execution "
        "(0 turns the pool off); pool plus running executions never exceed max_sessions.",
    )
    max_sessions: int = setting(
        64,
        "Executions that may run at once; beyond that they wait in the fair queue "
        "(queue_max), first come first served.",
    )
    engine_concurrency: int = setting(
        4,
        "Container engine operations (a sandbox's create + start + exec, a removal) run "
        "at once (a lane holds at most half); more wait in one "
        "fair queue, a lane per client network served in turn, pool refills first, so "
        "one network's churn delays mostly itself.",
    )
    pool_share_window: float = setting(
        10.0,
        "Seconds an address that took a pooled sandbox counts as a recent taker: while "
        "other addresses use the pool too and at most half of it is ready, a recent "
        "taker starts cold (through the fair queue), so no address empties the pool "
        "for everyone (0: no such rule).",
    )
    pool_paced_rate: float = setting(
        1.0,
        "Starts a second, warm or cold, for a network asking for more sandboxes than a "
        "class would (pool_paced_after) while other networks ask too: its further "
        "starts wait their turn, so one network's churn cannot keep the engine busy "
        "for everyone (0: never paced).",
    )
    pool_paced_after: int = setting(
        40,
        "Asks within a few seconds (the share rule's score: each ask weighs less as it "
        "ages, time constant pool_share_window / 5) beyond which a network is paced; "
        "a class behind one address pressing Run together stays under it.",
    )
    pool_paced_after_learner: int = setting(
        10,
        "pool_paced_after for a learner signed in with a token (identity on): the key is "
        "then one person, not a network, who never presses Run for a class.",
    )
    pool_paced_waiting: int = setting(
        4,
        "Starts of a paced network that may wait for their turn at once; beyond that "
        "its new executions are refused (429 with Retry-After), so that the few "
        "addresses of one network cannot fill max_sessions with waiting starts.",
    )
    pool_max: int = setting(
        48,
        "The pool's ceiling (at least pool_size): it grows ahead of demand (pages open "
        "without a running program, the recent rate of Run) up to this many ready "
        "containers, within pool_memory_mb and max_sessions.",
    )
    pool_memory_mb: int = setting(
        1024,
        "Memory the ready containers may hold together, as measured of each (its cgroup "
        "plus the engine's shim): the pool grows no further (0: no budget).",
    )
    pool_linger: float = setting(
        60.0,
        "Seconds the pool stays at the size demand last called for before it shrinks "
        "back toward pool_size.",
    )
    queue_max: int = setting(
        200,
        "Executions that may wait, first come first served, while max_sessions run; "
        "beyond that, 503 with Retry-After (0: no queue).",
    )

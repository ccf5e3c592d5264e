"""codex.tasks.Tasks: background work kept, failures logged once, shutdown awaited."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from codex.tasks import Tasks


def test_close_waits_until_cancelled_work_has_really_ended() -> None:
    """A task that cleans up after a cancel (a container create still in the thread
    pool) has finished its cleanup by the time close() returns."""
    cleaned: list[str] = []

    async def work() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)  # the cleanup itself takes time
            cleaned.append("done")

    async def scenario() -> None:
        tasks = Tasks("test")
        tasks.spawn(work())
        await asyncio.sleep(0)
        await asyncio.wait_for(tasks.close(), 5)
        assert cleaned == ["done"]
        assert len(tasks) == 0

    asyncio.run(scenario())


def test_a_failure_is_logged_once_when_it_happens(caplog: pytest.LogCaptureFixture) -> None:
    async def boom() -> None:
        raise RuntimeError("broken")

    async def scenario() -> None:
        tasks = Tasks("owner-x")
        tasks.spawn(boom())
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(tasks) == 0

    with caplog.at_level(logging.ERROR, logger="codex.tasks"):
        asyncio.run(scenario())
        gc.collect()  # asyncio's own "never retrieved" report would come now
    failures = [r for r in caplog.records if "owner-x" in r.getMessage()]
    assert len(failures) == 1
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_a_spawned_task_is_kept_while_it_runs() -> None:
    """asyncio holds tasks weakly: without an owner this one could be collected."""
    finished: list[bool] = []

    async def slow() -> None:
        await asyncio.sleep(0.05)
        finished.append(True)

    async def scenario() -> None:
        tasks = Tasks("test")
        tasks.spawn(slow())
        gc.collect()
        await asyncio.wait_for(tasks.wait(), 5)

    asyncio.run(scenario())
    assert finished == [True]


def test_cancel_forgets_its_tasks_at_once() -> None:
    async def scenario() -> None:
        tasks = Tasks("test")
        task = tasks.spawn(asyncio.sleep(30))
        tasks.cancel()
        assert len(tasks) == 0
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_awaited_work_is_not_reported_twice(caplog: pytest.LogCaptureFixture) -> None:
    """Its caller handles the failure; the owner only keeps it referenced."""

    async def boom() -> None:
        raise RuntimeError("the caller sees this")

    async def scenario() -> None:
        tasks = Tasks("engine", awaited=True)
        with pytest.raises(RuntimeError):
            await tasks.spawn(boom())

    with caplog.at_level(logging.ERROR, logger="codex.tasks"):
        asyncio.run(scenario())
    assert not caplog.records

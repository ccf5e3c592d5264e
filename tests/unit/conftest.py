"""tests/unit/ runs first in `make test` and on its own in seconds: no Docker engine, no
Node, no redis-server, no browser, no server process of its own. A test that needs one
of them is marked so and lives in tests/e2e/ (or security/, isolation/, deploy/,
browser/); one marked so here is refused at collection."""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent
NOT_UNIT = ("docker", "node", "redis", "deploy", "browser", "fault")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wrong = [
        f"{item.nodeid} ({', '.join(m for m in NOT_UNIT if item.get_closest_marker(m))})"
        for item in items
        if UNIT in Path(item.path).resolve().parents
        and any(item.get_closest_marker(m) for m in NOT_UNIT)
    ]
    if wrong:
        raise pytest.UsageError(
            "tests/unit/ is for tests without Docker, Node or servers; move these to "
            "tests/e2e/: " + "; ".join(wrong)
        )

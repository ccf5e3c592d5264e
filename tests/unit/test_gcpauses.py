"""The cyclic GC: what exists at the start is frozen once, and full collections are timed."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

from codex.gcpauses import PauseWatch

# In a process of its own: a freeze is for the life of the process.
FREEZE = textwrap.dedent(
    """
    import gc, json
    from codex.gcpauses import freeze_startup
    before = len(gc.get_objects())
    frozen = freeze_startup()
    walked = len(gc.get_objects())  # what a full collection still walks
    later = [[i] for i in range(1000)]  # allocated after the start: not frozen
    again = freeze_startup()
    print(json.dumps([before, frozen, walked, again, len(gc.get_objects())]))
    """
)


def test_what_exists_at_the_start_is_frozen_once() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FREEZE],
        cwd=Path(__file__).resolve().parents[2],  # where `codex` imports from
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    before, frozen, walked, again, after = (int(x) for x in out.stdout.strip()[1:-1].split(","))
    assert frozen > 0.8 * before > 1000, out.stdout
    assert walked < 0.05 * frozen, out.stdout  # a full collection no longer walks them
    assert again == frozen, out.stdout  # the second call freezes nothing more
    assert after >= walked + 1000, out.stdout  # and what came later is collected as before


def test_a_full_collection_is_timed_and_a_young_one_is_not() -> None:
    seen: list[float] = []
    watch = PauseWatch(seen.append)
    watch.install()
    try:
        gc.collect(0)
        gc.collect(1)
        assert seen == []
        gc.collect()
        assert len(seen) == 1 and 0 <= seen[0] < 5
    finally:
        watch.uninstall()
    gc.collect()
    assert len(seen) == 1  # uninstalled: no longer called


def test_a_second_watch_replaces_the_first() -> None:
    first: list[float] = []
    second: list[float] = []
    a, b = PauseWatch(first.append), PauseWatch(second.append)
    a.install()
    b.install()
    try:
        gc.collect()
        assert (len(first), len(second)) == (0, 1)
        a.uninstall()  # the first stopping must not remove the second's
        gc.collect()
        assert len(second) == 2
    finally:
        a.uninstall()
        b.uninstall()
    assert a._callback not in gc.callbacks and b._callback not in gc.callbacks

"""The cyclic garbage collector's pauses, shortened and measured.

A full collection (generation 2) walks every object the collector tracks while it
holds the event loop, so its pause grows with all the server holds, not with the
garbage: most of the ~70 000 objects that exist once the server has started (modules,
classes, functions, the parts wired once) live as long as the process, and every full
collection walked them again. During a churn of sessions that was 27-108 ms a
collection, every 2-3 s; with them frozen, 9-30 ms (docs/performance.md).

``freeze_startup`` (at the end of the app's start, unless ``gc_freeze`` is off)
collects once and moves what is left to the permanent generation (``gc.freeze``),
where no collection looks; what the server allocates later is
collected as before. (An object alive at the freeze that later ends up in a
reference cycle is never collected: at most once, what existed at the start.)
``PauseWatch`` times each full collection for ``codex_gc_pause_seconds``. Both act on
the process (the collector is one per interpreter): a second app in the same process
(the tests) freezes nothing more, and its watch replaces the first one's.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


def freeze_startup() -> int:
    """Freeze what exists now, once per process; the number of objects frozen."""
    if gc.get_freeze_count() == 0:
        gc.collect()  # what is garbage already must not be frozen with the rest
        gc.freeze()
    return gc.get_freeze_count()


class PauseWatch:
    """Times full collections for ``observe`` (one callback per process: the latest
    app's ``observe``, since the collector has one set of callbacks)."""

    _current: PauseWatch | None = None

    def __init__(self, observe: Callable[[float], None]) -> None:
        self.observe = observe
        self._started = 0.0

    def install(self) -> None:
        previous = PauseWatch._current
        if previous is not None and previous._callback in gc.callbacks:
            gc.callbacks.remove(previous._callback)
        gc.callbacks.append(self._callback)
        PauseWatch._current = self

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        if PauseWatch._current is self:
            PauseWatch._current = None

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return  # the young collections are short, and far too many to time
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self.observe(time.perf_counter() - self._started)
            self._started = 0.0

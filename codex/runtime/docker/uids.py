"""A uid of its own for every live sandbox, from a range that is no host user's.

Kernel limits counted per uid (inotify instances and watches, POSIX message queue
bytes, pending signals, the keyring, RLIMIT_NPROC) are shared by every process of a
uid on the host, containers included, unless user namespaces are in use. Sandboxes
that all ran as uid 1000 shared those budgets with each other and with the host's
first real user. Here each sandbox runs as a uid (and gid) no other live sandbox
has, from ``sandbox_uid_base`` upwards, far above any login or directory user.

Each server takes a random block of BLOCK uids within SPAN of the base, so several
servers sharing one engine (``redis_url``) are unlikely to meet; a block already in
use by a managed container the server can see is avoided.
"""

from __future__ import annotations

import heapq
import random
import threading
from collections.abc import Iterable

from codex.errors import SandboxError

BLOCK = 4096  # uids per server: far more than max_sessions + pool_size
SPAN = 1 << 24  # the blocks of all servers lie within base .. base + SPAN


class UidAllocator:
    def __init__(self, base: int, in_use: Iterable[int] = (), rng: random.Random | None = None):
        taken = set(in_use)
        rng = rng or random.SystemRandom()
        blocks = list(range(SPAN // BLOCK))
        rng.shuffle(blocks)
        busy = {(uid - base) // BLOCK for uid in taken if base <= uid < base + SPAN}
        block = next((b for b in blocks if b not in busy), blocks[0])
        self.first = base + block * BLOCK
        self._free = [self.first + i for i in range(BLOCK)]
        heapq.heapify(self._free)
        self._live: set[int] = set()
        self._lock = threading.Lock()  # taken in the engine's worker threads

    def take(self) -> int:
        with self._lock:
            if not self._free:
                raise SandboxError("no sandbox uid is free (too many live sandboxes)")
            uid = heapq.heappop(self._free)
            self._live.add(uid)
            return uid

    def release(self, uid: int) -> None:
        with self._lock:
            if uid in self._live:
                self._live.discard(uid)
                heapq.heappush(self._free, uid)

    @property
    def live(self) -> int:
        return len(self._live)

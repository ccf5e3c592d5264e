"""The pool's share rule: no network empties the warm pool for everyone.

Takes are counted per network (a /24, or a /56 for IPv6: see share_group) over the last
``window`` seconds. A network new to the pool always gets one; so does one within its
share (half the pool) or while more than half the pool is ready. Otherwise, and always
for the last ready sandbox, it goes to a network only if no other network that asked
lately has asked less, recently (asks weigh less as they age): a burst from one network
leaves the rest for the others. A learner alone on the server is never refused.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from codex.runtime.docker.gate import share_group

MAX_COUNTED_TAKES = 256  # takes counted per network and window
REMEMBERED_TAKERS = 4096  # addresses whose last take is remembered (oldest forgotten)


class ShareRule:
    def __init__(self, window: float) -> None:
        self.window = window
        # network -> when it last asked for a sandbox; network -> its recent takes.
        self._asked: OrderedDict[str, float] = OrderedDict()
        self._took: dict[str, deque[float]] = {}
        self._asks: dict[str, deque[float]] = {}  # the same for every ask

    def took(self, client: str, now: float) -> None:
        client = share_group(client)
        takes = self._took.get(client)
        if takes is None:
            takes = self._took[client] = deque(maxlen=MAX_COUNTED_TAKES)
        takes.append(now)

    def asked(self, client: str, now: float) -> None:
        """Count an ask (may_take counts its own): demand, granted or not."""
        client = share_group(client)
        self._asked[client] = now
        self._asked.move_to_end(client)
        asks = self._asks.get(client)
        if asks is None:
            asks = self._asks[client] = deque(maxlen=MAX_COUNTED_TAKES)
        asks.append(now)
        while self._asked and (
            len(self._asked) > REMEMBERED_TAKERS
            or next(iter(self._asked.values())) < now - self.window
        ):
            gone, _ = self._asked.popitem(last=False)
            self._took.pop(gone, None)
            self._asks.pop(gone, None)

    def heavy(self, client: str, now: float, asks: float) -> bool:
        """Has `client`'s network asked for `asks` or more sandboxes lately (its score)
        while other networks asked too? More than a class pressing Run together."""
        if self.window <= 0:
            return False  # no share rule, no score (and no pace)
        group = share_group(client)
        return len(self._asked) > 1 and group in self._asked and self.score(group, now) >= asks

    def may_take(
        self, client: str, now: float, ready: int, size: int, *, counted: bool = False
    ) -> bool:
        """May `client` take one of `ready` sandboxes of a pool filling to `size`?
        Counts the ask, unless `counted` (asked() already did)."""
        if not counted:
            self.asked(client, now)
        return self._decide(share_group(client), now, ready, size)

    def _decide(self, client: str, now: float, ready: int, size: int) -> bool:
        window = self.window
        if window <= 0:
            return True
        takes = self._took.get(client)
        while takes and takes[0] < now - window:
            takes.popleft()
        if not takes or len(self._asked) == 1:
            return True  # new to the pool, or alone here: nobody to be fair to
        mine = self.score(client, now)
        least = min(self.score(g, now) for g in self._asked if g != client)
        if ready <= 1:
            return mine <= least  # the last one goes to the least served
        if len(takes) < max(1, size // 2) or ready > size // 2:
            return True  # within its share, or plenty left
        return mine <= least

    def score(self, group: str, now: float) -> float:
        """Recent demand (asks, granted or not), each weighing less as it ages (time
        constant share_window / 5): a learner who ran three programs over the last
        seconds weighs far less than a burst of thirty in the last second."""
        takes = self._asks.get(group) or ()
        tau = self.window / 5
        return sum(math.exp((t - now) / tau) for t in takes if t >= now - self.window)

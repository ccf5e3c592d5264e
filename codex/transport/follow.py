"""One client following one session's log: the replay first, then live entries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from codex.eventlog import INPUT_REQUIRED, OUTPUT, Entry
from codex.sessions import Session

Send = Callable[[list[Entry]], Awaitable[None]]


async def follow(session: Session, send: Send, *, include_echo: bool) -> None:
    """Deliver the session's entries to ``send`` in order until the session completes.

    ``include_echo`` is for terminal views, which show what the terminal echoed;
    event views (the seed frontend echoes answers itself) leave it out. A past
    ``input_required`` is replayed only if the program is still waiting on it.
    """
    log = session.log
    replay_until = log.next_seq
    cursor = log.first_seq
    while True:
        entries = log.since(cursor)
        if not entries:
            if log.closed:
                return
            await log.wait_beyond(cursor)
            continue
        cursor = entries[-1].seq + 1
        batch = [
            e
            for e in entries
            if not (e.kind == OUTPUT and e.echo and not include_echo)
            and not (e.kind == INPUT_REQUIRED and e.seq < replay_until and e is not session.waiting)
        ]
        if batch:
            await send(batch)


def merge_output(entries: list[Entry], limit: int) -> list[tuple[str, str | dict[str, object]]]:
    """Consecutive output entries joined into messages of at most ``limit`` characters;
    other entries pass through. Returns (kind, text-or-payload) pairs."""
    out: list[tuple[str, str | dict[str, object]]] = []
    buf: list[str] = []
    size = 0
    for e in entries:
        if e.kind == OUTPUT:
            if size + len(e.text) > limit and buf:
                out.append((OUTPUT, "".join(buf)))
                buf, size = [], 0
            buf.append(e.text)
            size += len(e.text)
            continue
        if buf:
            out.append((OUTPUT, "".join(buf)))
            buf, size = [], 0
        out.append((e.kind, e.payload))
    if buf:
        out.append((OUTPUT, "".join(buf)))
    return out

"""One client following one session's log: the replay first, then live entries.

Flow control (docs/terminal.md): every follower records how far it has delivered. The
oldest follower of a session controls it: when it falls more than
``Session.HIGH_WATER`` chars behind, the session stops reading the program's terminal
until it catches up, and the engine's buffers push back on the program. Any other
follower that falls more than ``VIEWER_MAX_LAG`` behind skips ahead (with a notice)
instead of holding anyone back. Either way what the server holds is the session's one
bounded log, never a per-client copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from codex.sessions.eventlog import INPUT_REQUIRED, OUTPUT, Entry, Follower
from codex.sessions.session import Session
from codex.wire import QUEUE_POSITION, STDOUT

Send = Callable[[list[Entry]], Awaitable[None]]

VIEWER_MAX_LAG = 1024 * 1024  # chars a viewer may trail before it skips ahead
VIEWER_RESUME = 64 * 1024  # chars of recent output a skipping viewer still gets


async def follow(session: Session, send: Send, *, include_echo: bool) -> None:
    """Deliver the session's entries to ``send`` in order until the session completes.

    ``include_echo`` is for terminal views, which show what the terminal echoed;
    event views (the seed frontend echoes answers itself) leave it out. A past
    ``input_required`` is replayed only if the program is still waiting on it, and
    only the current place of a queued execution is sent (none once it started).
    """
    log = session.log
    me = Follower()
    session.attach(me)
    try:
        replay_until = log.next_seq
        cursor = log.first_seq
        clean_start = include_echo and log.first_seq > 0
        while True:
            entries = log.since(cursor)
            if not entries:
                if log.closed:
                    return
                await log.wait_beyond(cursor)
                continue
            notice = None
            lag = log.total_chars - me.delivered
            if session.presence.followers[0] is not me and lag > VIEWER_MAX_LAG:
                cursor = log.seq_at(log.total_chars - VIEWER_RESUME)
                notice = f"\r\n\x1b[0m[... {lag - VIEWER_RESUME} characters skipped ...]\r\n"
                clean_start = include_echo
                entries = log.since(cursor)
            cursor = entries[-1].seq + 1
            batch = [
                e
                for e in entries
                if not (e.kind == OUTPUT and e.echo and not include_echo)
                and not (
                    e.kind == INPUT_REQUIRED and e.seq < replay_until and e is not session.waiting
                )
                and not (e.kind == QUEUE_POSITION and e is not session.queue_entry)
            ]
            if clean_start:
                batch = _start_on_a_line(batch)
                clean_start = False
            if notice is not None:
                batch.insert(0, Entry(-1, OUTPUT, notice))
            if batch:
                await send(batch)
            session.delivered(me, entries[-1].upto)
    finally:
        session.detach(me)


def _start_on_a_line(batch: list[Entry]) -> list[Entry]:
    """A terminal that joins mid-stream starts after a newline, never inside an escape
    sequence, with attributes reset."""
    for i, e in enumerate(batch):
        if e.kind != OUTPUT:
            continue
        cut = e.text.find("\n")
        if cut < 0:
            continue
        first = Entry(
            e.seq, OUTPUT, "\x1b[0m" + e.text[cut + 1 :], e.echo, upto=e.upto, stream=e.stream
        )
        return [x for x in batch[:i] if x.kind != OUTPUT] + [first, *batch[i + 1 :]]
    return batch


Merged = tuple[str, str | dict[str, object], str]


def merge_output(entries: list[Entry], limit: int, *, by_stream: bool = False) -> list[Merged]:
    """Consecutive output entries joined into messages of at most ``limit`` characters;
    other entries pass through. With ``by_stream`` no message mixes stdout and stderr
    text. Returns (kind, text-or-payload, stream) triples."""
    out: list[Merged] = []
    buf: list[str] = []
    size = 0
    stream = STDOUT
    for e in entries:
        if e.kind == OUTPUT:
            split = by_stream and e.stream != stream
            if buf and (split or size + len(e.text) > limit):
                out.append((OUTPUT, "".join(buf), stream))
                buf, size = [], 0
            if not buf:
                stream = e.stream if by_stream else STDOUT
            buf.append(e.text)
            size += len(e.text)
            continue
        if buf:
            out.append((OUTPUT, "".join(buf), stream))
            buf, size = [], 0
        out.append((e.kind, e.payload, STDOUT))
    if buf:
        out.append((OUTPUT, "".join(buf), stream))
    return out

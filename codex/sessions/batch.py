"""Wait mode (`POST /api/execute?wait=true`): a session run to its end with its
`stdin` only, and what a Socket.IO client would have seen, in one answer.

A read with nothing left gets end of file (Ctrl-D on the terminal), as a program run
with its input redirected from a file would. A program that keeps reading after that
is stopped: waits for input do not count against its time limit, so nothing else
would end it."""

from __future__ import annotations

import contextlib
from typing import Any

from codex.errors import SessionFinished
from codex.sessions.eventlog import Entry
from codex.sessions.follow import follow
from codex.sessions.session import Session
from codex.wire import INPUT_REQUIRED, OUTPUT

EOF_KEY = b"\x04"
MAX_EOFS = 8  # ends of file one program may be given before it is stopped


async def run_to_end(session: Session) -> dict[str, Any]:
    texts: list[str] = []
    eofs = 0

    async def send(entries: list[Entry]) -> None:
        nonlocal eofs
        for e in entries:
            if e.kind == OUTPUT:
                texts.append(e.text)
            elif e.kind == INPUT_REQUIRED:
                eofs += 1
                if eofs > MAX_EOFS:
                    session.cancel("The program kept reading after the end of its input.")
                    continue
                with contextlib.suppress(SessionFinished):
                    await session.write(EOF_KEY)

    await follow(session, send, include_echo=False)
    return {
        "sessionId": session.id,
        "result": session.result,
        "output": "".join(texts),
        "displays": session.output.displays.listing(),
    }

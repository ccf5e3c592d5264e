"""Whose sessions an identity may use. With identity off, a session id is the only key
(as before). With it on, a session belongs to the identity that created it: joining,
typing, resizing, stopping, reading it and attaching a terminal need the same subject;
a token's `observe` claim lets its holder watch (join, read, attach) the sessions it
lists, never type into or stop them."""

from __future__ import annotations

from codex.errors import Forbidden
from codex.identity.credentials import Identity

WATCH, DRIVE = False, True  # what an access does: look, or act on the program


def check_access(
    identity: Identity | None, creator: str | None, session_id: str, drive: bool
) -> None:
    if creator is None:
        return  # made with identity off: the id is the key
    if identity is not None and identity.subject == creator:
        return
    if identity is not None and not drive and session_id in identity.observe:
        return
    raise Forbidden("This session belongs to someone else.")

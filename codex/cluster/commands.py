"""Messages between servers, typed, and their JSON, encoded and decoded here only.

A *command* goes to the owner of a session, on its ``codex:commands:<instance>``
channel. A *relayed* message goes from the owner to one follower on another server, on
the relay channel that follower subscribed to before it asked (``Follow``); a command
naming a ``reply`` channel has its failure reported there (``Failed``), since the
client that caused it is connected to the sender, not to the owner.

A message that does not decode (not JSON, an unknown ``op``, a field missing or of
the wrong type: a peer of another version, or not a peer at all) is ignored, and each
kind of problem is logged once, so a chatty peer cannot flood the log.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from codex.sessions.eventlog import Entry
from codex.wire import OUTPUT, STDERR, STDOUT

log = logging.getLogger(__name__)

# -- commands: to the server that owns the session -----------------------------------------


@dataclass(frozen=True)
class Input:
    """A line of input (Socket.IO `input`): the text, a newline added by the owner."""

    op: ClassVar[str] = "input"
    session_id: str
    text: str
    reply: str = ""  # relay channel for a failure; "" when nobody is listening


@dataclass(frozen=True)
class Write:
    """Raw bytes to the program's terminal, as typed."""

    op: ClassVar[str] = "write"
    session_id: str
    data: bytes
    reply: str = ""


@dataclass(frozen=True)
class Resize:
    op: ClassVar[str] = "resize"
    session_id: str
    rows: int
    cols: int
    reply: str = ""


@dataclass(frozen=True)
class Cancel:
    op: ClassVar[str] = "cancel"
    session_id: str
    reason: str | None = None


@dataclass(frozen=True)
class Follow:
    """Publish the session's log on ``channel`` until it ends or ``Leave``; ``echo``
    for terminal views (see codex.sessions.follow)."""

    op: ClassVar[str] = "follow"
    session_id: str
    channel: str
    echo: bool


@dataclass(frozen=True)
class Leave:
    op: ClassVar[str] = "leave"
    channel: str


@dataclass(frozen=True)
class Query:
    """Ask the owner for what only it has (``what``: DESCRIBE, or DISPLAY with the
    image's ``index``); the answer comes on ``reply``."""

    op: ClassVar[str] = "query"
    session_id: str
    what: str
    reply: str
    index: int = 0
    name: str = ""  # FILE: the file's name


DESCRIBE = "describe"  # Query.what: GET /api/sessions/<id>, as the owner has it
IMAGE = "image"  # Query.what: one image the session displayed
FILE = "file"  # Query.what: one file the program left

Command = Input | Write | Resize | Cancel | Follow | Leave | Query

# -- relayed: from the owner to one follower elsewhere ---------------------------------------


@dataclass(frozen=True)
class Entries:
    """A batch of the session's log, already filtered for the follower's view."""

    op: ClassVar[str] = "entries"
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Failed:
    """A command sent with this channel as its ``reply`` failed: the error's JSON."""

    op: ClassVar[str] = "failed"
    error: dict[str, Any]


@dataclass(frozen=True)
class End:
    """The session's log ended (or the session is not there): nothing more comes."""

    op: ClassVar[str] = "end"


@dataclass(frozen=True)
class Answer:
    """The owner's answer to a Query: the description, or {mime, data (bytes)};
    empty when it has no such thing."""

    op: ClassVar[str] = "answer"
    body: dict[str, Any]


Relayed = Entries | Failed | End | Answer
Message = Command | Relayed

# -- JSON ---------------------------------------------------------------------------------


def encode(message: Message) -> str:
    body: dict[str, Any] = {"op": message.op}
    for f in dataclasses.fields(message):
        body[_wire_name(f.name)] = _to_json(getattr(message, f.name))
    return json.dumps(body)


def decode_command(raw: str | bytes) -> Command | None:
    """The command in ``raw``; None (logged once per kind of problem) if there is none."""
    message = _decode(raw)
    if message is None or isinstance(message, Command):
        return message
    _report(f"a relayed message ({message.op!r}) on a command channel")
    return None


def decode_relayed(raw: str | bytes) -> Relayed | None:
    """The relayed message in ``raw``; None (logged once per kind) if there is none."""
    message = _decode(raw)
    if message is None or isinstance(message, Relayed):
        return message
    _report(f"a command ({message.op!r}) on a relay channel")
    return None


class Invalid(ValueError):
    """What is wrong with a message, said in a way that is the same for every such one."""


def _decode(raw: str | bytes) -> Message | None:
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise Invalid("a message that is not a JSON object")
        op = body.get("op")
        if not isinstance(op, str) or op not in _DECODERS:
            raise Invalid(f"a message with an unknown op {str(op)[:40]!r}")
        return _DECODERS[op](_Body(op, body))
    except Invalid as exc:
        _report(str(exc))
    except (ValueError, UnicodeDecodeError, RecursionError):
        _report("a message that is not JSON")
    return None


class _Body:
    """The fields of one decoded message, each checked for its type."""

    def __init__(self, op: str, body: dict[str, Any]) -> None:
        self.op = op
        self.body = body

    def _get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.body.get(name, default)
        # bool is an int to Python but never a number here.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise Invalid(f"{self.op!r} with a missing or mistyped {name!r}")
        return value

    def text(self, name: str, default: str | None = None) -> str:
        value: str = self._get(name, str, default)
        return value

    def maybe_text(self, name: str) -> str | None:
        value: str | None = self._get(name, (str, type(None)))
        return value

    def number(self, name: str) -> int:
        value: int = self._get(name, int)
        return value

    def flag(self, name: str) -> bool:
        value: bool = self._get(name, bool)
        return value

    def mapping(self, name: str) -> dict[str, Any]:
        value: dict[str, Any] = self._get(name, dict)
        return value

    def blob(self, name: str) -> bytes:
        try:
            return base64.b64decode(self.text(name), validate=True)
        except binascii.Error:
            raise Invalid(f"{self.op!r} with {name!r} not in base64") from None

    def entries(self, name: str) -> tuple[Entry, ...]:
        out = []
        for item in self._get(name, list):
            # [kind, body], or [OUTPUT, text, stream] for text the program wrote to stderr
            if not (isinstance(item, list) and len(item) in (2, 3) and isinstance(item[0], str)):
                raise Invalid(f"{self.op!r} with an entry that is not [kind, body]")
            kind, body = item[0], item[1]
            if kind == OUTPUT and isinstance(body, str):
                stream = item[2] if len(item) == 3 and item[2] in (STDOUT, STDERR) else STDOUT
                out.append(Entry(-1, OUTPUT, body, stream=stream))
            elif kind != OUTPUT and isinstance(body, dict):
                out.append(Entry(-1, kind, payload=body))
            else:
                raise Invalid(f"{self.op!r} with an entry whose body does not fit its kind")
        return tuple(out)


_DECODERS: dict[str, Callable[[_Body], Message]] = {
    Input.op: lambda b: Input(b.text("sessionId"), b.text("text"), b.text("reply", "")),
    Write.op: lambda b: Write(b.text("sessionId"), b.blob("data"), b.text("reply", "")),
    Resize.op: lambda b: Resize(
        b.text("sessionId"), b.number("rows"), b.number("cols"), b.text("reply", "")
    ),
    Cancel.op: lambda b: Cancel(b.text("sessionId"), b.maybe_text("reason")),
    Follow.op: lambda b: Follow(b.text("sessionId"), b.text("channel"), b.flag("echo")),
    Leave.op: lambda b: Leave(b.text("channel")),
    Query.op: lambda b: Query(
        b.text("sessionId"), b.text("what"), b.text("reply"), b.number("index"), b.text("name")
    ),
    Entries.op: lambda b: Entries(b.entries("entries")),
    Answer.op: lambda b: Answer(b.mapping("body")),
    Failed.op: lambda b: Failed(b.mapping("error")),
    End.op: lambda b: End(),
}


def _wire_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        # Terminal bytes need not be UTF-8: carried exactly, not decoded.
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple):
        return [_entry_json(e) for e in value]
    return value


def _entry_json(e: Entry) -> list[Any]:
    if e.kind != OUTPUT:
        return [e.kind, e.payload]
    return [e.kind, e.text] if e.stream == STDOUT else [e.kind, e.text, e.stream]


_reported: set[str] = set()
MAX_REPORTED = 256  # distinct problems remembered; past that each is only a debug line


def _report(problem: str) -> None:
    if problem in _reported or len(_reported) >= MAX_REPORTED:
        log.debug("ignored %s from another server", problem)
        return
    _reported.add(problem)
    log.warning("ignored %s from another server (said once)", problem)

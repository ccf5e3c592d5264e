"""The attack corpus (tests/security/corpus.py), one real server and one real Docker
sandbox per attack, output sanitization off. After every attack: the verdict is one
the spec allows, the case's own assertions hold, the canary never appears, no host
process of it survives, the host sentinel is untouched, and containment holds (no
container left within 2 s, /healthz 200, the next execution completes ok)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from codex.config import Settings
from tests.harness import running_app
from tests.security.corpus import CASES, Case, Result, markdown
from tests.security.runner import (
    SETTING_NAMES,
    assert_contained,
    assert_no_canary,
    docker_socket_path,
    host_processes_with,
    run_program,
    server_settings,
)

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]

SENTINEL_TEXT = "host-sentinel"
COMPLETE_FIELDS = {
    "sessionId",
    "status",
    "exitCode",
    "signal",
    "durationMs",
    "outputBytes",
    "truncated",
}


# `error` events that answer the client's own events (they may come at any time, also
# after the end); a program's error event has the verdict's code.
CLIENT_ERRORS = {
    "session_finished",
    "payload_too_large",
    "invalid_field",
    "bad_request",
    "session_not_found",
    "rate_limited",
    "unsupported_language",
}


def _reply_to_client(event: str, data: Any) -> bool:
    return event == "error" and isinstance(data, dict) and data.get("code") in CLIENT_ERRORS


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 35
    assert len({c.name for c in CASES}) == len(CASES)


class Problems:
    """Soft assertions: every group runs, so one failing test tells everything that
    went wrong with its attack (the verdict, the case's facts, containment)."""

    def __init__(self) -> None:
        self.found: list[str] = []

    async def check(self, what: str, fn: Any) -> None:
        try:
            result = fn()
            if inspect.isawaitable(result):
                await result
        except AssertionError as exc:
            self.found.append(f"[{what}] {exc}".strip())

    def raise_any(self) -> None:
        if self.found:
            raise AssertionError("\n".join(self.found))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_attack_is_contained(case: Case, tmp_path: Path) -> None:
    missing = [name for name in case.requires if name not in SETTING_NAMES]
    if missing:
        pytest.skip(f"waiting for setting {', '.join(missing)}")
    sentinel = tmp_path / "sentinel"
    sentinel.write_text(SENTINEL_TEXT)
    overrides = server_settings(**case.settings)
    settings = dataclasses.replace(Settings(), port=0, **overrides)
    problems = Problems()
    async with running_app(**overrides) as h:
        port = int(h.base_url.rsplit(":", 1)[1])
        code = (
            case.code.replace("__SERVER_PORT__", str(port))
            .replace("__HOST_SENTINEL__", str(sentinel))
            .replace("__DOCKER_SOCK__", docker_socket_path())
        )
        t, extra = await run_program(
            h,
            settings,
            code,
            stdin=case.stdin,
            during=case.during,
            timeout=settings.time_limit + 30,
        )

        def verdict() -> None:
            done = t.complete
            session_events = [e for e, d in t.events if not _reply_to_client(e, d)]
            assert session_events[-1] == "execution_complete", t.events[-3:]
            assert set(done) >= COMPLETE_FIELDS, done
            assert done["status"] in case.status, (
                f"verdict {done['status']!r}, expected one of {sorted(case.status)}: {done}; "
                f"errors ({len(t.named('error'))}): {t.named('error')[-3:]}; "
                f"output tail: {t.output[-600:]!r}"
            )
            if case.signal is not None:
                assert done["signal"] == case.signal, done

        def output() -> None:
            for text in case.output_has:
                assert text in t.output, f"{text!r} missing from the output: {t.output[-600:]!r}"
            for text in case.output_lacks:
                assert text not in t.output, f"{text!r} in the output"

        await problems.check("verdict", verdict)
        await problems.check("output", output)
        await problems.check("canary", lambda: assert_no_canary(t))
        if case.check is not None:
            await problems.check("facts", lambda: case.check(Result(t, settings, extra)))
        await problems.check("containment", lambda: assert_contained(h, t.session_id))

    def host() -> None:
        for marker in case.host_markers:
            assert host_processes_with(marker) == [], f"a process outlived the attack: {marker}"
        assert sentinel.read_text() == SENTINEL_TEXT, "the host sentinel changed"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["sentinel"]

    await problems.check("host", host)
    problems.raise_any()


def test_docs_table_is_in_step() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "security-corpus.md"
    assert doc.read_text() == markdown(), (
        "docs/security-corpus.md is stale: python -m tests.security.corpus > "
        "docs/security-corpus.md"
    )

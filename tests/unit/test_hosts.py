"""The Host check (DNS rebinding): which names a request may use."""

from __future__ import annotations

import dataclasses

import pytest

from codex.api.hosts import host_allowed
from codex.config import Settings


def settings(**kw: object) -> Settings:
    return dataclasses.replace(Settings(), **kw)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8000",
        "127.0.0.1:8000",
        "127.1.2.3",
        "[::1]:8000",
        "app.localhost",
        "LOCALHOST:8000",
        None,
        "",
    ],
)
def test_loopback_names_and_addresses_are_always_served(host: str | None) -> None:
    assert host_allowed(host, settings())
    assert host_allowed(host, settings(runtime="local"))


@pytest.mark.parametrize(
    "host",
    [
        "rebind.attacker.example",
        "rebind.attacker.example:8000",
        "localhost.attacker.example",
        "127.0.0.1.attacker.example",
        "192.168.1.9:8000",
        "localhost@evil.example",
        "a b",
        "bad\x00host",
        "[::1",
    ],
)
def test_foreign_hosts_are_refused_on_a_loopback_server(host: str) -> None:
    assert not host_allowed(host, settings())


def test_allowed_hosts_and_the_listening_name() -> None:
    s = settings(allowed_hosts=("codex.example", ".school.example"))
    assert host_allowed("codex.example:443", s)
    assert host_allowed("school.example", s) and host_allowed("a.b.school.example", s)
    assert not host_allowed("evilschool.example", s)
    assert host_allowed("anything.example", settings(allowed_hosts=("*",)))
    assert host_allowed("box.lan:8000", settings(host="box.lan"))


def test_addresses_are_served_by_a_server_listening_beyond_loopback() -> None:
    wide = settings(host="0.0.0.0")
    assert host_allowed("10.1.2.3:8000", wide)
    assert not host_allowed("codex.example", wide)


def test_the_local_runtime_answers_loopback_names_only() -> None:
    s = settings(runtime="local", allowed_hosts=("*",))
    assert not host_allowed("rebind.attacker.example", s)
    assert not host_allowed("10.1.2.3", s)

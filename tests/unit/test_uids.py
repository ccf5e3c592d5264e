"""Sandbox uids: one per live sandbox, from a block no host user has."""

from __future__ import annotations

import random

import pytest

from codex.errors import SandboxError
from codex.runtime.docker.uids import BLOCK, SPAN, UidAllocator

BASE = 1_900_000_000


def test_each_live_sandbox_gets_its_own_uid_and_it_is_reused_after() -> None:
    uids = UidAllocator(BASE, rng=random.Random(1))
    a, b = uids.take(), uids.take()
    assert a != b and BASE <= a < BASE + SPAN and uids.live == 2
    uids.release(a)
    assert uids.take() == a  # the lowest free one
    uids.release(12345)  # never handed out: ignored
    assert uids.live == 2


def test_a_block_in_use_by_another_server_is_avoided() -> None:
    first = UidAllocator(BASE, rng=random.Random(7)).first
    other = UidAllocator(BASE, in_use=[first + 3], rng=random.Random(7))
    assert other.first != first


def test_exhaustion_is_a_clear_error() -> None:
    uids = UidAllocator(BASE)
    for _ in range(BLOCK):
        uids.take()
    with pytest.raises(SandboxError, match="no sandbox uid"):
        uids.take()

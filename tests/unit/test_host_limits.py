"""Host-wide kernel counters are raised to fit every sandbox, or warned about."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from codex.config import Settings
from codex.runtime.docker import host_limits


def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pty: int, aio: int) -> tuple[Path, Path]:
    pty_max, reserve, aio_max = tmp_path / "pty", tmp_path / "reserve", tmp_path / "aio"
    pty_max.write_text(f"{pty}\n")
    reserve.write_text("1024\n")
    aio_max.write_text(f"{aio}\n")
    monkeypatch.setattr(host_limits, "PTY_MAX", str(pty_max))
    monkeypatch.setattr(host_limits, "PTY_RESERVE", str(reserve))
    monkeypatch.setattr(host_limits, "AIO_MAX", str(aio_max))
    return pty_max, aio_max


def test_low_limits_are_raised_to_fit_every_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pty_max, aio_max = files(tmp_path, monkeypatch, 4096, 65536)
    s = Settings()
    host_limits.ensure_pty_room(s)
    host_limits.ensure_aio_room(s)
    per_sandbox = (s.pids_limit - 1) * s.nofile_limit
    assert int(pty_max.read_text()) == min(1 << 20, 1024 + s.max_sessions * per_sandbox)
    assert int(aio_max.read_text()) == 65536 + s.max_sessions * (s.memory_limit_mb << 20) // 32


def test_enough_is_left_alone_and_an_impossible_need_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pty_max, aio_max = files(tmp_path, monkeypatch, 1 << 20, 1 << 40)
    host_limits.ensure_pty_room(Settings())
    host_limits.ensure_aio_room(Settings())
    assert pty_max.read_text() == f"{1 << 20}\n" and aio_max.read_text() == f"{1 << 40}\n"
    small = dataclasses.replace(Settings(), max_sessions=1000)
    with caplog.at_level(logging.WARNING):
        host_limits.ensure_pty_room(small)
    assert "exceeds what the kernel can count" in caplog.text

"""The screen model's work is bounded per call and per session, whatever the bytes.

No Docker: these drive codex.sessions.screen directly. Timings here are bounds with a wide
margin (the machine is shared); the figures themselves are in bench/hostile.py."""

from __future__ import annotations

import time

import pytest

from codex.sessions import screen as terminal
from codex.sessions.screen import TerminalModel
from codex.sessions.sizes import MAX_COLS, MAX_ROWS, valid_size

HOSTILE = {
    "decaln": "\x1b#8",
    "erase display": "\x1b[2J",
    "delete chars": "\x1b[P",
    "insert chars": "\x1b[300@",
    "erase chars": "\x1b[300X",
    "insert lines": "\x1b[L",
    "alt screen": "\x1b[?1049h\x1b[?1049l",
    "newline at bottom": "\x1b[120;1H\n",
    "wide": "中",
    "combining": "\u0301",
    "c1 osc": "\x9d",
    "osc intro": "\x1b]",
    "tabs": "\t",
}


def test_sizes_are_clamped_and_validated() -> None:
    assert valid_size(1000, 1000) == (MAX_ROWS, MAX_COLS)
    assert valid_size(24, 80) == (24, 80)
    with pytest.raises(Exception, match="rows"):
        valid_size(0, 80)
    with pytest.raises(Exception, match="cols"):
        valid_size(24, 1001)
    model = TerminalModel(1000, 1000)
    assert (model.rows, model.cols) == (MAX_ROWS, MAX_COLS)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_one_call_holds_the_loop_briefly(name: str) -> None:
    model = TerminalModel(1000, 1000)
    model.append("x" * MAX_COLS * 4 + HOSTILE[name] * (64 * 1024 // len(HOSTILE[name])))
    for ask in (model.prompt, model.snapshot):
        # CPU time, not wall time: what the call costs the loop, whatever else the
        # machine runs meanwhile.
        started = time.process_time()
        ask()
        # PER_CALL of feeding, plus one slice and the render: far under 100 ms.
        assert time.process_time() - started < 0.1, name


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_session_spends_at_most_its_budget(name: str) -> None:
    model = TerminalModel(1000, 1000)
    spent = 0.0
    started = time.monotonic()
    for _ in range(50):  # a program printing and prompting in a loop
        model.append(HOSTILE[name] * 2000 + "\r\nName? ")
        t = time.process_time()
        assert model.prompt().endswith("Name? ") or name in ("c1 osc", "osc intro")
        model.snapshot()
        spent += time.process_time() - t
    elapsed = time.monotonic() - started
    allowed = terminal.CAPACITY + elapsed * terminal.REFILL
    # The budget, plus per call one slice past the clock check and the cheap paths.
    assert spent < allowed + 50 * 0.004, (name, spent, allowed)


def test_alternate_screen_switches_cost_nothing_per_cell() -> None:
    model = TerminalModel(120, 300)
    model.append("y" * 300 * 120)
    model.budget.tokens = 10.0
    model.sync()
    model.append("\x1b[?1049h\x1b[?1049l" * 2000 + "back? ")
    model.budget.tokens = 10.0
    started = time.perf_counter()
    assert model.prompt() == "back? "
    assert time.perf_counter() - started < 0.1


def test_combining_runs_are_cut() -> None:
    model = TerminalModel(24, 80)
    model.append("Q\r\ne" + "\u0301" * 60000 + "!\r\nok? ")
    started = time.perf_counter()
    snap = model.snapshot()
    assert time.perf_counter() - started < 0.1
    assert "ok?" in snap["lines"] and all(len(line) < 16 for line in snap["lines"])
    short = TerminalModel(24, 80)
    short.append("e" + "\u0301" * 3000 + "!")
    assert short.snapshot()["lines"][0] == "é" + "\u0301" * 7 + "!"


def test_resize_storm_is_one_resize() -> None:
    model = TerminalModel(24, 80)
    model.append("abc")
    for i in range(300):
        model.resize(1000, 1000 if i % 2 else 2)
    model.resize(40, 132)
    assert model.snapshot()["rows"] == 40 and model.snapshot()["cols"] == 132


def test_freeze_keeps_the_last_screen_and_drops_the_rest() -> None:
    model = TerminalModel(24, 80)
    model.append("one\r\ntwo? ")
    model.freeze()
    assert model.snapshot()["lines"][:2] == ["one", "two?"]
    assert model._screen is None and model._unfed == []
    model.append("more")  # a late chunk changes nothing
    assert model.snapshot()["lines"][:2] == ["one", "two?"]


def test_plain_scrolling_output_ends_on_the_right_screen_even_when_skipped() -> None:
    model = TerminalModel(24, 80)
    model.append("".join(f"line {i}\r\n" for i in range(5000)) + "last? ")
    snap = model.snapshot()
    assert snap["lines"][-2] == "line 4999" and snap["lines"][-1] == "last?"
    assert not model.degraded  # plain text: nothing that moved the cursor was skipped


def test_a_resize_before_a_flood_is_kept_when_the_oldest_text_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # append() drops the oldest chunks of a flood, and the resize before them was one
    # of those chunks: the screen stayed 24x80 for a session created at 120x300.
    monkeypatch.setattr(terminal, "PER_CALL", 1.0)  # a busy machine is not the point here
    model = TerminalModel(24, 80)
    model.resize(120, 300)
    for _ in range(5000):
        model.append("x" * 100)
    model.freeze()
    snap = model.snapshot()
    assert (snap["rows"], snap["cols"]) == (120, 300)
    assert len(snap["lines"]) == 120 and snap["lines"][0].startswith("x" * 300)

"""Which OCI runtime the sandboxes run under: `auto` takes crun only when the engine
registered it and it starts a sandbox here."""

from __future__ import annotations

import logging
from typing import Any

import docker.errors
import pytest

from codex.config import load
from codex.runtime.docker.engine import pick_oci_runtime
from codex.runtime.docker.hardening import choose_oci_runtime


class Engine:
    def __init__(self, runtimes: dict[str, Any] | Exception) -> None:
        self.runtimes = runtimes

    def info(self) -> dict[str, Any]:
        if isinstance(self.runtimes, Exception):
            raise self.runtimes
        return {"Runtimes": self.runtimes}


def test_auto_takes_crun_only_when_the_engine_has_it() -> None:
    assert choose_oci_runtime("auto", {"runc", "crun"}) == "crun"
    assert choose_oci_runtime("auto", {"runc"}) == ""  # the engine's default
    assert choose_oci_runtime("runc", {"runc", "crun"}) == "runc"  # asked for by name
    assert choose_oci_runtime("", {"crun"}) == ""


def test_auto_is_the_default() -> None:
    assert load([]).oci_runtime == "auto"


def test_auto_tries_crun_on_one_sandbox_first() -> None:
    tried: list[str] = []
    chosen = pick_oci_runtime(
        Engine({"runc": {}, "crun": {}}),
        load([]),
        tried.append,  # type: ignore[arg-type]
    )
    assert (chosen, tried) == ("crun", ["crun"])


def test_auto_falls_back_when_crun_cannot_start_a_sandbox(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(runtime: str) -> None:
        raise docker.errors.APIError("OCI runtime create failed: cgroups in hybrid mode")

    with caplog.at_level(logging.WARNING):
        chosen = pick_oci_runtime(Engine({"runc": {}, "crun": {}}), load([]), refuse)  # type: ignore[arg-type]
    assert chosen == ""
    assert "crun cannot start a sandbox here" in caplog.text
    assert "hybrid mode" in caplog.text


def test_a_trial_that_times_out_falls_back_too() -> None:
    def hang(runtime: str) -> None:
        raise TimeoutError("the engine did not answer")

    assert pick_oci_runtime(Engine({"crun": {}}), load([]), hang) == ""  # type: ignore[arg-type]


def test_a_missing_image_says_nothing_about_the_runtime() -> None:
    def missing(runtime: str) -> None:
        raise docker.errors.ImageNotFound("no such image")

    assert pick_oci_runtime(Engine({"crun": {}}), load([]), missing) == "crun"  # type: ignore[arg-type]


def test_a_runtime_named_is_not_tried_but_warned_about_when_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def never(runtime: str) -> None:
        raise AssertionError("a runtime asked for by name is not tried")

    settings = load(["--oci-runtime=crun"])
    with caplog.at_level(logging.WARNING):
        assert pick_oci_runtime(Engine({"runc": {}}), settings, never) == "crun"  # type: ignore[arg-type]
    assert "not registered" in caplog.text
    engine_down = Engine(docker.errors.DockerException("down"))
    assert pick_oci_runtime(engine_down, load([]), never) == ""  # type: ignore[arg-type]

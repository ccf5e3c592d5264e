from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from codex.config import Settings, load
from codex.config_docs import config_docs
from codex.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = load([], {})
    assert (s.host, s.port, s.time_limit, s.memory_limit_mb, s.pids_limit) == (
        "127.0.0.1",
        8000,
        10.0,
        256,
        64,
    )
    assert s.max_code_bytes == 64 * 1024


def test_environment_then_flags() -> None:
    s = load(
        ["--port", "9001"],
        {
            "CODEX_PORT": "9000",
            "CODEX_HOST": "0.0.0.0",
            "CODEX_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        },
    )
    assert s.port == 9001 and s.host == "0.0.0.0"
    assert s.allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CODEX_PORT": "eighty"}, "port"),
        ({"CODEX_PORT": "70000"}, "port"),
        ({"CODEX_RUNTIME": "vm"}, "runtime"),
        ({"CODEX_TIME_LIMIT": "-1"}, "time_limit"),
        ({"CODEX_MAX_CODE_BYTES": "9999999"}, "max_code_bytes"),
        ({"CODEX_RUNTIME": "local", "CODEX_HOST": "0.0.0.0"}, "loopback"),
    ],
)
def test_invalid_settings_are_refused(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load([], env)


def test_local_runtime_may_be_forced_onto_a_public_address() -> None:
    s = load(
        [], {"CODEX_RUNTIME": "local", "CODEX_HOST": "0.0.0.0", "CODEX_ALLOW_UNSAFE_LOCAL": "true"}
    )
    assert s.runtime == "local"


def test_docs_match_the_code() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == config_docs()


def test_help_lists_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "codex", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    for name in Settings.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in out
    assert "CODEX_PORT" in out and "8000" in out


def test_help_states_real_defaults_and_choices_like_the_docs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        load(["--help"], {})
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's wrapping
    assert "(default: None)" not in out and "default: )" not in out
    docs = config_docs()
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        row = next(line for line in docs.splitlines() if line.startswith(f"| `{flag}` |"))
        default = row.split(" | ")[3]
        env = "CODEX_" + f.name.upper()
        if default == "(empty)":
            assert f"(env {env})" in out, flag
        else:
            assert f"(env {env}; default: {default.strip('`')})" in out, flag
        choices = f.metadata.get("choices")
        if choices:
            assert f"One of: {', '.join(choices)}." in out, flag
            assert "One of: " + ", ".join(f"`{c}`" for c in choices) + "." in row, flag


def test_bad_setting_exits_with_a_sentence() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "codex", "--port", "x"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 2
    assert "invalid setting: port" in proc.stderr

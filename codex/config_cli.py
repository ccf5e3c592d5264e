"""How settings are written outside Python: flags, CODEX_* variables and their values.

It knows fields only as dataclass fields carrying ``help`` (and maybe ``choices``)
metadata, so ``codex.config`` can build its parser here without an import cycle.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from codex.errors import ConfigError

ENV_PREFIX = "CODEX_"


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def type_name(f: dataclasses.Field[Any]) -> str:
    return str(f.type).replace("tuple[str, ...]", "list")


def choices_of(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    return tuple(f.metadata.get("choices", ()))


def default_text(f: dataclasses.Field[Any]) -> str:
    """The default as typed on the command line; "" when it is empty (no default)."""
    value = f.default
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = type_name(f)
    try:
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "list":
            return tuple(p.strip() for p in raw.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"{f.name}: {raw!r} is not a valid {kind}") from None
    choices = f.metadata.get("choices")
    if choices and raw not in choices:
        raise ConfigError(f"{f.name}: {raw!r} is not one of {', '.join(choices)}")
    return raw


def build_parser(fields: Sequence[dataclasses.Field[Any]]) -> argparse.ArgumentParser:
    # Every flag's argparse default is None (so that "not given" lets the environment
    # through): the help states the real default itself, not argparse's.
    parser = argparse.ArgumentParser(
        prog="python -m codex",
        description="CodeX: run untrusted Python in Docker and stream it to browsers.",
    )
    for f in fields:
        parser.add_argument(flag_name(f.name), dest=f.name, help=_help(f), **_takes(f))
    parser.add_argument(
        "--config-docs", action="store_true", help="Print docs/configuration.md and exit."
    )
    return parser


def _help(f: dataclasses.Field[Any]) -> str:
    text = f.metadata["help"]
    choices = choices_of(f)
    if choices:
        text += " One of: " + ", ".join(choices) + "."
    default = default_text(f)
    where = f"env {env_name(f.name)}" + (f"; default: {default}" if default else "")
    # argparse %-formats help strings.
    return f"{text} ({where})".replace("%", "%%")


def _takes(f: dataclasses.Field[Any]) -> dict[str, Any]:
    if type_name(f) == "bool":
        return {"action": "store_const", "const": True}
    return {"metavar": type_name(f).upper()}

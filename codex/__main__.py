"""python -m codex: parse flags and CODEX_* variables into Settings, then serve."""

from __future__ import annotations

import asyncio
import logging
import sys

from codex.config import load
from codex.config_docs import config_docs
from codex.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--config-docs" in args:
        sys.stdout.write(config_docs())
        return 0
    try:
        settings = load(args)
    except ConfigError as exc:
        print(f"codex: invalid setting: {exc.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from codex.app import serve

    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(f"codex: cannot serve on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

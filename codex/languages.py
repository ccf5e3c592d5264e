"""Supported languages and the server-side syntax check (a SyntaxError costs no container)."""

from __future__ import annotations

from dataclasses import dataclass

from codex.errors import UnsupportedLanguage

LANGUAGES = {"python": "python", "python3": "python"}


@dataclass(frozen=True)
class SyntaxProblem:
    message: str
    line: int | None
    offset: int | None


def normalize_language(name: str) -> str:
    try:
        return LANGUAGES[name.lower()]
    except KeyError:
        raise UnsupportedLanguage(
            f"Language {name!r} is not supported; supported: {', '.join(sorted(LANGUAGES))}.",
            field="language",
            supported=sorted(LANGUAGES),
        ) from None


def check_syntax(code: str, language: str) -> SyntaxProblem | None:
    """Compile without running. The server's Python may be older or newer than the
    sandbox's; the sandbox still reports any SyntaxError of its own as a runtime error."""
    try:
        compile(code, "main.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = exc.lineno
        where = f" (line {line})" if line else ""
        return SyntaxProblem(f"{type(exc).__name__}: {exc.msg}{where}", line, exc.offset)
    except (ValueError, RecursionError, MemoryError) as exc:
        # Null bytes (ValueError before 3.12) or nesting too deep for the parser.
        return SyntaxProblem(f"SyntaxError: {exc}", None, None)
    return None

"""Supported languages and the server-side syntax check (a SyntaxError costs no container)."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

from codex.errors import PolicyViolation, UnsupportedLanguage

LANGUAGES = {"python": "python", "python3": "python"}


@dataclass(frozen=True)
class SyntaxProblem:
    message: str
    line: int | None
    offset: int | None


def normalize_language(name: str) -> str:
    """The canonical name; ASCII letters in any case (what the OpenAPI pattern says)."""
    try:
        return LANGUAGES[name.lower() if name.isascii() else name]
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


def check_policy(code: str, imports: Sequence[str], calls: Sequence[str]) -> None:
    """Refuse code that imports a listed module or calls a listed builtin.

    A teaching aid ("this exercise is without numpy"), NOT a security boundary:
    ``__import__`` built from strings, ``importlib``, ``getattr(__builtins__, ...)`` and
    subclass walks all defeat any such list. The sandbox is the boundary;
    docs/security.md says so.
    """
    if not imports and not calls:
        return
    banned_modules = set(imports)
    banned_calls = set(calls)
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                names = [node.module] if node.module and node.level == 0 else []
            for name in names:
                if name.split(".")[0] in banned_modules or name in banned_modules:
                    raise PolicyViolation(
                        f"Line {node.lineno}: importing {name!r} is not allowed here.",
                        line=node.lineno,
                    )
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in banned_calls
        ):
            raise PolicyViolation(
                f"Line {node.lineno}: calling {node.func.id}() is not allowed here.",
                line=node.lineno,
            )

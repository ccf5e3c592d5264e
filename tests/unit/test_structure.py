"""The shape of codex/: small modules, small classes and functions, no import cycles,
and each wire constant defined once (docs/architecture.md says why)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from codex import wire

ROOT = Path(__file__).resolve().parents[2] / "codex"
# Data tables, not logic: the seccomp profile is a list of syscalls.
TABLES = {"codex/runtime/docker/seccomp.py"}
# Code that runs inside the sandbox, shipped as source text (its own constraints).
SANDBOX = ROOT / "runtime" / "sandbox"

MODULE_LINES, CLASS_LINES, FUNCTION_LINES = 400, 250, 50


def modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if SANDBOX not in p.parents)


def name(path: Path) -> str:
    return str(path.relative_to(ROOT.parent))


def oversized() -> list[str]:
    found = []
    for path in modules():
        if name(path) in TABLES:
            continue
        source = path.read_text()
        lines = source.count("\n")
        if lines > MODULE_LINES:
            found.append(f"{name(path)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                cap = CLASS_LINES if isinstance(node, ast.ClassDef) else FUNCTION_LINES
                if size > cap:
                    found.append(f"{name(path)}: {node.name} is {size} lines (cap {cap})")
    return found


def test_no_module_class_or_function_is_over_its_size() -> None:
    assert oversized() == []


def imports_of(path: Path) -> set[str]:
    """codex modules this one imports, anywhere in it (TYPE_CHECKING ones too: a type
    that goes both ways is a dependency both ways)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("codex"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # submodules
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("codex"))
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_codex_has_no_import_cycle() -> None:
    graph = {module_name(p): imports_of(p) for p in modules()}
    # A module importing a package depends on its __init__ only: keep known names.
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*trail[trail.index(dep) :], dep] if dep in trail else [node, dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


WIRE_VALUES = {
    value
    for key, value in vars(wire).items()
    if key.isupper() and isinstance(value, str) and key not in ("ID_CHARS", "ID_PATTERN")
}


@pytest.mark.parametrize("path", modules(), ids=name)
def test_wire_constants_are_defined_only_in_wire(path: Path) -> None:
    """No module gives a wire string a name of its own (it imports it from wire)."""
    if path == ROOT / "wire.py":
        return
    redefined = []
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        values = [node.value] if isinstance(node, ast.Assign) else []
        if isinstance(node.value if isinstance(node, ast.Assign) else None, ast.Tuple):
            values = list(node.value.elts)  # type: ignore[union-attr]
        for value in values:
            if isinstance(value, ast.Constant) and value.value in WIRE_VALUES:
                redefined.append(f"{ast.unparse(targets[0])} = {value.value!r}")
    assert redefined == []

"""The page's own files under static/, checked without a browser or an engine: the
modules in static/js/ stay small, index.html loads only files that are there (or that
`make page` puts in static/vendor/), every relative import resolves to a name the
imported module exports, and .js is served with a JavaScript type (module scripts
need one). (That every module parses, which needs Node: tests/e2e/test_static_modules.py.)"""

from __future__ import annotations

import mimetypes
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"
JS = STATIC / "js"
MAX_LINES = 600

IMPORT = re.compile(r"^import\s*\{([^}]*)\}\s*from\s*\"(\./[^\"]+)\";", re.M | re.S)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|const|let|class)\s+([\w$]+)", re.M)


def modules() -> list[Path]:
    found = sorted(JS.glob("*.js"))
    assert found, "static/js/ holds no modules"
    return found


class Refs(HTMLParser):
    """The files a page loads: <script src> and <link href>, with the script's type."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str, str | None]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.scripts.append((str(a["src"]), a.get("type")))
        elif tag == "link" and a.get("href"):
            self.links.append(str(a["href"]))


def index_refs() -> Refs:
    refs = Refs()
    refs.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    return refs


def vendor_files_from_make_page() -> set[str]:
    """The names `make page` copies into static/vendor/ (gitignored, so maybe absent)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"(?ms)^page:\n(.*?)(?=^\S)", text)
    assert recipe, "no `page` target in the Makefile"
    return {Path(p).name for p in re.findall(r"node_modules/\S+", recipe.group(1))}


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_every_module_is_at_most_600_lines(path: Path) -> None:
    count = len(path.read_text(encoding="utf-8").splitlines())
    assert count <= MAX_LINES, f"{path.name} has {count} lines (at most {MAX_LINES})"


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_every_module_opens_with_a_header_comment(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith(f"/* {path.name}: ")


def test_index_html_references_only_existing_files() -> None:
    refs = index_refs()
    targets = [src for src, _ in refs.scripts] + refs.links
    assert targets
    vendor = vendor_files_from_make_page()
    for target in targets:
        assert not re.match(r"^[a-z]+:|^//|^/", target), f"{target}: not relative to the page"
        assert target.startswith("static/"), target
        path = ROOT / target
        if target.startswith("static/vendor/"):
            assert path.is_file() or path.name in vendor, f"{target}: neither there nor made"
        else:
            assert path.is_file(), f"{target} does not exist"
    assert "static/app.js" not in targets


def test_the_page_loads_its_entry_module_after_the_vendor_scripts() -> None:
    scripts = index_refs().scripts
    assert scripts[-1] == ("static/js/main.js", "module")
    assert all(src.startswith("static/vendor/") for src, _ in scripts[:-1])


def test_every_module_is_reachable_from_main_and_every_import_resolves() -> None:
    exports = {p.name: set(EXPORT.findall(p.read_text(encoding="utf-8"))) for p in modules()}
    reached, todo = set(), ["main.js"]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        text = (JS / name).read_text(encoding="utf-8")
        for names, spec in IMPORT.findall(text):
            target = spec[2:]
            assert target in exports, f"{name} imports {spec}, which does not exist"
            for imported in (n.strip() for n in names.split(",")):
                if imported:
                    assert imported in exports[target], f"{name}: {target} exports no {imported}"
            todo.append(target)
    assert reached == set(exports), f"not imported by anything: {set(exports) - reached}"


def test_start_stop_and_status_texts_are_written_once() -> None:
    """Both panels' run lifecycle lives in run-controller.js, not in each panel."""
    for text in ("Starting…", "Stopping…", "Running…", "promptText(", "postProgram(", "verdict("):
        holders = [p.name for p in modules() if text in p.read_text(encoding="utf-8")]
        holders = [h for h in holders if h != "api.js"]  # where the helpers are defined
        assert holders == ["run-controller.js"], f"{text!r} in {holders}"


def test_js_is_served_with_a_javascript_type() -> None:
    # Tornado's StaticFileHandler takes the type from mimetypes; a module script with any
    # other type (application/octet-stream, text/plain) is refused by the browser.
    kind, _ = mimetypes.guess_type("static/js/main.js")
    assert kind in ("text/javascript", "application/javascript")

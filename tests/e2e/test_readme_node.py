"""The README's Node example runs as the README says (client.mjs, Node 18+): the
example, taken from README.md, against a real server (local runtime) under Node with
the socket.io-client in tests/node (`make node`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import require
from tests.harness import run_node, running_app

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"


def _readme_node_example() -> tuple[str, str]:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"\n([^\n]*(?:\n[^\n]+)*)\n\n```js\n(.*?)```", readme, re.S)
    assert match, "README.md has no js example"
    return " ".join(match.group(1).split()), match.group(2)


def test_readme_says_how_to_run_the_node_example() -> None:
    intro, code = _readme_node_example()
    assert 'from "socket.io-client"' in code and "await fetch(" in code
    assert "client.mjs" in intro and "Node 18 or newer" in intro, intro


@pytest.mark.node
@pytest.mark.gen_test(timeout=90)
async def test_readme_node_example_runs_as_client_mjs(tmp_path: Path) -> None:
    node = shutil.which("node")
    modules = NODE_DIR / "node_modules" / "socket.io-client" / "package.json"
    require("Node", None if node and modules.is_file() else "node or socket.io-client missing")
    assert node is not None
    _, code = _readme_node_example()
    (tmp_path / "node_modules").symlink_to(NODE_DIR / "node_modules")
    async with running_app(runtime="local") as h:
        script = tmp_path / "client.mjs"
        script.write_text(code.replace("http://127.0.0.1:8000", h.base_url))
        returncode, out, err = await run_node(node, str(script), cwd=tmp_path)
    assert returncode == 0, err.decode(errors="replace")
    text = out.decode()
    assert "Your name? " in text and "Hi Ada" in text and "ok (exit 0)" in text, text

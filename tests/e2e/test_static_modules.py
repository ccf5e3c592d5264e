"""Every module in static/js/ parses as an ES module (`node --check`): needs Node, so it
is not with the other checks of the page's files (tests/unit/test_static_files.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[2] / "static" / "js"


def modules() -> list[Path]:
    found = sorted(JS.glob("*.js"))
    assert found, "static/js/ holds no modules"
    return found


@pytest.mark.node
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_every_module_parses(path: Path) -> None:
    check = subprocess.run(
        ["node", "--input-type=module", "--check"],
        input=path.read_bytes(),
        capture_output=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr.decode(errors="replace")

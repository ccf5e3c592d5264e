"""The contract with the client the frontend really uses: socket.io-client 4 under Node.

tests/node/seed_flow.mjs connects with default options (long polling, then the upgrade
to WebSocket), POSTs a program, joins, answers its input() prompt and reports every
event it received. Set it up with `npm ci` in tests/node.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.harness import run_node, running_app

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "seed_flow.mjs"


def _node_problem() -> str | None:
    if shutil.which("node") is None:
        return "the node command is missing (install Node.js 18+)"
    if not (NODE_DIR / "node_modules" / "socket.io-client" / "package.json").is_file():
        return f"socket.io-client is not installed (run `npm ci` in {NODE_DIR})"
    return None


def _require_node() -> str:
    require("Node", _node_problem())
    node = shutil.which("node")
    assert node is not None
    return node


@pytest.mark.docker
@pytest.mark.node
@pytest.mark.gen_test(timeout=90)
async def test_socketio_client_seed_flow() -> None:
    node = _require_node()
    async with running_app() as h:
        returncode, stdout, stderr = await run_node(node, str(SCRIPT), h.base_url, cwd=NODE_DIR)
    err = stderr.decode(errors="replace")
    assert returncode == 0, f"node exited {returncode}: {err}"
    lines = [line for line in stdout.decode().splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    result = json.loads(lines[0])
    events: list[tuple[str, dict[str, Any]]] = [(name, data) for name, data in result["events"]]

    def named(name: str) -> list[dict[str, Any]]:
        return [data for ev, data in events if ev == name]

    outputs = "".join(d["output"] for d in named("output"))
    assert outputs == "hello from python\r\nYour name? Hi Ada!\r\n", events

    prompts = named("input_required")
    assert len(prompts) == 1, events
    assert prompts[0]["prompt"] == "Your name? "
    session_id = prompts[0]["sessionId"]
    assert all(d.get("sessionId") == session_id for _, d in events), events

    # What the user sees: the output plus what they typed (the frontend echoes the
    # answer itself, so the server must not send the terminal's echo of it).
    head, sep, tail = outputs.partition("Your name? ")
    assert sep
    transcript = head + sep + "Ada" + "\r\n" + tail
    assert transcript.count("Ada") == 2  # the typed answer and the "Hi Ada!" line
    assert outputs.count("Ada") == 1 and "Hi Ada!" in outputs

    assert named("error") == [], events
    done = named("execution_complete")
    assert len(done) == 1, events
    assert events[-1][0] == "execution_complete", events
    assert done[0]["status"] == "ok", done
    assert done[0]["exitCode"] == 0, done

    # Default transports: it started with long polling and upgraded.
    assert result["transport"] == "websocket", result


@pytest.mark.docker
@pytest.mark.node
@pytest.mark.gen_test(timeout=90)
async def test_a_learner_token_minted_with_jose_as_the_docs_show() -> None:
    node = _require_node()
    if not (NODE_DIR / "node_modules" / "jose" / "package.json").is_file():
        require("jose", f"jose is not installed (run `npm ci` in {NODE_DIR})")
    secret = "s3cret-" * 6
    settings = {"token_secret": secret, "token_issuer": "my-lms", "token_audience": "codex"}
    async with running_app(**settings) as h:
        returncode, stdout, stderr = await run_node(
            node,
            str(NODE_DIR / "token_flow.mjs"),
            h.base_url,
            cwd=NODE_DIR,
            env={"CODEX_TOKEN_SECRET": secret},
        )
    assert returncode == 0, stderr.decode(errors="replace")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["output"] == "Who? hi Ada\r\n" and result["status"] == "ok"
    required = "A credential is required: an API key or a learner token."
    assert result["refused"] == {
        "message": required,
        "data": {"error": required, "code": "unauthorized"},
    }

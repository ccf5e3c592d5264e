"""Images and stderr from a real sandbox, with real matplotlib and PIL, end to end."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import pytest
import tornado.httpclient

from codex.sessions.images import image_info
from tests.harness import Transcript, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]

PLOT = "import matplotlib.pyplot as plt\n"
INLINE = re.compile(
    r"\x1b\]1337;File=name=(?P<name>[A-Za-z0-9+/=]+);size=(?P<size>\d+);inline=1:"
    r"(?P<data>[A-Za-z0-9+/=]+)\x07\r\n"
)


def pngs(t: Transcript) -> list[bytes]:
    return [base64.b64decode(d["data"]["image/png"]) for d in t.named("display")]


def kinds(t: Transcript) -> list[str]:
    return [e for e, _ in t.events if e in ("output", "display")]


async def test_one_figure() -> None:
    async with running_app() as h:
        t = await h.run(PLOT + "plt.plot([1, 2, 3])\nplt.show()\nprint('after')\n")
    [shown] = t.named("display")
    assert shown["data"]["text/plain"] == "<Figure size 640x480 with 1 Axes>"
    assert shown["metadata"]["image/png"] == {"width": 640, "height": 480}
    assert shown["sessionId"] == t.session_id
    assert image_info(pngs(t)[0]) == ("image/png", 640, 480)
    assert t.output == "[figure 1: 640\u00d7480]\r\nafter\r\n"
    assert t.complete["status"] == "ok"


async def test_two_figures_in_one_show_and_a_loop() -> None:
    code = (
        PLOT + "plt.figure(); plt.plot([1])\nplt.figure(figsize=(3, 2)); plt.plot([2])\n"
        "plt.show()\n"
        "for i in range(3):\n    plt.plot([i]); print('step', i); plt.show()\n"
    )
    async with running_app() as h:
        t = await h.run(code)
    sizes = [
        (d["metadata"]["image/png"]["width"], d["metadata"]["image/png"]["height"])
        for d in t.named("display")
    ]
    assert sizes == [(640, 480), (300, 200), (640, 480), (640, 480), (640, 480)]
    assert [d["index"] for d in t.named("display")] == [1, 2, 3, 4, 5]


async def test_a_figure_never_shown_is_shown_at_the_end() -> None:
    async with running_app() as h:
        t = await h.run(PLOT + "plt.plot([3, 1])\nprint('done')\n")
    assert len(t.named("display")) == 1
    assert kinds(t)[-1] == "display" or t.output.endswith("[figure 1: 640\u00d7480]\r\n")


async def test_plot_after_an_input_answer() -> None:
    code = PLOT + "n = int(input('How many? '))\nplt.plot(range(n))\nplt.show()\nprint('ok', n)\n"
    async with running_app() as h:
        t = await h.run(code, ["4"])
    assert len(t.named("display")) == 1
    assert t.output == "How many? [figure 1: 640\u00d7480]\r\nok 4\r\n"


async def test_pil_image_show_and_the_helper() -> None:
    code = (
        "from PIL import Image\nimport codex_display, io\n"
        "Image.new('RGB', (30, 20), 'red').show()\n"
        "buf = io.BytesIO(); Image.new('L', (7, 5)).save(buf, 'JPEG')\n"
        "codex_display.show(buf.getvalue())\n"
    )
    async with running_app() as h:
        t = await h.run(code)
    first, second = t.named("display")
    assert first["metadata"] == {"image/png": {"width": 30, "height": 20}}
    assert second["metadata"] == {"image/jpeg": {"width": 7, "height": 5}}
    assert t.complete["status"] == "ok"


async def test_savefig_and_agg_keep_working() -> None:
    code = (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1]); plt.savefig('/tmp/a.png'); plt.show()\n"
        "import os; print(os.path.getsize('/tmp/a.png') > 1000)\n"
    )
    async with running_app() as h:
        t = await h.run(code)
    assert t.named("display") == []
    assert "True\r\n" in t.output
    assert t.complete["status"] == "ok"


async def test_a_subprocess_plots_with_agg_and_an_explicit_backend_is_respected() -> None:
    # The child's own backend is set as matplotlib is imported, never in the
    # environment a subprocess inherits (where codex_display is not importable).
    sub = "import matplotlib.pyplot as p; p.plot([1]); p.savefig('/tmp/s.png')"
    sub += "; print(p.get_backend())"
    code = (
        "import os, subprocess, sys\n"
        f"print(subprocess.run([sys.executable, '-c', {sub!r}], capture_output=True, text=True))\n"
        "os.environ['MPLBACKEND'] = 'svg'\n"
        "import matplotlib\nprint('backend', matplotlib.get_backend())\n"
    )
    async with running_app() as h:
        t = await h.run(code)
    assert "returncode=0" in t.output and "stdout='Agg\\n'" in t.output, t.output
    assert "backend svg" in t.output
    assert t.complete["status"] == "ok" and not t.named("display")


async def test_an_oversized_figure_is_refused_with_a_notice() -> None:
    code = PLOT + "plt.plot([1, 2])\nplt.show()\nprint('next')\n"
    async with running_app(display_max_bytes=4096) as h:
        t = await h.run(code)
    assert t.named("display") == []
    assert t.output == "[figure 1 not shown: larger than 4 KiB]\r\nnext\r\n"


async def test_a_forged_record_is_plain_text() -> None:
    forged = "\\x1b]6973;0123456789abcdef0123456789abcdef;display:2:{}iVBORw0KGgo=\\x07"
    async with running_app() as h:
        t = await h.run(f"print('{forged}')\nprint('end')\n")
    assert t.named("display") == []
    assert "display:2:{}" in t.output and t.output.endswith("end\r\n")


async def test_display_order_rest_route_and_late_replay() -> None:
    code = PLOT + "print('before')\nplt.plot([1, 2])\nplt.show()\nprint('after')\n"
    async with running_app(display_text_line=False) as h:
        t = await h.run(code)
        # Output may come in any number of events; the image sits between the texts.
        texts: list[Any] = []
        for e, d in t.events:
            if e == "output" and texts and texts[-1] != "display":
                texts[-1] += d["output"]
            elif e in ("output", "display"):
                texts.append(d["output"] if e == "output" else e)
        assert texts == ["before\r\n", "display", "after\r\n"]
        described = (await h.request("GET", f"/api/sessions/{t.session_id}")).body
        [listed] = described["displays"]
        raw = await h.http.fetch(f"{h.base_url}/api/sessions/{t.session_id}/displays/1")
        assert raw.headers["Content-Type"] == "image/png"
        assert raw.body == pngs(t)[0]
        assert listed == {
            "index": 1,
            "mime": "image/png",
            "width": 640,
            "height": 480,
            "bytes": len(raw.body),
        }
        with pytest.raises(tornado.httpclient.HTTPClientError):
            await h.http.fetch(f"{h.base_url}/api/sessions/{t.session_id}/displays/2")
        late = await h.follow(t.session_id)
    assert [e for e, _ in late.events] == [e for e, _ in t.events if e != "session"]
    assert pngs(late) == pngs(t)


async def test_stderr_is_marked_in_order_and_still_a_tty() -> None:
    code = (
        "import sys, warnings\n"
        "print('out1')\nprint('err1', file=sys.stderr)\nprint('out2', sys.stderr.isatty())\n"
        "warnings.warn('careful')\n"
        "raise ValueError('boom')\n"
    )
    async with running_app() as h:
        t = await h.run(code)
    frames = [(d["stream"], d["output"]) for d in t.named("output")]
    joined: list[tuple[str, str]] = []
    for stream, text in frames:
        if joined and joined[-1][0] == stream:
            joined[-1] = (stream, joined[-1][1] + text)
        else:
            joined.append((stream, text))
    assert joined[0] == ("stdout", "out1\r\n")
    assert joined[1] == ("stderr", "err1\r\n")
    assert joined[2] == ("stdout", "out2 True\r\n")
    assert joined[3][0] == "stderr" and "UserWarning: careful" in joined[3][1]
    assert "Traceback (most recent call last)" in joined[3][1]
    assert joined[3][1].endswith("ValueError: boom\r\n")
    assert len(joined) == 4
    assert t.complete["status"] == "runtime_error"


async def test_terminals_get_the_figure_as_an_inline_image_in_its_place() -> None:
    code = PLOT + "print('before')\nplt.plot([1, 3, 2])\nplt.show()\nprint('after')\n"
    async with running_app() as h:
        session_id = await h.execute(code)
        term, raw = await h.terminal(session_id), await h.terminal(session_id, raw=True)
        await asyncio.gather(term.read_to_end(), raw.read_to_end())
        shown = await h.http.fetch(f"{h.base_url}/api/sessions/{session_id}/displays/1")
    png = shown.body
    for viewer in (term, raw):
        match = INLINE.search(viewer.screen_text)
        assert match is not None, viewer.screen_text[:200]
        assert base64.b64decode(match["data"]) == png  # byte-exact
        assert int(match["size"]) == len(png)
        assert base64.b64decode(match["name"]) == b"figure-1.png"
        before, after = viewer.screen_text[: match.start()], viewer.screen_text[match.end() :]
        assert before.endswith("before\r\n")
        assert after == "[figure 1: 640\u00d7480]\r\nafter\r\n"


async def test_an_svg_is_displayed_as_its_text_and_served_under_a_sandboxing_policy() -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80"><circle r="9"/></svg>'
    code = f"import codex_display\ncodex_display.show({svg!r})\nprint('drawn')\n"
    async with running_app() as h:
        t = await h.run(code)
        served = await h.http.fetch(f"{h.base_url}/api/sessions/{t.session_id}/displays/1")
    [shown] = t.named("display")
    assert shown["data"]["image/svg+xml"] == svg
    assert shown["metadata"]["image/svg+xml"] == {"width": 120, "height": 80}
    assert t.output == "[figure 1: 120\u00d780]\r\ndrawn\r\n"
    assert served.headers["Content-Type"] == "image/svg+xml" and served.body == svg.encode()
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert served.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_font_list_built_with_the_image_is_there_before_the_first_plot() -> None:
    # Seeded as matplotlib is imported (a program that never plots pays nothing),
    # before pyplot would build its own.
    code = (
        "import os\nd = os.environ['MPLCONFIGDIR']\nprint(os.path.exists(d))\n"
        "import matplotlib\nprint(sorted(os.listdir(d)))\n"
    )
    async with running_app() as h:
        t = await h.run(code)
    assert t.output.startswith("False\r\n['fontlist-v"), t.output
    assert t.output.endswith(".json']\r\n"), t.output

"""Figures and stderr on the page, in a real browser against a real server and real
Docker: matplotlib's plt.show() drawn inline in the terminal by @xterm/addon-image (the
server sends it as an iTerm2 inline image), the same figure as an <img> with a download
link in the event-API transcript, and stderr in red there. Each test leaves a screenshot
in test-artifacts/ (the page fixture)."""

from __future__ import annotations

import base64
import re
import urllib.request
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, Page

pytestmark = [pytest.mark.docker, pytest.mark.browser]

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1,3,2])\nplt.show()\nprint('after')"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURE_LINE = "[figure 1: 640\u00d7480]"  # the server's text line after the image
RUN_TIMEOUT = 40  # s: starting a sandbox and importing matplotlib, with room to spare

# The addon's canvas layer over the terminal's text (ImageRenderer.insertLayerToDom in
# @xterm/addon-image 0.9 adds it to the screen element, class `xterm-image-layer`). It
# exists only once an image is stored. A sample of its pixels: how many are not
# transparent, and how many distinct colours they have.
IMAGE_LAYER_PIXELS = """
const layers = document.querySelectorAll('[data-testid=terminal] canvas.xterm-image-layer');
if (layers.length !== 1) return {layers: layers.length};
const c = layers[0];
if (!c.width || !c.height) return {layers: 1, width: c.width, height: c.height};
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let sampled = 0, opaque = 0;
const colours = new Set();
for (let i = 0; i < d.length; i += 4 * 5) {
  sampled++;
  if (d[i + 3] === 0) continue;
  opaque++;
  colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
}
return {layers: 1, width: c.width, height: c.height, sampled, opaque, colours: colours.size};
"""

# The event-API transcript around its figure: the text of the nodes before and after it.
FIGURE_IN_TRANSCRIPT = """
const box = document.querySelector('[data-testid=events-transcript]');
const figures = box.querySelectorAll('figure.figure');
if (figures.length !== 1) return {figures: figures.length};
const figure = figures[0];
const img = figure.querySelector('img');
const link = figure.querySelector('a[download]');
let before = '', after = '', seen = false;
for (const node of box.childNodes) {
  if (node === figure) seen = true;
  else if (seen) after += node.textContent;
  else before += node.textContent;
}
return {
  figures: 1, before, after, index: figure.dataset.index,
  complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
  attrs: [img.getAttribute('width'), img.getAttribute('height')], alt: img.alt,
  shownWidth: img.getBoundingClientRect().width, boxWidth: box.clientWidth,
  href: link && link.href, download: link && link.getAttribute('download'),
  sessionId: codex.events.state.sessionId,
};
"""


def red(css_colour: str) -> bool:
    m = re.match(r"rgba?\((\d+), (\d+), (\d+)", css_colour)
    assert m, css_colour
    r, g, b = (int(x) for x in m.groups())
    return r >= 150 and g <= 90 and b <= 90


def wait_events_ok(page: Page) -> None:
    page.wait(
        lambda: page.el("events-status").get_attribute("data-state") in ("ok", "failed", "error"),
        "events: finished",
        RUN_TIMEOUT,
    )
    assert page.el("events-status").get_attribute("data-verdict") == "ok", page.events_status


def test_terminal_draws_the_figure_inline(page: Page) -> None:
    page.type_program(PLOT)
    page.el("run").click()
    page.wait_status(r"^ok in", timeout=RUN_TIMEOUT)
    text = page.wait_terminal("after")
    assert FIGURE_LINE in text
    # The image is decoded and drawn asynchronously (createImageBitmap, then a render).
    pixels: dict[str, Any] = page.wait(
        lambda: (p := page.js(IMAGE_LAYER_PIXELS)).get("opaque") and p,
        "the addon's image layer has pixels",
        10,
    )
    # Much of the layer is the figure (fitted to the terminal, its top scrolled away by
    # the two lines after it), and a plot is white, blue, black and grey, not one colour.
    assert pixels["opaque"] > 0.15 * pixels["sampled"], pixels
    assert pixels["colours"] >= 8, pixels
    page.driver.save_screenshot(str(ARTIFACTS / "browser-terminal-figure.png"))
    assert page.browser_errors() == []
    # The next run starts from a clean terminal: term.reset() takes the figure away too.
    page.type_program("print('next')")
    page.el("run").click()
    page.wait_status(r"^ok in", timeout=RUN_TIMEOUT)
    page.wait_terminal("next")
    page.wait(lambda: page.js(IMAGE_LAYER_PIXELS).get("opaque") == 0, "the figure is gone", 5)


def test_event_panel_shows_the_figure_in_place_with_a_download(page: Page) -> None:
    page.type_program("print('before')\n" + PLOT)
    page.el("events-run").click()
    wait_events_ok(page)
    found: dict[str, Any] = page.wait(
        lambda: (f := page.js(FIGURE_IN_TRANSCRIPT)).get("complete") and f,
        "the figure in the transcript, decoded",
        10,
    )
    assert found["natural"] == [640, 480], found["natural"]
    assert found["attrs"] == ["640", "480"]  # from the event's metadata
    assert found["shownWidth"] <= found["boxWidth"]  # max-width: 100%
    assert found["alt"] == "<Figure size 640x480 with 1 Axes>"
    assert found["index"] == "1"
    # At its place: after what was printed before plt.show(), before what came after.
    assert found["before"].strip() == "before", found["before"]
    assert found["after"].startswith(FIGURE_LINE + "\nafter\n"), found["after"]
    # The download is the server's image, byte for byte.
    assert found["download"] == "figure-1.png"
    prefix = "data:image/png;base64,"
    assert found["href"].startswith(prefix), found["href"][:40]
    downloaded = base64.b64decode(found["href"][len(prefix) :], validate=True)
    url = f"{page.base_url}/api/sessions/{found['sessionId']}/displays/1"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("image/png")
        served = resp.read()
    assert served.startswith(PNG_SIGNATURE)
    assert downloaded == served
    assert page.terminal_text == ""  # the terminal panel was not involved
    assert page.browser_errors() == []


def test_figures_module_shows_only_images_and_never_html(page: Page) -> None:
    """figureNode, the page's own module, given payloads no real program can send."""
    result = page.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import(new URL('static/js/figures.js', document.baseURI).href).then(({figureNode}) => {"
        "  const html = '<img src=x onerror=\"window.pwned=1\">';"
        "  const none = [figureNode({data: {'text/html': html}}),"
        "    figureNode({data: {'image/png': 'not base64 <b>'}}), figureNode(null),"
        "    figureNode({data: {'image/gif': 'R0lGODlh'}})].map(n => n === null);"
        "  const f = figureNode({index: 2, data: {'image/jpeg': '/9j/4AAQ', 'text/plain': html,"
        "    'text/html': html}, metadata: {'image/jpeg': {width: '1e9', height: 3}}});"
        "  const img = f.querySelector('img');"
        "  done({none, imgs: f.querySelectorAll('img').length, alt: img.alt, src: img.src,"
        "    width: img.getAttribute('width'), download: f.querySelector('a').download});"
        "}, (err) => done({error: String(err)}));"
    )
    assert result.get("error") is None, result
    assert result["none"] == [True, True, True, True]
    assert result["imgs"] == 1  # the HTML stayed text, in alt
    assert result["alt"].startswith("<img src=x")
    assert result["src"] == "data:image/jpeg;base64,/9j/4AAQ"
    assert result["width"] is None  # a size that is not one is not used
    assert result["download"] == "figure-2.jpg"
    assert page.js("return window.pwned === undefined")


def test_event_panel_shows_stderr_in_red(page: Page) -> None:
    page.type_program("import sys; print('out'); print('err', file=sys.stderr)")
    page.el("events-run").click()
    wait_events_ok(page)
    found = page.js(
        "const box = document.querySelector('[data-testid=events-transcript]');"
        "const spans = Array.from(box.querySelectorAll('.stderr'));"
        "const outNode = Array.from(box.childNodes).find(n => n.textContent.includes('out'));"
        "const outEl = outNode && (outNode.nodeType === 1 ? outNode : outNode.parentElement);"
        "return {stderr: spans.map(s => [s.textContent, getComputedStyle(s).color]),"
        "  outColour: outEl && getComputedStyle(outEl).color,"
        "  outInStderr: !!(outEl && outEl.closest('.stderr')), text: box.innerText};"
    )
    assert found["text"].startswith("out\nerr\n"), found["text"]
    assert [text for text, _ in found["stderr"]] == ["err\n"], found
    assert all(red(colour) for _, colour in found["stderr"]), found
    assert not found["outInStderr"]
    assert not red(found["outColour"]), found

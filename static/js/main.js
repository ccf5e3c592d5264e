/* main.js: the page's entry point (loaded as a module after the deferred vendor
 * scripts). Owns the server readiness badge (/readyz), the banner for missing vendor
 * libraries, taking a `#token=` from the address first, building the Token field, the
 * editor, the request pane, the output-files list and both panels, wiring the buttons
 * and the global Ctrl/Cmd+Enter, and the window.codex hooks for tests and debugging. */
import { apiUrl } from "./api.js";
import { $, openLink, showBanner } from "./dom.js";
import { makeEditor } from "./editor.js";
import { makeEventsPanel } from "./events-panel.js";
import { makeOutputFiles } from "./output-files.js";
import { makeRequestPane } from "./request-pane.js";
import { makeTerminal, makeTerminalRunner } from "./terminal-panel.js";
import { makeTokenField, takeFragmentToken } from "./token.js";

async function checkServer() {
  const el = $("#server");
  try {
    const resp = await fetch(apiUrl("readyz"));
    const body = await resp.json();
    el.dataset.state = body.ready ? "ready" : "down";
    el.textContent = body.ready ? `ready · ${body.runtime || "runtime"}` : "not ready";
    if (!body.ready && body.reason) el.title = body.reason;
  } catch (err) {
    el.dataset.state = "down";
    el.textContent = "unreachable";
  }
}

function main() {
  // First of all: a `#token=` leaves the address bar before anything else runs.
  takeFragmentToken();
  window.addEventListener("hashchange", () => takeFragmentToken());
  makeTokenField({
    form: $("#token-form"),
    input: $("#token"),
    show: $("#token-show"),
    note: $("#token-note"),
  });

  const missing = [];
  if (typeof window.Terminal !== "function") missing.push("@xterm/xterm");
  if (!window.FitAddon) missing.push("@xterm/addon-fit");
  if (typeof window.io !== "function") missing.push("socket.io-client");
  if (typeof window.CodeMirror !== "function") missing.push("codemirror");
  if (missing.length) {
    showBanner(
      `The page's libraries are missing from <code>static/vendor/</code> (${missing.join(", ")}). ` +
        "Run <code>make page</code> (it runs <code>npm ci</code> and copies them), then reload."
    );
  }

  const ui = {
    run: $("#run"),
    stop: $("#stop"),
    status: $("#status"),
    terminal: $("#terminal"),
    eventsPanel: $(".events-panel"),
  };
  const eventsUi = {
    run: $("#events-run"),
    stop: $("#events-stop"),
    status: $("#events-status"),
    transcript: $("#events-transcript"),
    input: $("#events-input"),
    send: $("#events-send"),
    form: $("#events-form"),
    conn: $("#events-conn"),
    terminal: ui.terminal,
  };

  let runner = null;
  let events = null;
  const editor = makeEditor(() => runner && runner.start());
  const pane = makeRequestPane({
    args: $("#args"),
    argsPreview: $("#args-preview"),
    interactive: $("#interactive"),
    list: $("#files"),
    count: $("#files-count"),
    form: $("#file-form"),
    name: $("#file-name"),
    content: $("#file-content"),
    upload: $("#file-upload"),
    note: $("#file-note"),
  });
  const outputs = makeOutputFiles({ list: $("#output-files"), caption: $("#output-files-caption") });
  // Both panels send the same files, args and flag; the list of files a run left shows
  // the run that ended last, and says which panel's it was.
  const requestFor = (source) => ({
    options: () => pane.options(),
    refused: (field) => pane.refused(field),
    started() {
      pane.clearMarks();
      outputs.started(source);
    },
    finished: (result, sessionId) => outputs.finished(source, result, sessionId),
  });

  if (typeof window.Terminal === "function" && window.FitAddon) {
    const { term, refit } = makeTerminal(ui.terminal);
    runner = makeTerminalRunner(editor, term, ui, requestFor("terminal"));
    ui.run.addEventListener("click", () => runner.start());
    ui.stop.addEventListener("click", () => runner.stop());
    window.codex = {
      term,
      editor,
      runner,
      pane,
      refit,
      openLink,
      /** The terminal's text, row by row, trailing blanks trimmed (for tests and debugging). */
      terminalText() {
        const buf = term.buffer.active;
        const rows = [];
        for (let i = 0; i < buf.length; i++) rows.push(buf.getLine(i).translateToString(true));
        return rows.join("\n").replace(/\n+$/, "");
      },
    };
  } else {
    ui.run.disabled = true;
  }
  if (typeof window.io === "function") {
    events = makeEventsPanel(editor, eventsUi, requestFor("events"));
    eventsUi.run.addEventListener("click", () => events.start());
    eventsUi.stop.addEventListener("click", () => events.stop());
    if (window.codex) window.codex.events = events;
  } else {
    eventsUi.run.disabled = true;
  }

  // Ctrl/Cmd+Enter runs from anywhere: in the event-API panel through that panel.
  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.key !== "Enter" || !(e.ctrlKey || e.metaKey) || e.altKey) return;
    e.preventDefault();
    if (eventsUi.form.closest(".events-panel").contains(e.target)) {
      if (events) events.start();
    } else if (runner) {
      runner.start();
    }
  });

  new ResizeObserver(() => editor.refresh()).observe($("#editor"));
  checkServer();
  document.body.dataset.ready = "true";
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
else main();

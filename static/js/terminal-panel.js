/* terminal-panel.js: the Terminal panel. Owns the xterm.js terminal (theme, fit addon,
 * hostile-output guards, the keys the page keeps) and the run over /ws/terminal/<id> in
 * the terminado JSON protocol: ["stdin", data] out, ["stdout", text] and the CodeX
 * events in, ["set_size", rows, cols] on connecting and on every resize. With a token
 * set (token.js), the first message is ["auth", token] (close 4401/4403: refused). The
 * run's lifecycle and status line are the shared run controller's (run-controller.js). */
import { sessionResult, wsUrl } from "./api.js";
import { moveFocus, openLink } from "./dom.js";
import { makeRunController } from "./run-controller.js";
import { authMessage, getToken, tokenRefused } from "./token.js";

const INPUT_CHUNK = 4096; // stdin frames stay well under the server's max_input_bytes
const CLOSE_REFUSED = { 4401: "unauthorized", 4403: "forbidden" }; // the server's close codes

export function makeTerminal(container) {
  const term = new window.Terminal({
    cursorBlink: true,
    fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, "Liberation Mono", monospace',
    fontSize: 14,
    lineHeight: 1.15,
    scrollback: 5000,
    convertEol: false,
    // Links the program prints (OSC 8) open only if they are http(s), via openLink.
    linkHandler: {
      activate: (event, uri) => openLink(uri),
      allowNonHttpProtocols: false,
    },
    theme: {
      background: "#0d1117",
      foreground: "#e6edf3",
      cursor: "#58a6ff",
      cursorAccent: "#0d1117",
      selectionBackground: "#264f78",
      black: "#484f58",
      red: "#ff7b72",
      green: "#3fb950",
      yellow: "#d29922",
      blue: "#58a6ff",
      magenta: "#bc8cff",
      cyan: "#39c5cf",
      white: "#b1bac4",
      brightBlack: "#6e7681",
      brightRed: "#ffa198",
      brightGreen: "#56d364",
      brightYellow: "#e3b341",
      brightBlue: "#79c0ff",
      brightMagenta: "#d2a8ff",
      brightCyan: "#56d4dd",
      brightWhite: "#f0f6fc",
    },
  });
  // Hostile output: no clipboard writes (OSC 52; the clipboard addon is not loaded) and
  // no title changes (OSC 0/1/2; onTitleChange is not wired). A handler returning true
  // swallows the sequence.
  for (const osc of [0, 1, 2, 52]) term.parser.registerOscHandler(osc, () => true);

  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  if (window.WebLinksAddon) {
    term.loadAddon(new window.WebLinksAddon.WebLinksAddon((event, uri) => openLink(uri)));
  }
  loadImages(term);
  container.dataset.focusGroup = "";
  term.open(container);

  // Keys the page keeps: Tab moves focus (keyboard users can leave), Ctrl/Cmd+Enter
  // runs, Ctrl+C with a selection copies (without one it is sent: an interrupt).
  term.attachCustomKeyEventHandler((e) => {
    if (e.type !== "keydown") return true;
    if (e.key === "Tab" && !e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      moveFocus(container, e.shiftKey);
      return false;
    }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) return false;
    if ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key === "c" || e.key === "C") && term.hasSelection()) {
      return false;
    }
    return true;
  });

  let pending = 0;
  function refit() {
    if (pending) return;
    pending = requestAnimationFrame(() => {
      pending = 0;
      if (container.clientWidth > 0 && container.clientHeight > 0) {
        try {
          fit.fit();
        } catch (err) {
          /* not laid out yet */
        }
      }
    });
  }
  new ResizeObserver(refit).observe(container);
  window.addEventListener("resize", refit);
  try {
    fit.fit();
  } catch (err) {
    /* fitted on the first resize */
  }
  return { term, refit };
}

/** Figures: the server sends each one the program displays as an iTerm2 inline image
 * (OSC 1337) in the terminal's stream, and @xterm/addon-image draws it on a canvas layer
 * over the text. Without the addon the page still works: xterm.js drops the sequence and
 * the `[figure n: W×H]` line that follows it says a figure was there. */
function loadImages(term) {
  if (!window.ImageAddon || typeof window.ImageAddon.ImageAddon !== "function") {
    console.warn("terminal: @xterm/addon-image is missing (run `make page`): no inline figures");
    return;
  }
  term.loadAddon(
    new window.ImageAddon.ImageAddon({
      // Output is untrusted and CodeX sends only OSC 1337: no SIXEL decoder for programs
      // to feed, and no pixel-size reports (CSI 14/16/18 t) answered into their stdin.
      sixelSupport: false,
      enableSizeReports: false,
      iipSupport: true,
      // The server's display_max_pixels default (4096×4096) passes: the addon's test is `<`.
      pixelLimit: 4096 * 4096 + 1,
      storageLimit: 64, // MB of decoded images kept for the scrollback
    })
  );
}

/** request: what the run sends besides the program, and where its files go (main.js). */
export function makeTerminalRunner(editor, term, ui, request = null) {
  let ws = null;
  let atLineStart = true;
  const run = makeRunController(editor, ui, {
    busyWhileStarting: true,
    busy: (busy) => ui.run.setAttribute("aria-busy", busy ? "true" : "false"),
    detach: () => closeSocket(),
    reset() {
      atLineStart = true;
      editor.clearError();
      term.reset();
    },
    begin: (token, sessionId) => connect(token, sessionId),
    finished: () => term.write("\x1b[?25l"), // hide the cursor: nothing reads any more
  }, request);
  const state = run.state;

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  function sendSize() {
    // The server owns the size caps (codex/sessions/sizes.py): it clamps what it
    // accepts, and a size it refuses comes back as an error message.
    send(["set_size", Math.max(term.rows, 1), Math.max(term.cols, 1)]);
  }

  function note(text, color) {
    // A line of the page's own (never program output): on a fresh line, dim or red.
    const sgr = color === "red" ? "\x1b[31m" : "\x1b[2m";
    const fresh = atLineStart ? "" : "\r\n";
    term.write(`${fresh}${sgr}${text}\x1b[0m\r\n`);
    atLineStart = true;
  }

  term.onData((data) => {
    if (!state.busy || state.complete || !ws || ws.readyState !== WebSocket.OPEN) return;
    for (let i = 0; i < data.length; i += INPUT_CHUNK) send(["stdin", data.slice(i, i + INPUT_CHUNK)]);
    run.typed();
    if (state.waiting && /[\r\n\x03\x04]/.test(data)) run.answered();
  });
  term.onResize(() => sendSize());

  function closeSocket() {
    if (ws) {
      const old = ws;
      ws = null;
      old.onopen = old.onmessage = old.onclose = old.onerror = null;
      try {
        old.close();
      } catch (err) {
        /* already closed */
      }
    }
  }

  function onMessage(token, raw) {
    if (!run.current(token)) return;
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch (err) {
      return;
    }
    if (!Array.isArray(msg)) return;
    const [kind, body] = msg;
    switch (kind) {
      case "setup":
        break;
      case "stdout":
        if (typeof body === "string" && body) {
          term.write(body);
          atLineStart = /[\r\n]$/.test(body);
          run.output(body);
        }
        break;
      case "queued":
        run.queued(body);
        break;
      case "input_required":
        run.inputRequired(body);
        // The learner answers in the terminal: focus it, unless they are busy in the
        // event-API panel.
        if (!ui.eventsPanel.contains(document.activeElement)) term.focus();
        break;
      case "error":
        onError(body || {});
        break;
      case "execution_complete":
        run.finish(body || {});
        break;
      case "disconnect":
        closeSocket();
        break;
      default:
        break;
    }
  }

  function onError(err) {
    const code = err.code || "error";
    if (!run.error(err)) {
      console.warn("terminal:", code, err.error);
      return; // about a message of ours, not the program's verdict
    }
    if (code === "syntax_error") {
      if (err.line) editor.markError(err.line, err.offset, err.error || "Syntax error", code);
      note(err.error || "Syntax error", "red");
    } else if (code === "runtime_error") {
      if (err.line) editor.markError(err.line, null, err.error || "Error", code);
    } else if (code === "session_not_found") {
      note("The session is gone.", "red");
    } else if (err.error) {
      note(err.error, "red");
    }
  }

  function connect(token, sessionId) {
    const socket = new WebSocket(wsUrl(`ws/terminal/${encodeURIComponent(sessionId)}`));
    ws = socket;
    socket.onopen = () => {
      if (!run.current(token)) return;
      // terminado's way of authenticating: the first message, never the URL. (The
      // "bearer" subprotocol would put it in a header, and not every key is a valid
      // protocol name.) With identity off the server ignores it.
      const credential = getToken();
      if (credential) send(["auth", credential]);
      sendSize(); // the program sees this window's size from the start
      if (!state.waiting && !state.complete) run.running();
    };
    socket.onmessage = (ev) => onMessage(token, ev.data);
    socket.onclose = async (ev) => {
      if (!run.current(token) || state.complete) return;
      ws = null;
      const refusal = CLOSE_REFUSED[ev.code];
      if (refusal) {
        tokenRefused(refusal);
        const said = state.lastError && state.lastError.code === refusal ? state.lastError.error : "";
        run.fail(authMessage(refusal, said), refusal);
        return;
      }
      const result = await sessionResult(sessionId);
      if (!run.current(token) || state.complete) return;
      if (result) run.finish(result);
      else run.fail("The connection to the terminal was lost.");
    };
  }

  return { start: run.start, stop: run.stop, sendSize, state };
}

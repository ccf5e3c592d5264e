/* events-panel.js: the Event API panel, driven the way the existing frontend drives the
 * event API (socket.io-client 4): POST /api/execute, then emit("join"); answers go as
 * emit("input"). Owns the Socket.IO connection (and joining again after a reconnect),
 * the transcript (text batched, trimmed, escape sequences stripped; stderr in red; the
 * figures of `display` events at their place, see figures.js) and the answer box. The
 * connection carries the token (token.js) as socket.io's `auth: {token}`, and connects
 * again when the token changes. The run's lifecycle and status line are the shared run
 * controller's. */
import { ANSI, BASE } from "./api.js";
import { figureNode } from "./figures.js";
import { makeRunController } from "./run-controller.js";
import { authMessage, getToken, isAuthCode, onTokenChange, tokenAccepted, tokenRefused } from "./token.js";

const TRANSCRIPT_LIMIT = 200000; // characters the event-API transcript keeps

/** request: what the run sends besides the program, and where its files go (main.js). */
export function makeEventsPanel(editor, ui, request = null) {
  let socket = null;
  let dropped = false;
  let authSent = null; // the token the connection's last attempt carried ("" none)
  let pendingJoin = null; // a session to join once connected with the current token
  const run = makeRunController(editor, ui, {
    busy(busy) {
      ui.input.disabled = !busy;
      ui.send.disabled = !busy;
      if (!busy) {
        ui.input.placeholder = "answer when the program asks";
        ui.input.type = "text";
      }
    },
    waiting(prompt) {
      ui.input.type = state.password ? "password" : "text";
      ui.input.placeholder = prompt.trim() ? `answer to “${prompt.trim()}”` : "your answer";
    },
    detach(previous) {
      if (previous) socket.emit("leave", { sessionId: previous });
    },
    reset: () => clearTranscript(),
    begin(token, sessionId) {
      run.running();
      // The connection was refused, or carries another token: connect again, then join.
      if (!socket.active || (authSent !== null && authSent !== getToken())) {
        pendingJoin = sessionId;
        reconnect();
        return;
      }
      // POST, then join: output printed before the join is replayed.
      socket.emit("join", { sessionId });
    },
    finished: (result, text) => appendMeta("execution_complete", text, false),
  }, request);
  const state = run.state;
  const transcript = ui.transcript;

  // Output is appended in batches (one layout per batch, not one per event) and the
  // transcript keeps its last TRANSCRIPT_LIMIT characters. A batch is all stdout or all
  // stderr: stdout goes into plain text nodes, stderr into <span class="stderr">.
  let pending = "";
  let pendingStderr = false;
  let flushTimer = null;
  let kept = 0;

  function nearBottom() {
    return transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
  }

  function flush() {
    clearTimeout(flushTimer);
    flushTimer = null;
    if (!pending) return;
    const text = pending;
    pending = "";
    const stick = nearBottom();
    const last = transcript.lastChild;
    if (!pendingStderr && last && last.nodeType === Node.TEXT_NODE) {
      last.appendData(text);
    } else if (pendingStderr && isStderr(last)) {
      last.firstChild.appendData(text);
    } else if (pendingStderr) {
      const span = document.createElement("span");
      span.className = "stderr";
      span.append(document.createTextNode(text));
      transcript.append(span);
    } else {
      transcript.append(document.createTextNode(text));
    }
    kept += text.length;
    trim();
    if (stick) transcript.scrollTop = transcript.scrollHeight;
  }

  function isStderr(node) {
    return !!node && node.nodeType === Node.ELEMENT_NODE && node.classList.contains("stderr");
  }

  function trim() {
    if (kept <= TRANSCRIPT_LIMIT) return;
    let excess = kept - Math.floor(TRANSCRIPT_LIMIT * 0.8);
    let node = transcript.firstChild;
    if (node && node.nodeType === Node.ELEMENT_NODE && node.classList.contains("trimmed")) {
      node = node.nextSibling;
    }
    while (excess > 0 && node) {
      const length = node.textContent.length;
      // Text (stdout's text node, stderr's span) is cut; anything else goes whole.
      const text = isStderr(node) ? node.firstChild : node.nodeType === Node.TEXT_NODE ? node : null;
      if (text && length > excess) {
        text.deleteData(0, excess);
        kept -= excess;
        break;
      }
      const next = node.nextSibling;
      node.remove();
      kept -= length;
      excess -= length;
      node = next;
    }
    if (!transcript.querySelector(".trimmed")) {
      const notice = document.createElement("span");
      notice.className = "meta trimmed";
      notice.textContent = "… earlier output trimmed";
      transcript.prepend(notice);
    }
  }

  function clearTranscript() {
    clearTimeout(flushTimer);
    flushTimer = null;
    pending = "";
    pendingStderr = false;
    kept = 0;
    transcript.textContent = "";
  }

  function append(node) {
    flush();
    const stick = nearBottom();
    transcript.append(node);
    kept += node.textContent.length;
    if (stick) transcript.scrollTop = transcript.scrollHeight;
  }

  function appendOutput(text, stderr) {
    const clean = text.replace(ANSI, "").replace(/\r\n/g, "\n").replace(/\r/g, "");
    if (!clean) return;
    if (pending && pendingStderr !== stderr) flush(); // a batch never mixes the streams
    pendingStderr = stderr;
    pending += clean;
    if (!flushTimer) flushTimer = setTimeout(flush, 40);
  }

  function endsWithNewline() {
    flush();
    const last = transcript.lastChild;
    if (!last) return true;
    // A meta line and a figure are blocks: what follows them starts on a line of its own.
    if (last.nodeType === Node.ELEMENT_NODE && last.matches(".meta, .figure")) return true;
    return last.textContent.endsWith("\n");
  }

  function appendAnswer(text, hidden) {
    const mark = document.createElement("span");
    mark.className = "answer";
    mark.textContent = hidden ? "•".repeat(Math.min(text.length, 12)) : text;
    if (hidden) mark.setAttribute("aria-label", "hidden answer");
    append(mark);
    append(document.createTextNode("\n"));
  }

  function appendMeta(event, text, isError) {
    if (!endsWithNewline()) append(document.createTextNode("\n"));
    const meta = document.createElement("span");
    meta.className = "meta" + (isError ? " error" : "");
    const name = document.createElement("b");
    name.textContent = event;
    meta.append(name, document.createTextNode(` ${text}`));
    append(meta);
  }

  function mine(data) {
    return !data || !data.sessionId || data.sessionId === state.sessionId;
  }

  function reconnect() {
    socket.disconnect();
    socket.connect();
  }

  function connect() {
    const path = new URL("socket.io/", BASE).pathname;
    // A function: every attempt (a reconnect too) carries the token of the moment.
    const auth = (send) => {
      authSent = getToken();
      send(authSent ? { token: authSent } : undefined);
    };
    socket = window.io({ path, auth });
    socket.on("connect", () => {
      ui.conn.dataset.state = "connected";
      ui.conn.textContent = "connected";
      if (authSent) tokenAccepted();
      const joining = pendingJoin;
      pendingJoin = null;
      if (joining && state.busy && state.sessionId === joining) {
        socket.emit("join", { sessionId: joining }); // nothing shown yet: nothing to replay
      } else if (dropped && state.busy && state.sessionId) {
        // A join replays the whole output: start the transcript over.
        clearTranscript();
        appendMeta("reconnected", "joining again; the output is replayed", false);
        socket.emit("join", { sessionId: state.sessionId });
      }
      dropped = false;
    });
    socket.on("disconnect", () => {
      dropped = true;
      ui.conn.dataset.state = "disconnected";
      ui.conn.textContent = "disconnected";
    });
    socket.on("connect_error", (err) => {
      ui.conn.dataset.state = "disconnected";
      const data = (err && err.data) || {};
      if (!isAuthCode(data.code)) {
        ui.conn.textContent = "cannot connect";
        return;
      }
      // Refused by the server: socket.io-client does not try again by itself.
      tokenRefused(data.code);
      ui.conn.textContent = getToken() ? "token refused" : "needs a token";
      if (pendingJoin && state.busy && state.sessionId === pendingJoin) {
        pendingJoin = null;
        run.fail(authMessage(data.code, data.error || err.message), data.code);
      }
    });
    socket.on("output", (data) => {
      if (!mine(data) || !state.sessionId) return;
      if (data && typeof data.output === "string") {
        appendOutput(data.output, data.stream === "stderr");
        run.output(data.output);
      }
    });
    // A figure, at its place among the output: append() flushes the text before it.
    socket.on("display", (data) => {
      if (!mine(data) || !state.sessionId) return;
      const figure = figureNode(data);
      if (figure) append(figure);
    });
    socket.on("queued", (data) => {
      if (!mine(data) || !state.busy) return;
      run.queued(data);
    });
    socket.on("input_required", (data) => {
      if (!mine(data) || !state.busy) return;
      run.inputRequired(data);
      // Take focus, unless the learner is typing in the terminal.
      if (!ui.terminal.contains(document.activeElement)) ui.input.focus();
    });
    socket.on("error", (data) => {
      if (!mine(data) || !state.sessionId) return;
      const err = data || {};
      if (!run.error(err)) {
        appendMeta("error", `${err.code}: ${err.error}`, true);
        return;
      }
      appendMeta("error", `${err.code || "error"}: ${err.error || ""}`, true);
      if (err.code === "syntax_error" && err.line) {
        editor.markError(err.line, err.offset, err.error || "Syntax error", err.code);
      }
      if (isAuthCode(err.code) && state.busy) run.fail(authMessage(err.code, err.error), err.code);
    });
    socket.on("execution_complete", (data) => {
      if (!mine(data) || !state.busy) return;
      run.finish(data || {});
    });
  }

  function submit(e) {
    e.preventDefault();
    if (!state.busy) return;
    const text = ui.input.value;
    socket.emit("input", { input: text, sessionId: state.sessionId });
    // The server adds the newline and the event API never echoes the answer: show it once.
    appendAnswer(text, state.password);
    ui.input.value = "";
    run.answered();
  }

  connect();
  onTokenChange(() => reconnect());
  ui.form.addEventListener("submit", submit);
  return { start: run.start, stop: run.stop, state };
}

/* CodeX page: an editor, an xterm.js terminal on /ws/terminal/<id> (terminado JSON
 * protocol) and, beside it, the event API (Socket.IO) driven as the existing frontend
 * drives it. Plain browser script; its libraries are served from static/vendor/. */
(function () {
  "use strict";

  const $ = (selector) => document.querySelector(selector);
  // Escape sequences, left out of the event-API transcript and of prompts.
  const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[@-Z\\-_]/g;
  const BASE = new URL(".", location.href); // the page's directory: works behind a path prefix
  const STORAGE_KEY = "codex.program";
  const INPUT_CHUNK = 4096; // stdin frames stay well under the server's max_input_bytes
  const TRANSCRIPT_LIMIT = 200000; // characters the event-API transcript keeps

  const DEFAULT_PROGRAM = [
    "# Press Run (or Ctrl+Enter), then answer in the terminal.",
    'name = input("What is your name? ")',
    'print(f"Hello, {name}!")',
    "",
    'age = int(input("How old are you? "))',
    "for year in range(1, 4):",
    '    print(f"In {year} year(s) you will be {age + year}.")',
    "",
  ].join("\n");

  function apiUrl(path) {
    return new URL(path, BASE).toString();
  }

  function wsUrl(path) {
    const url = new URL(path, BASE);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  // ---- shared helpers -------------------------------------------------------------------

  function setStatus(el, state, text) {
    el.dataset.state = state;
    el.querySelector(".text").textContent = text;
  }

  function formatSeconds(ms) {
    const s = (ms || 0) / 1000;
    if (s >= 10) return `${Math.round(s)} s`;
    return `${s.toFixed(2)} s`;
  }

  /** "ok in 0.21 s", "timeout after 10 s", "runtime_error in 0.09 s: ZeroDivisionError: ..." */
  function verdict(result, error) {
    const status = result.status || "unknown";
    let text = status;
    if (status !== "syntax_error") {
      const word = status === "ok" || status === "runtime_error" ? "in" : "after";
      text += ` ${word} ${formatSeconds(result.durationMs)}`;
    }
    let message = "";
    if (status === "timeout" || status === "cancelled") {
      message = ""; // the verdict says it all
    } else if (error && error.error) {
      message = String(error.error).replace(/\.$/, "");
    } else if (status !== "ok" && result.exitCode) {
      message = `exit code ${result.exitCode}`;
    }
    if (message) text += `: ${message}`;
    const extras = [];
    if (result.signal && !message.includes(result.signal) && status !== "cancelled" && status !== "timeout") {
      extras.push(result.signal);
    }
    if (result.truncated) extras.push("output truncated");
    if (extras.length) text += ` (${extras.join(", ")})`;
    return text;
  }

  function verdictState(status) {
    if (status === "ok") return "ok";
    if (status === "cancelled") return "cancelled";
    return "failed";
  }

  function promptText(prompt) {
    const shown = (prompt || "").trim();
    return shown ? `Waiting for input: “${shown}”` : "Waiting for input";
  }

  /** The prompt to show while a program waits. The server's `prompt` is the authority;
   * when it comes empty (the server can send input_required before the output that
   * holds the prompt), the line the program printed last stands in, until a key is typed. */
  function makePromptTracker(onLate) {
    let tail = "";
    let waiting = false;
    let standIn = false;
    return {
      output(text) {
        const all = tail + text.replace(ANSI, "");
        const cut = Math.max(all.lastIndexOf("\n"), all.lastIndexOf("\r"));
        tail = (cut >= 0 ? all.slice(cut + 1) : all).slice(-200);
        if (waiting && standIn && tail.trim()) onLate(tail);
      },
      /** -> [prompt, source] for an input_required event's prompt. */
      required(prompt) {
        waiting = true;
        standIn = !prompt;
        return prompt ? [prompt, "server"] : [tail, "output"];
      },
      typed() {
        standIn = false;
      },
      answered() {
        waiting = false;
        standIn = false;
      },
      reset() {
        tail = "";
        waiting = false;
        standIn = false;
      },
    };
  }

  async function postProgram(code) {
    let resp;
    try {
      resp = await fetch(apiUrl("api/execute"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code, language: "python" }),
      });
    } catch (err) {
      return { ok: false, message: "Cannot reach the server." };
    }
    let body = null;
    try {
      body = await resp.json();
    } catch (err) {
      body = null;
    }
    if (resp.status === 201 && body && typeof body.sessionId === "string") {
      return { ok: true, sessionId: body.sessionId, status: body.status };
    }
    let message = (body && body.error) || `The server answered ${resp.status}.`;
    const retry = resp.headers.get("Retry-After");
    if (retry) message += ` Try again in ${retry} s.`;
    return { ok: false, message, code: body && body.code };
  }

  async function cancelSession(sessionId) {
    try {
      const resp = await fetch(apiUrl(`api/sessions/${encodeURIComponent(sessionId)}`), {
        method: "DELETE",
      });
      return resp.ok;
    } catch (err) {
      return false;
    }
  }

  async function sessionResult(sessionId) {
    try {
      const resp = await fetch(apiUrl(`api/sessions/${encodeURIComponent(sessionId)}`));
      if (!resp.ok) return null;
      const body = await resp.json();
      return body.state === "finished" ? body.result : null;
    } catch (err) {
      return null;
    }
  }

  /** Open a link from program output only if it is http(s), without giving it our window. */
  function openLink(uri) {
    let url;
    try {
      url = new URL(uri);
    } catch (err) {
      return;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return;
    const win = window.open(url.href, "_blank", "noopener,noreferrer");
    if (win) win.opener = null;
  }

  /** Focusable controls in document order, for leaving the editor or terminal by keyboard. */
  function moveFocus(from, backwards) {
    const all = Array.from(
      document.querySelectorAll(
        'button:not([disabled]), input:not([disabled]), a[href], [tabindex]:not([tabindex="-1"]), textarea:not([disabled])'
      )
    ).filter((el) => el.offsetParent !== null || el === document.activeElement);
    const container = from.closest("[data-focus-group]") || from;
    let index;
    if (backwards) {
      const before = all.filter(
        (el) => !container.contains(el) && el.compareDocumentPosition(container) & Node.DOCUMENT_POSITION_FOLLOWING
      );
      index = before.length ? before[before.length - 1] : null;
    } else {
      index = all.find(
        (el) => !container.contains(el) && el.compareDocumentPosition(container) & Node.DOCUMENT_POSITION_PRECEDING
      );
    }
    if (index) index.focus();
  }

  function showBanner(html) {
    const banner = $("#banner");
    banner.innerHTML = html;
    banner.hidden = false;
  }

  // ---- the editor -----------------------------------------------------------------------

  function loadProgram() {
    try {
      const saved = localStorage.getItem(STORAGE_KEY);
      if (saved !== null && saved.trim() !== "") return saved;
    } catch (err) {
      /* storage may be off */
    }
    return DEFAULT_PROGRAM;
  }

  function saveProgram(code) {
    try {
      localStorage.setItem(STORAGE_KEY, code);
    } catch (err) {
      /* storage may be off */
    }
  }

  function makeEditor(onRun) {
    const wrap = $("#editor");
    wrap.dataset.focusGroup = "";
    const textarea = $("#code");
    textarea.value = loadProgram();
    let marks = null;

    if (typeof window.CodeMirror !== "function") {
      // No CodeMirror: the textarea still edits, indents and runs.
      textarea.addEventListener("keydown", (e) => {
        if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) {
          e.preventDefault();
          textarea.setRangeText("    ", textarea.selectionStart, textarea.selectionEnd, "end");
        }
      });
      return {
        getValue: () => textarea.value,
        setValue: (v) => (textarea.value = v),
        focus: () => textarea.focus(),
        markError(line, col, message) {
          wrap.dataset.errorLine = String(line);
          textarea.title = message;
        },
        clearError() {
          delete wrap.dataset.errorLine;
          textarea.title = "";
        },
        refresh() {},
        cm: null,
      };
    }

    let escaped = false; // Esc, then Tab leaves the editor (Tab alone indents)
    const cm = window.CodeMirror.fromTextArea(textarea, {
      mode: { name: "python", version: 3 },
      lineNumbers: true,
      indentUnit: 4,
      tabSize: 4,
      indentWithTabs: false,
      smartIndent: true,
      electricChars: true,
      styleActiveLine: true,
      matchBrackets: true,
      screenReaderLabel: "Python program",
      extraKeys: {
        Tab(ed) {
          if (escaped) {
            escaped = false;
            moveFocus(wrap, false);
            return;
          }
          if (ed.somethingSelected() && ed.getSelection().includes("\n")) {
            ed.indentSelection("add");
          } else {
            const col = ed.getCursor("from").ch;
            ed.replaceSelection(" ".repeat(4 - (col % 4)), "end", "+input");
          }
        },
        "Shift-Tab"(ed) {
          if (escaped) {
            escaped = false;
            moveFocus(wrap, true);
            return;
          }
          ed.indentSelection("subtract");
        },
        Esc() {
          escaped = true;
        },
        "Ctrl-Enter": () => onRun(),
        "Cmd-Enter": () => onRun(),
      },
    });
    cm.on("keydown", (ed, e) => {
      if (e.key !== "Escape" && e.key !== "Tab" && e.key !== "Shift") escaped = false;
    });
    cm.on("blur", () => {
      escaped = false;
    });
    cm.getInputField().setAttribute("aria-describedby", "editor-hint");

    let saveTimer = null;
    cm.on("changes", () => {
      clearError();
      clearTimeout(saveTimer);
      saveTimer = setTimeout(() => saveProgram(cm.getValue()), 300);
    });

    function clearError() {
      if (!marks) return;
      const m = marks;
      marks = null;
      cm.operation(() => {
        cm.removeLineClass(m.handle, "wrap", "cm-error-line");
        cm.removeLineClass(m.handle, "gutter", "cm-error-gutter");
        m.widget.clear();
        if (m.text) m.text.clear();
      });
      delete wrap.dataset.errorLine;
    }

    /** Point at a line (1-based) and column (1-based, optional) with the message below. */
    function markError(line, col, message, kind) {
      clearError();
      const n = Math.min(Math.max(1, line | 0), cm.lineCount()) - 1;
      const node = document.createElement("div");
      node.className = "cm-error-widget";
      node.setAttribute("role", "note");
      const head = document.createElement("strong");
      head.textContent = `${kind === "syntax_error" ? "Syntax error" : "Error"} on line ${line}: `;
      // "SyntaxError: expected ':' (line 2)" reads "expected ':'" under its line.
      const short = kind === "syntax_error"
        ? String(message).replace(/^SyntaxError:\s*/, "").replace(/\s*\(line \d+\)$/, "")
        : String(message).replace(/\s*\(line \d+\)$/, "");
      node.append(head, document.createTextNode(short || message));
      cm.operation(() => {
        const handle = cm.addLineClass(n, "wrap", "cm-error-line");
        cm.addLineClass(n, "gutter", "cm-error-gutter");
        const widget = cm.addLineWidget(n, node, { coverGutter: false, noHScroll: true });
        let text = null;
        if (col && col > 0) {
          const len = cm.getLine(n).length;
          const from = Math.min(col - 1, Math.max(0, len - 1));
          if (len > 0) text = cm.markText({ line: n, ch: from }, { line: n, ch: from + 1 }, { className: "cm-error-char" });
        }
        marks = { handle, widget, text };
      });
      wrap.dataset.errorLine = String(n + 1);
      cm.scrollIntoView({ line: n, ch: 0 }, 80);
    }

    return {
      getValue: () => cm.getValue(),
      setValue: (v) => cm.setValue(v),
      focus: () => cm.focus(),
      markError,
      clearError,
      refresh: () => cm.refresh(),
      cm,
    };
  }

  // ---- the terminal ---------------------------------------------------------------------

  function makeTerminal(container) {
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

  // ---- the terminal panel's run ---------------------------------------------------------

  function makeTerminalRunner(editor, term, ui) {
    const run = {
      token: 0,
      sessionId: null,
      ws: null,
      busy: false, // POSTed and not finished
      waiting: false,
      complete: null,
      lastError: null,
      atLineStart: true,
    };

    function send(message) {
      if (run.ws && run.ws.readyState === WebSocket.OPEN) run.ws.send(JSON.stringify(message));
    }

    function sendSize() {
      const rows = Math.min(Math.max(term.rows, 1), 1000);
      const cols = Math.min(Math.max(term.cols, 1), 1000);
      send(["set_size", rows, cols]);
    }

    function setBusy(busy, starting) {
      run.busy = busy;
      ui.run.disabled = !!starting;
      ui.stop.disabled = !busy;
      ui.run.setAttribute("aria-busy", busy ? "true" : "false");
    }

    function note(text, color) {
      // A line of the page's own (never program output): on a fresh line, dim or red.
      const sgr = color === "red" ? "\x1b[31m" : "\x1b[2m";
      const fresh = run.atLineStart ? "" : "\r\n";
      term.write(`${fresh}${sgr}${text}\x1b[0m\r\n`);
      run.atLineStart = true;
    }

    const prompts = makePromptTracker((prompt) => showWaiting(prompt, "output"));

    function showWaiting(prompt, source) {
      setStatus(ui.status, "waiting", promptText(prompt) + (run.password ? " (hidden)" : ""));
      ui.status.dataset.prompt = prompt;
      ui.status.dataset.promptSource = source;
    }

    term.onData((data) => {
      if (!run.busy || run.complete || !run.ws || run.ws.readyState !== WebSocket.OPEN) return;
      for (let i = 0; i < data.length; i += INPUT_CHUNK) send(["stdin", data.slice(i, i + INPUT_CHUNK)]);
      prompts.typed();
      if (run.waiting && /[\r\n\x03\x04]/.test(data)) {
        run.waiting = false;
        prompts.answered();
        setStatus(ui.status, "running", "Running…");
      }
    });
    term.onResize(() => sendSize());

    function closeSocket() {
      if (run.ws) {
        const ws = run.ws;
        run.ws = null;
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch (err) {
          /* already closed */
        }
      }
    }

    function finish(result) {
      run.complete = result;
      run.waiting = false;
      prompts.answered();
      setBusy(false);
      const err = run.lastError;
      setStatus(ui.status, verdictState(result.status), verdict(result, err));
      ui.status.dataset.verdict = result.status;
      term.write("\x1b[?25l"); // hide the cursor: nothing reads any more
    }

    function onMessage(token, raw) {
      if (token !== run.token) return;
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
            run.atLineStart = /[\r\n]$/.test(body);
            prompts.output(body);
          }
          break;
        case "input_required": {
          run.waiting = true;
          run.password = !!(body && body.password);
          const [prompt, source] = prompts.required((body && body.prompt) || "");
          showWaiting(prompt, source);
          // The learner answers in the terminal: focus it, unless they are busy in the
          // event-API panel.
          if (!ui.eventsPanel.contains(document.activeElement)) term.focus();
          break;
        }
        case "error":
          onError(body || {});
          break;
        case "execution_complete":
          finish(body || {});
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
      if (code === "invalid_field" || code === "payload_too_large" || code === "session_finished") {
        console.warn("terminal:", code, err.error);
        return; // about a message of ours, not the program's verdict
      }
      run.lastError = err;
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
      const ws = new WebSocket(wsUrl(`ws/terminal/${encodeURIComponent(sessionId)}`));
      run.ws = ws;
      ws.onopen = () => {
        if (token !== run.token) return;
        sendSize(); // the program sees this window's size from the start
        if (!run.waiting && !run.complete) setStatus(ui.status, "running", "Running…");
      };
      ws.onmessage = (ev) => onMessage(token, ev.data);
      ws.onclose = async () => {
        if (token !== run.token || run.complete) return;
        run.ws = null;
        const result = await sessionResult(sessionId);
        if (token !== run.token || run.complete) return;
        if (result) {
          finish(result);
        } else {
          setBusy(false);
          setStatus(ui.status, "error", "The connection to the terminal was lost.");
        }
      };
    }

    async function start() {
      const code = editor.getValue();
      saveProgram(code);
      const previous = run.busy ? run.sessionId : null;
      const token = ++run.token;
      closeSocket();
      if (previous) cancelSession(previous); // Run while running starts over
      Object.assign(run, {
        sessionId: null,
        waiting: false,
        password: false,
        complete: null,
        lastError: null,
        atLineStart: true,
      });
      prompts.reset();
      editor.clearError();
      term.reset();
      delete ui.status.dataset.verdict;
      delete ui.status.dataset.prompt;
      delete ui.status.dataset.promptSource;
      setBusy(true, true);
      setStatus(ui.status, "starting", "Starting…");
      const created = await postProgram(code);
      if (token !== run.token) return;
      if (!created.ok) {
        setBusy(false);
        setStatus(ui.status, "error", created.message);
        return;
      }
      run.sessionId = created.sessionId;
      setBusy(true, false);
      connect(token, created.sessionId);
    }

    async function stop() {
      if (!run.busy || !run.sessionId) return;
      ui.stop.disabled = true;
      setStatus(ui.status, "running", "Stopping…");
      const sessionId = run.sessionId;
      const token = run.token;
      const ok = await cancelSession(sessionId);
      if (!ok && token === run.token && !run.complete) {
        const result = await sessionResult(sessionId);
        if (result && token === run.token && !run.complete) finish(result);
      }
    }

    return { start, stop, sendSize, state: run };
  }

  // ---- the event-API panel (Socket.IO, as the existing frontend does it) ------------------


  function makeEventsPanel(editor, ui) {
    const state = {
      socket: null,
      sessionId: null,
      busy: false,
      waiting: false,
      password: false,
      lastError: null,
      dropped: false,
    };
    const transcript = ui.transcript;

    // Output is appended in batches (one layout per batch, not one per event) and the
    // transcript keeps its last TRANSCRIPT_LIMIT characters.
    let pending = "";
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
      if (last && last.nodeType === Node.TEXT_NODE) last.appendData(text);
      else transcript.append(document.createTextNode(text));
      kept += text.length;
      trim();
      if (stick) transcript.scrollTop = transcript.scrollHeight;
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
        if (node.nodeType === Node.TEXT_NODE && length > excess) {
          node.deleteData(0, excess);
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

    function appendOutput(text) {
      const clean = text.replace(ANSI, "").replace(/\r\n/g, "\n").replace(/\r/g, "");
      if (!clean) return;
      pending += clean;
      if (!flushTimer) flushTimer = setTimeout(flush, 40);
    }

    function endsWithNewline() {
      flush();
      const last = transcript.lastChild;
      if (!last) return true;
      if (last.nodeType === Node.ELEMENT_NODE && last.classList.contains("meta")) return true;
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

    function setBusy(busy) {
      state.busy = busy;
      ui.stop.disabled = !busy;
      ui.input.disabled = !busy;
      ui.send.disabled = !busy;
      if (!busy) {
        prompts.answered();
        ui.input.placeholder = "answer when the program asks";
        ui.input.type = "text";
        state.waiting = false;
      }
    }

    const prompts = makePromptTracker((prompt) => showWaiting(prompt, "output"));

    function showWaiting(prompt, source) {
      ui.input.placeholder = prompt.trim() ? `answer to “${prompt.trim()}”` : "your answer";
      setStatus(ui.status, "waiting", promptText(prompt) + (state.password ? " (hidden)" : ""));
      ui.status.dataset.prompt = prompt;
      ui.status.dataset.promptSource = source;
    }

    function mine(data) {
      return !data || !data.sessionId || data.sessionId === state.sessionId;
    }

    function connect() {
      const path = new URL("socket.io/", BASE).pathname;
      const socket = window.io({ path });
      state.socket = socket;
      socket.on("connect", () => {
        ui.conn.dataset.state = "connected";
        ui.conn.textContent = "connected";
        if (state.dropped && state.busy && state.sessionId) {
          // A join replays the whole output: start the transcript over.
          clearTranscript();
          appendMeta("reconnected", "joining again; the output is replayed", false);
          socket.emit("join", { sessionId: state.sessionId });
        }
        state.dropped = false;
      });
      socket.on("disconnect", () => {
        state.dropped = true;
        ui.conn.dataset.state = "disconnected";
        ui.conn.textContent = "disconnected";
      });
      socket.on("connect_error", () => {
        ui.conn.dataset.state = "disconnected";
        ui.conn.textContent = "cannot connect";
      });
      socket.on("output", (data) => {
        if (!mine(data) || !state.sessionId) return;
        if (data && typeof data.output === "string") {
          appendOutput(data.output);
          prompts.output(data.output);
        }
      });
      socket.on("input_required", (data) => {
        if (!mine(data) || !state.busy) return;
        state.waiting = true;
        state.password = !!(data && data.password);
        ui.input.type = state.password ? "password" : "text";
        const [prompt, source] = prompts.required((data && data.prompt) || "");
        showWaiting(prompt, source);
        // Take focus, unless the learner is typing in the terminal.
        if (!ui.terminal.contains(document.activeElement)) ui.input.focus();
      });
      socket.on("error", (data) => {
        if (!mine(data) || !state.sessionId) return;
        const err = data || {};
        if (err.code === "invalid_field" || err.code === "payload_too_large" || err.code === "session_finished") {
          appendMeta("error", `${err.code}: ${err.error}`, true);
          return;
        }
        state.lastError = err;
        appendMeta("error", `${err.code || "error"}: ${err.error || ""}`, true);
        if (err.code === "syntax_error" && err.line) {
          editor.markError(err.line, err.offset, err.error || "Syntax error", err.code);
        }
      });
      socket.on("execution_complete", (data) => {
        if (!mine(data) || !state.busy) return;
        const text = verdict(data || {}, state.lastError);
        setBusy(false);
        setStatus(ui.status, verdictState(data && data.status), text);
        ui.status.dataset.verdict = (data && data.status) || "";
        appendMeta("execution_complete", text, false);
      });
    }

    async function start() {
      const code = editor.getValue();
      saveProgram(code);
      if (state.busy && state.sessionId) {
        state.socket.emit("leave", { sessionId: state.sessionId });
        cancelSession(state.sessionId);
      }
      state.sessionId = null;
      state.lastError = null;
      setBusy(false);
      clearTranscript();
      prompts.reset();
      delete ui.status.dataset.verdict;
      delete ui.status.dataset.prompt;
      delete ui.status.dataset.promptSource;
      ui.run.disabled = true;
      setStatus(ui.status, "starting", "Starting…");
      const created = await postProgram(code);
      ui.run.disabled = false;
      if (!created.ok) {
        setStatus(ui.status, "error", created.message);
        return;
      }
      state.sessionId = created.sessionId;
      setBusy(true);
      setStatus(ui.status, "running", "Running…");
      // POST, then join: output printed before the join is replayed.
      state.socket.emit("join", { sessionId: created.sessionId });
    }

    async function stop() {
      if (!state.busy || !state.sessionId) return;
      ui.stop.disabled = true;
      setStatus(ui.status, "running", "Stopping…");
      await cancelSession(state.sessionId);
    }

    function submit(e) {
      e.preventDefault();
      if (!state.busy) return;
      const text = ui.input.value;
      state.socket.emit("input", { input: text, sessionId: state.sessionId });
      // The server adds the newline and the event API never echoes the answer: show it once.
      appendAnswer(text, state.password);
      ui.input.value = "";
      prompts.answered();
      if (state.waiting) {
        state.waiting = false;
        setStatus(ui.status, "running", "Running…");
      }
    }

    connect();
    ui.form.addEventListener("submit", submit);
    return { start, stop, state };
  }

  // ---- wiring ---------------------------------------------------------------------------

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

    if (typeof window.Terminal === "function" && window.FitAddon) {
      const { term, refit } = makeTerminal(ui.terminal);
      runner = makeTerminalRunner(editor, term, ui);
      ui.run.addEventListener("click", () => runner.start());
      ui.stop.addEventListener("click", () => runner.stop());
      window.codex = {
        term,
        editor,
        runner,
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
      events = makeEventsPanel(editor, eventsUi);
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
})();

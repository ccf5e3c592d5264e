/* run-controller.js: the one run lifecycle both panels share (the terminal panel and the
 * event-API panel differ only in how they talk to the session). Owns, written once:
 * start (save the program, drop and cancel the run it replaces, POST it, guard against a
 * newer start), stop (DELETE, or the REST result if that fails), the Run/Stop buttons'
 * state, the status line (Starting…, Running…, Waiting for input…, Stopping…, the
 * verdict) with its data-state/-verdict/-prompt/-prompt-source, the prompt tracker, the
 * last error and the verdict at the end; a 401/403 goes in the status line (and its
 * data-auth) as the token's problem (token.js). A panel plugs its transport in with
 * hooks; the request pane (files, args, interactive) and the output-files list plug in
 * as `request`. */
import {
  cancelSession,
  makePromptTracker,
  postProgram,
  promptText,
  sessionResult,
  verdict,
  verdictState,
} from "./api.js";
import { saveProgram } from "./editor.js";

// Errors about a message of ours, not the program's verdict.
const ABOUT_OUR_MESSAGE = new Set(["invalid_field", "payload_too_large", "session_finished"]);

export function setStatus(el, state, text) {
  el.dataset.state = state;
  el.querySelector(".text").textContent = text;
}

/**
 * editor: getValue() and clearError(); ui: { run, stop, status } elements.
 * hooks (all optional):
 *   busyWhileStarting  true: busy (Stop enabled) from the POST on, not only once it answered
 *   busy(busy)         after the buttons follow busy
 *   waiting(prompt)    before the status line shows the prompt
 *   detach(previous)   on start, before the replaced session (id or null) is cancelled
 *   reset()            on start, once the state is cleared
 *   begin(token, id)   the session is created: connect to it
 *   finished(result, text)  after the verdict is shown
 * request (optional; main.js makes one per panel from the request pane and the output
 *   files): { options() -> the POST's files, args and interactive; refused(field);
 *   started(); finished(result, sessionId) }
 */
export function makeRunController(editor, ui, hooks, request = null) {
  const state = {
    token: 0, // bumped by every start: answers for an older run are dropped
    sessionId: null,
    busy: false, // POSTed and not finished
    waiting: false,
    queued: false, // a `queued` event came and no output since
    password: false,
    complete: null,
    lastError: null,
  };
  const prompts = makePromptTracker((prompt) => showWaiting(prompt, "output"));

  function status(kind, text) {
    setStatus(ui.status, kind, text);
  }

  function current(token) {
    return token === state.token;
  }

  function setBusy(busy, starting) {
    state.busy = busy;
    ui.run.disabled = !!starting;
    ui.stop.disabled = !busy;
    if (!busy) {
      state.waiting = false;
      prompts.answered();
    }
    if (hooks.busy) hooks.busy(busy);
  }

  function showWaiting(prompt, source) {
    if (hooks.waiting) hooks.waiting(prompt);
    status("waiting", promptText(prompt) + (state.password ? " (hidden)" : ""));
    ui.status.dataset.prompt = prompt;
    ui.status.dataset.promptSource = source;
  }

  /** An input_required event (its body: { prompt, password }). */
  function inputRequired(body) {
    state.queued = false;
    state.waiting = true;
    state.password = !!(body && body.password);
    const [prompt, source] = prompts.required((body && body.prompt) || "");
    showWaiting(prompt, source);
  }

  /** The learner answered: running again. */
  function answered() {
    prompts.answered();
    if (state.waiting) {
      state.waiting = false;
      running();
    }
  }

  function running() {
    state.queued = false;
    status("running", "Running…");
  }

  /** A `queued` event: every slot is taken; its place in line, first come first served. */
  function queued(body) {
    state.queued = true;
    const ahead = Math.max(0, Number(body && body.ahead) || 0);
    status("queued", ahead ? `Queued: ${ahead} ahead of you…` : "Queued: you are next…");
  }

  /** An error event. false: it is about a message of ours and no part of the verdict. */
  function error(err) {
    if (ABOUT_OUR_MESSAGE.has(err.code)) return false;
    state.lastError = err;
    return true;
  }

  /** The run ended with `result` (an execution_complete body): show the verdict. */
  function finish(result) {
    state.complete = result;
    setBusy(false);
    const text = verdict(result, state.lastError);
    status(verdictState(result.status), text);
    ui.status.dataset.verdict = result.status || "";
    if (hooks.finished) hooks.finished(result, text);
    if (request) request.finished(result, state.sessionId);
    return text;
  }

  /** The run cannot go on (the POST failed, the connection was lost). `auth`: the
   * server refused the credential (unauthorized or forbidden), carried as data-auth. */
  function fail(message, auth) {
    setBusy(false);
    status("error", message);
    if (auth) ui.status.dataset.auth = auth;
  }

  /** The server refused the POST. One that names a field (files[1].name, args, ...)
   * says which, in front: the message alone may not tell which file or part it means. */
  function refused(created) {
    if (created.auth) return fail(created.message, created.code);
    if (!created.field) return fail(created.message);
    fail(`Not started — ${created.field}: ${created.message}`);
    ui.status.dataset.field = created.field;
    if (request) request.refused(created.field);
  }

  async function start() {
    const code = editor.getValue();
    saveProgram(code);
    const previous = state.busy ? state.sessionId : null;
    const token = ++state.token;
    if (hooks.detach) hooks.detach(previous);
    if (previous) cancelSession(previous); // Run while running starts over
    Object.assign(state, {
      sessionId: null,
      waiting: false,
      queued: false,
      password: false,
      complete: null,
      lastError: null,
    });
    prompts.reset();
    if (hooks.reset) hooks.reset();
    delete ui.status.dataset.verdict;
    delete ui.status.dataset.prompt;
    delete ui.status.dataset.promptSource;
    delete ui.status.dataset.field;
    delete ui.status.dataset.auth;
    if (request) request.started();
    setBusy(!!hooks.busyWhileStarting, true);
    status("starting", "Starting…");
    const created = await postProgram(code, request ? request.options() : {});
    if (!current(token)) return;
    if (!created.ok) {
      refused(created);
      return;
    }
    state.sessionId = created.sessionId;
    setBusy(true, false);
    hooks.begin(token, created.sessionId);
  }

  async function stop() {
    if (!state.busy || !state.sessionId) return;
    ui.stop.disabled = true;
    status("running", "Stopping…");
    const sessionId = state.sessionId;
    const token = state.token;
    const answer = await cancelSession(sessionId);
    if (answer.auth && current(token) && !state.complete) {
      // Not stopped: the server refused the credential. The run goes on.
      status("error", answer.message);
      ui.status.dataset.auth = answer.code;
      ui.stop.disabled = false;
      return;
    }
    if (!answer.ok && current(token) && !state.complete) {
      const result = await sessionResult(sessionId);
      if (result && current(token) && !state.complete) finish(result);
    }
  }

  return {
    state,
    current,
    start,
    stop,
    inputRequired,
    answered,
    running,
    queued,
    error,
    finish,
    fail,
    output: (text) => {
      if (state.queued) running(); // the program started: its first output
      prompts.output(text);
    },
    typed: () => prompts.typed(),
  };
}

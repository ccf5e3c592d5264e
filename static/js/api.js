/* api.js: what the page says to the server, and the pure helpers both panels share.
 * Owns the URLs (relative to the page's directory, so a path prefix works), the REST
 * calls (postProgram with the request's options, cancelSession, sessionResult,
 * fetchFile), each with the token's Authorization header when one is set (token.js),
 * the verdict text ("ok in 0.21 s", ...), the prompt text and the prompt tracker. No DOM. */
import { authHeaders, authMessage, isAuthCode, tokenAccepted, tokenRefused } from "./token.js";

// Escape sequences, left out of the event-API transcript and of prompts.
export const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[@-Z\\-_]/g;
export const BASE = new URL(".", location.href); // the page's directory: works behind a path prefix

export function apiUrl(path) {
  return new URL(path, BASE).toString();
}

export function wsUrl(path) {
  const url = new URL(path, BASE);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

export function formatSeconds(ms) {
  const s = (ms || 0) / 1000;
  if (s >= 10) return `${Math.round(s)} s`;
  return `${s.toFixed(2)} s`;
}

/** "ok in 0.21 s", "timeout after 10 s", "runtime_error in 0.09 s: ZeroDivisionError: ..." */
export function verdict(result, error) {
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

export function verdictState(status) {
  if (status === "ok") return "ok";
  if (status === "cancelled") return "cancelled";
  return "failed";
}

export function promptText(prompt) {
  const shown = (prompt || "").trim();
  return shown ? `Waiting for input: “${shown}”` : "Waiting for input";
}

/** The prompt to show while a program waits. The server's `prompt` is the authority;
 * when it comes empty (the server can send input_required before the output that
 * holds the prompt), the line the program printed last stands in, until a key is typed. */
export function makePromptTracker(onLate) {
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

/** options: what else the request carries (files, args, interactive; request-pane.js). */
export async function postProgram(code, options = {}) {
  let resp;
  try {
    resp = await fetch(apiUrl("api/execute"), {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify({ ...options, code, language: "python" }),
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
    tokenAccepted();
    return { ok: true, sessionId: body.sessionId, status: body.status };
  }
  const refusal = authRefusal(resp, body);
  if (refusal) return refusal;
  let message = (body && body.error) || `The server answered ${resp.status}.`;
  const retry = resp.headers.get("Retry-After");
  if (retry) message += ` Try again in ${retry} s.`;
  // `field` names what a 400/413 refused (code, stdin, files[1].name, args, ...).
  const field = body && typeof body.field === "string" ? body.field : null;
  return { ok: false, message, code: body && body.code, field };
}

/** A 401 or 403 answer -> { ok: false, code, message, auth: true }; anything else null. */
function authRefusal(resp, body) {
  if (resp.status !== 401 && resp.status !== 403) return null;
  const code = body && isAuthCode(body.code) ? body.code : resp.status === 401 ? "unauthorized" : "forbidden";
  tokenRefused(code);
  return { ok: false, code, message: authMessage(code, body && body.error), auth: true };
}

async function readJson(resp) {
  try {
    return await resp.json();
  } catch (err) {
    return null;
  }
}

/** -> { ok } or, refused, { ok: false, code, message, auth } (auth: a 401 or 403). */
export async function cancelSession(sessionId) {
  try {
    const resp = await fetch(apiUrl(`api/sessions/${encodeURIComponent(sessionId)}`), {
      method: "DELETE",
      headers: authHeaders(),
    });
    if (resp.ok) return { ok: true };
    return authRefusal(resp, await readJson(resp)) || { ok: false };
  } catch (err) {
    return { ok: false };
  }
}

export async function sessionResult(sessionId) {
  try {
    const resp = await fetch(apiUrl(`api/sessions/${encodeURIComponent(sessionId)}`), {
      headers: authHeaders(),
    });
    if (!resp.ok) {
      authRefusal(resp, await readJson(resp));
      return null;
    }
    const body = await resp.json();
    return body.state === "finished" ? body.result : null;
  } catch (err) {
    return null;
  }
}

/** A file (an output file's download) fetched with the token's header, which a link
 * cannot carry. -> { ok: true, blob } or { ok: false, message, code }. */
export async function fetchFile(url) {
  let resp;
  try {
    resp = await fetch(url, { headers: authHeaders() });
  } catch (err) {
    return { ok: false, message: "Cannot reach the server." };
  }
  if (resp.ok) return { ok: true, blob: await resp.blob() };
  const body = await readJson(resp);
  const refusal = authRefusal(resp, body);
  if (refusal) return refusal;
  return { ok: false, message: (body && body.error) || `The server answered ${resp.status}.`, code: body && body.code };
}

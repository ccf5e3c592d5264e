/* token.js: the credential the page sends when the server has identity on (a learner
 * token, or an API key). Nothing tells the page whether identity is on except a refusal
 * (a 401, Socket.IO's connect_error, the terminal's close 4401), so a token, once set,
 * goes with every session call: REST as `Authorization: Bearer`, Socket.IO as
 * `auth: {token}`, the terminal as its first message. Owns the one token (kept in
 * sessionStorage, never localStorage: it ends with the tab), taking it once from the
 * address's fragment (`#token=<jwt>`, then removed from the address bar), the header,
 * the refusal messages and the Token field. It never puts the token in a URL. */

const STORAGE_KEY = "codex.token";
const FRAGMENT_KEY = "token";

let token = load();
let committed = token; // the token the transports were last told about
let state = token ? "set" : "none"; // none, set, needed (401, none set), refused (401)
const changeListeners = [];
const stateListeners = [];

function load() {
  try {
    return sessionStorage.getItem(STORAGE_KEY) || "";
  } catch (err) {
    return ""; // storage may be off: the token lasts as long as the page
  }
}

function store(value) {
  try {
    if (value) sessionStorage.setItem(STORAGE_KEY, value);
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch (err) {
    /* storage may be off */
  }
}

function setState(next) {
  if (next === state) return;
  state = next;
  for (const fn of stateListeners) fn(state);
}

/** What a pasted token becomes: no whitespace around it, no "Bearer " in front. */
export function normalToken(value) {
  return String(value || "")
    .trim()
    .replace(/^bearer\s+/i, "")
    .trim();
}

export function getToken() {
  return token;
}

/** Keep `value` as the token (stored at once, no network). commitToken() then tells
 * the transports that hold a connection (Socket.IO reconnects with it). */
export function setToken(value) {
  const next = normalToken(value);
  if (next === token) return;
  token = next;
  store(token);
  setState(token ? "set" : "none");
}

export function commitToken() {
  if (token === committed) return;
  committed = token;
  for (const fn of changeListeners) fn(token);
}

/** fn(token) when the committed token changes (the field's change, the fragment). */
export function onTokenChange(fn) {
  changeListeners.push(fn);
}

/** fn(state) when the token's state changes: none, set, needed, refused. */
export function onTokenState(fn) {
  stateListeners.push(fn);
}

export function tokenState() {
  return state;
}

/** `headers` with `Authorization: Bearer <token>` when a token is set (else as given). */
export function authHeaders(headers = {}) {
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

/** The server refused a credential (code: unauthorized or forbidden). A 401 says the
 * token is missing or bad; a 403 is about one session, not the token. */
export function tokenRefused(code) {
  if (code === "unauthorized") setState(token ? "refused" : "needed");
}

/** The server accepted a call made with the token. */
export function tokenAccepted() {
  if (token && (state === "needed" || state === "refused")) setState("set");
}

export function isAuthCode(code) {
  return code === "unauthorized" || code === "forbidden";
}

/** The status line's text for a 401 or a 403 (`said`: the server's own sentence). */
export function authMessage(code, said) {
  const detail = said ? String(said).trim() : "";
  if (code === "forbidden") {
    return `Not allowed (403): ${detail || "this session belongs to someone else."}`;
  }
  if (!token) {
    return "This server needs a token (401): paste yours into the Token field at the top, then press Run again.";
  }
  return `The server refused the token (401): ${detail || "it is not valid."} Paste a new one into the Token field.`;
}

/** `#token=<credential>` (alone or among other `&`-separated parts of the fragment):
 * taken as the token, then removed from the address bar with history.replaceState, so
 * it is neither bookmarked nor shared. -> true when the fragment held one. */
export function takeFragmentToken() {
  const hash = location.hash.replace(/^#/, "");
  if (!hash) return false;
  const parts = hash.split("&");
  const at = parts.findIndex((p) => p === FRAGMENT_KEY || p.startsWith(FRAGMENT_KEY + "="));
  if (at < 0) return false;
  let value = parts[at].slice(FRAGMENT_KEY.length + 1);
  try {
    value = decodeURIComponent(value);
  } catch (err) {
    /* not percent-encoded: taken as it is */
  }
  parts.splice(at, 1);
  const rest = parts.join("&");
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  setToken(value);
  commitToken();
  return true;
}

const NOTES = {
  needed: "This server needs a token: paste it here.",
  refused: "The server refused this token.",
};

/** The Token field in the header. ui: { form, input, show, note } */
export function makeTokenField(ui) {
  ui.input.value = token;

  function render() {
    ui.form.dataset.state = state;
    ui.note.textContent = NOTES[state] || "";
    if (state === "needed" || state === "refused") ui.input.setAttribute("aria-invalid", "true");
    else ui.input.removeAttribute("aria-invalid");
  }

  ui.input.addEventListener("input", () => setToken(ui.input.value));
  // Once the field is left (pressing Run leaves it too) or Enter is pressed.
  ui.input.addEventListener("change", () => commitToken());
  ui.form.addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(ui.input.value);
    commitToken();
  });
  ui.show.addEventListener("click", () => {
    const show = ui.input.type === "password";
    ui.input.type = show ? "text" : "password";
    ui.show.setAttribute("aria-pressed", show ? "true" : "false");
    ui.show.textContent = show ? "Hide" : "Show";
  });
  onTokenChange(() => {
    if (normalToken(ui.input.value) !== token) ui.input.value = token;
  });
  onTokenState(render);
  render();
}

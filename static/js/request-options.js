/* request-options.js: the pure half of the request pane (no DOM): the arguments rule
 * (parseArgs), bytes to base64 for uploads, sizes as text, and keeping the files,
 * arguments and the interactive flag in localStorage, bounded. */

const STORAGE_KEY = "codex.request";
// localStorage holds about 5 M characters per origin in Chromium and the program shares
// it: a file over STORE_FILE_BYTES, or past STORE_TOTAL_CHARS in all, is sent but not
// kept (the pane says so), rather than failing the whole save.
export const STORE_FILE_BYTES = 1024 * 1024;
const STORE_TOTAL_CHARS = 3 * 1024 * 1024;

/**
 * One line of arguments -> the list sent as `args` (the program's sys.argv[1:]).
 * Whitespace separates arguments; "double quotes" group words into one argument
 * (the quotes go, and "" is an empty argument); \" is a literal quote. Nothing else is
 * special: no single quotes, no $ or globbing, a backslash before anything but " stays.
 * An unclosed quote runs to the end of the line.
 */
export function parseArgs(line) {
  const args = [];
  let current = "";
  let inArg = false; // a quote pair makes an argument even when it is empty
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "\\" && line[i + 1] === '"') {
      current += '"';
      inArg = true;
      i++;
    } else if (c === '"') {
      quoted = !quoted;
      inArg = true;
    } else if (!quoted && /\s/.test(c)) {
      if (inArg) args.push(current);
      current = "";
      inArg = false;
    } else {
      current += c;
      inArg = true;
    }
  }
  if (inArg) args.push(current);
  return args;
}

/** An ArrayBuffer as base64, in chunks (String.fromCharCode takes only so many arguments). */
export function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

/** "2 B", "1.5 KiB", "3.2 MiB". */
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

function validFile(f) {
  return (
    f && typeof f.name === "string" && f.name && typeof f.content === "string" &&
    (f.encoding === "utf-8" || f.encoding === "base64") && Number.isFinite(f.size)
  );
}

/** -> { args, interactive, files: [{ name, content, encoding, size }] } */
export function loadRequest() {
  const empty = { args: "", interactive: false, files: [] };
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    if (!saved || typeof saved !== "object") return empty;
    return {
      args: typeof saved.args === "string" ? saved.args : "",
      interactive: saved.interactive === true,
      files: Array.isArray(saved.files) ? saved.files.filter(validFile) : [],
    };
  } catch (err) {
    return empty; // storage off, or not our JSON
  }
}

/** Save what fits; -> the set of file names kept (the others live until a reload). */
export function saveRequest({ args, interactive, files }) {
  const kept = [];
  let total = 0;
  for (const f of files) {
    if (f.size > STORE_FILE_BYTES || total + f.content.length > STORE_TOTAL_CHARS) continue;
    total += f.content.length;
    kept.push({ name: f.name, content: f.content, encoding: f.encoding, size: f.size });
  }
  const store = (list) => localStorage.setItem(STORAGE_KEY, JSON.stringify({ args, interactive, files: list }));
  try {
    store(kept);
  } catch (err) {
    try {
      store([]); // over the quota after all: keep at least the arguments and the flag
    } catch (err2) {
      /* storage may be off */
    }
    return new Set();
  }
  return new Set(kept.map((f) => f.name));
}

/* request-pane.js: the "Files and arguments" pane: the files sent with every Run (typed
 * in, or uploaded from disk as base64), each with a remove button; the arguments line
 * (parseArgs) with a preview of the list it gives; the "Python shell after the run"
 * checkbox. Both panels ask it for options() on Run; refused(field) marks what a 400
 * named. Everything is kept in localStorage (request-options.js). Text shown here comes
 * from the learner's own disk and typing, and still goes in only as textContent. */
import { formatBytes, loadRequest, parseArgs, saveRequest, toBase64, utf8Length } from "./request-options.js";

// Bigger than any server default (1 MiB a file): past this, reading and encoding a file
// would only stall the tab for a request the server refuses anyway.
const UPLOAD_LIMIT = 16 * 1024 * 1024;

/** ui: { args, argsPreview, interactive, list, count, form, name, content, upload, note } */
export function makeRequestPane(ui) {
  const saved = loadRequest();
  let files = saved.files; // [{ name, content, encoding, size }], in the order sent
  let kept = new Set(files.map((f) => f.name));
  ui.args.value = saved.args;
  ui.interactive.checked = saved.interactive;

  function save() {
    kept = saveRequest({ args: ui.args.value, interactive: ui.interactive.checked, files });
  }

  function note(text, isError) {
    ui.note.textContent = text;
    ui.note.classList.toggle("error", !!isError);
  }

  function showArgs() {
    const args = parseArgs(ui.args.value);
    ui.argsPreview.textContent = "";
    if (!args.length) {
      ui.argsPreview.append("No arguments: ", code("sys.argv"), " is ", code("['main.py']"), ".");
      return;
    }
    // JSON.stringify quotes each argument the way the reader expects to see it.
    ui.argsPreview.append(code("sys.argv[1:]"), " = ", code(`[${args.map((a) => JSON.stringify(a)).join(", ")}]`));
  }

  function code(text) {
    const el = document.createElement("code");
    el.textContent = text;
    return el;
  }

  function render() {
    ui.list.textContent = "";
    ui.count.textContent = files.length ? `(${files.length})` : "";
    if (!files.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No files: the program's folder holds only main.py.";
      ui.list.append(empty);
    }
    for (const f of files) ui.list.append(fileItem(f));
  }

  function fileItem(f) {
    const li = document.createElement("li");
    li.dataset.name = f.name;
    const name = document.createElement("button");
    name.type = "button";
    name.className = "file-name";
    name.textContent = f.name;
    if (f.encoding === "utf-8") {
      name.title = "Edit: puts the file back in the form";
      name.addEventListener("click", () => edit(f));
    } else {
      name.disabled = true; // binary: there is nothing to edit as text
    }
    const size = document.createElement("span");
    size.className = "size";
    size.textContent = `${formatBytes(f.size)} · ${f.encoding === "base64" ? "uploaded" : "text"}`;
    if (!kept.has(f.name)) size.textContent += " · not kept after a reload (too large to store)";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn small remove";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${f.name}`);
    remove.addEventListener("click", () => {
      files = files.filter((g) => g !== f);
      changed(`Removed ${f.name}.`);
    });
    li.append(name, size, remove);
    return li;
  }

  function edit(f) {
    ui.name.value = f.name;
    ui.content.value = f.content;
    ui.content.focus();
    note(`Editing ${f.name}: Add file replaces it.`);
  }

  function changed(message) {
    clearMarks();
    save();
    render();
    note(message);
  }

  /** Add, or replace the file of the same name (the server refuses a name given twice). */
  function put(file) {
    const at = files.findIndex((f) => f.name === file.name);
    if (at >= 0) files[at] = file;
    else files.push(file);
    return at >= 0;
  }

  function addTyped(e) {
    e.preventDefault();
    // Only emptiness is checked here: the server's rules (relative, no "..", not
    // main.py, ...) are the authority, and a 400 names the file in the status line.
    const name = ui.name.value.trim();
    if (!name) {
      note("Give the file a name first (e.g. data.csv).", true);
      ui.name.focus();
      return;
    }
    const content = ui.content.value;
    const replaced = put({ name, content, encoding: "utf-8", size: utf8Length(content) });
    ui.name.value = "";
    ui.content.value = "";
    changed(`${replaced ? "Replaced" : "Added"} ${name}.`);
  }

  /** An uploaded file's name: its own, or the Name box's (a folder if it ends in /). */
  function uploadName(file, count) {
    const typed = ui.name.value.trim();
    if (typed.endsWith("/")) return typed + file.name;
    if (typed && count === 1) return typed;
    return file.name;
  }

  async function upload() {
    const chosen = Array.from(ui.upload.files || []);
    const added = [];
    for (const file of chosen) {
      if (file.size > UPLOAD_LIMIT) {
        note(`${file.name} is ${formatBytes(file.size)}: too large to send.`, true);
        continue;
      }
      try {
        const buffer = await file.arrayBuffer();
        const name = uploadName(file, chosen.length);
        put({ name, content: toBase64(buffer), encoding: "base64", size: buffer.byteLength });
        added.push(name);
      } catch (err) {
        note(`${file.name} could not be read.`, true);
      }
    }
    ui.upload.value = ""; // choosing the same file again is a change again
    if (added.length) {
      ui.name.value = "";
      changed(`Uploaded ${added.join(", ")}.`);
    }
  }

  function clearMarks() {
    for (const el of ui.list.querySelectorAll("[data-invalid]")) delete el.dataset.invalid;
    ui.list.removeAttribute("aria-invalid");
    ui.args.removeAttribute("aria-invalid");
  }

  /** A 400 named `field` (files[1].name, files, args[0], ...): point at it. */
  function refused(field) {
    clearMarks();
    const one = /^files\[(\d+)\]/.exec(field || "");
    if (one) {
      const item = ui.list.children[Number(one[1])];
      if (item && item.dataset.name !== undefined) item.dataset.invalid = field;
    } else if (field === "files") {
      ui.list.setAttribute("aria-invalid", "true");
    } else if (/^args\b/.test(field || "")) {
      ui.args.setAttribute("aria-invalid", "true");
    }
  }

  ui.form.addEventListener("submit", addTyped);
  ui.upload.addEventListener("change", upload);
  ui.args.addEventListener("input", () => {
    ui.args.removeAttribute("aria-invalid");
    showArgs();
    save();
  });
  ui.interactive.addEventListener("change", save);
  render();
  showArgs();

  return {
    /** The request's options besides the program, for POST /api/execute. */
    options: () => ({
      files: files.map(({ name, content, encoding }) => ({ name, content, encoding })),
      args: parseArgs(ui.args.value),
      interactive: ui.interactive.checked,
    }),
    refused,
    clearMarks,
    files: () => files.slice(),
  };
}

/* output-files.js: "Files the last run left": when a run ends (either panel), the files
 * its execution_complete lists ({name, size, sha256}, or {name, size, omitted}), each
 * collected one with a download link to GET /api/sessions/<id>/files/<path>, the
 * omitted ones greyed with the reason. Names and reasons come from the program: they
 * go in as textContent and into the URL only through encodeURIComponent. A link cannot
 * carry the token's header: with a token set, a click fetches the file with it and
 * saves it from a blob: URL instead (without one, the plain link, as before). */
import { apiUrl, fetchFile } from "./api.js";
import { formatBytes } from "./request-options.js";
import { getToken } from "./token.js";

const SOURCES = { terminal: "the terminal run", events: "the event-API run" };
const BLOB_LIFETIME = 60000; // ms a saved file's blob: URL is kept before it is revoked

/** The download URL: each path segment encoded, the "/" between them kept. */
export function fileUrl(sessionId, name) {
  const path = String(name).split("/").map(encodeURIComponent).join("/");
  return apiUrl(`api/sessions/${encodeURIComponent(sessionId)}/files/${path}`);
}

/** ui: { list, caption } */
export function makeOutputFiles(ui) {
  let shownFrom = null; // the panel whose run the list shows

  function caption(text) {
    ui.caption.textContent = text;
  }

  function item(file, sessionId) {
    const li = document.createElement("li");
    li.dataset.name = String(file.name);
    const size = document.createElement("span");
    size.className = "size";
    size.textContent = formatBytes(Number(file.size));
    if (file.omitted) {
      li.className = "omitted";
      li.dataset.omitted = String(file.omitted);
      const name = document.createElement("span");
      name.className = "file-name";
      name.textContent = String(file.name);
      const reason = document.createElement("span");
      reason.className = "reason";
      reason.textContent = `not collected: ${file.omitted}`;
      li.append(name, size, reason);
      return li;
    }
    const link = document.createElement("a");
    link.className = "file-name";
    link.href = fileUrl(sessionId, file.name);
    link.download = String(file.name).split("/").pop(); // the server says attachment too
    link.textContent = String(file.name);
    if (typeof file.sha256 === "string") link.title = `sha256 ${file.sha256}`;
    link.addEventListener("click", (e) => {
      if (!getToken()) return; // the plain link: nothing to authenticate
      e.preventDefault();
      saveWithToken(link, li);
    });
    li.append(link, size);
    return li;
  }

  /** The file, fetched with the Authorization header, saved through a blob: URL. */
  async function saveWithToken(link, li) {
    const old = li.querySelector(".download-error");
    if (old) old.remove();
    li.dataset.downloading = "true";
    const got = await fetchFile(link.href);
    delete li.dataset.downloading;
    if (!got.ok) {
      const problem = document.createElement("span");
      problem.className = "reason download-error";
      problem.setAttribute("role", "alert");
      problem.textContent = got.message;
      li.append(problem);
      return;
    }
    const url = URL.createObjectURL(got.blob);
    const save = document.createElement("a");
    save.href = url;
    save.download = link.download;
    save.hidden = true;
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), BLOB_LIFETIME);
  }

  return {
    /** A run starts in `source`: the list it showed belongs to a run now replaced. */
    started(source) {
      if (shownFrom !== source) return;
      shownFrom = null;
      ui.list.textContent = "";
      delete ui.list.dataset.sessionId;
      caption(`Waiting for ${SOURCES[source] || "the run"} to end…`);
    },
    /** A run in `source` ended with `result` (an execution_complete body). */
    finished(source, result, sessionId) {
      shownFrom = source;
      const files = Array.isArray(result && result.files) ? result.files : [];
      const id = (result && result.sessionId) || sessionId;
      ui.list.textContent = "";
      ui.list.dataset.sessionId = id || "";
      for (const f of files) {
        if (f && typeof f.name === "string" && id) ui.list.append(item(f, id));
      }
      const unlisted = Number(result && result.filesUnlisted) || 0;
      if (unlisted > 0) {
        const more = document.createElement("li");
        more.className = "omitted unlisted";
        more.textContent = `and ${unlisted} more not collected, not listed`;
        ui.list.append(more);
      }
      const from = SOURCES[source] || "the run";
      caption(files.length ? `Left by ${from}:` : `${from[0].toUpperCase()}${from.slice(1)} left no files.`);
    },
  };
}

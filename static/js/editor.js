/* editor.js: the Program panel. Owns the CodeMirror 5 editor (or the bare textarea when
 * CodeMirror is missing): its keys (Tab indents, Esc then Tab leaves, Ctrl/Cmd+Enter
 * runs), the error marks under a line, and keeping the program in localStorage. */
import { $, moveFocus } from "./dom.js";

const STORAGE_KEY = "codex.program";

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

function loadProgram() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved !== null && saved.trim() !== "") return saved;
  } catch (err) {
    /* storage may be off */
  }
  return DEFAULT_PROGRAM;
}

export function saveProgram(code) {
  try {
    localStorage.setItem(STORAGE_KEY, code);
  } catch (err) {
    /* storage may be off */
  }
}

export function makeEditor(onRun) {
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

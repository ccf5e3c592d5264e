// The seed frontend's flow, driven by the real socket.io-client 4 under Node.
//
//   node seed_flow.mjs BASE_URL
//
// Connects with io(BASE_URL) and DEFAULT options (long polling first, then the
// upgrade to WebSocket), POSTs a program to /api/execute, joins its session,
// answers the one input() prompt with "Ada", and collects every server event
// until execution_complete. Then prints ONE JSON line to stdout:
//
//   {"events": [[name, data], ...], "transport": "websocket"}
//
// and exits 0. On any error, or after a 20 s timeout, prints the error to
// stderr and exits 1. Run by tests/e2e/test_node_client.py.

import { io } from "socket.io-client";

const TIMEOUT_MS = 20_000;
// If the program finishes before the engine's upgrade to WebSocket, wait this
// long for it (the upgrade is never forced; the transport is reported as is).
const UPGRADE_GRACE_MS = 5_000;
const CODE = 'print("hello from python")\nname = input("Your name? ")\nprint("Hi " + name + "!")\n';
const ANSWERS = ["Ada"];

const baseUrl = process.argv[2];
if (!baseUrl) {
  process.stderr.write("usage: node seed_flow.mjs BASE_URL\n");
  process.exit(2);
}

let socket;

function fail(err) {
  const text = err instanceof Error ? err.stack || err.message : String(err);
  process.stderr.write(`seed_flow: ${text}\n`);
  if (socket) socket.disconnect();
  process.exit(1);
}

const timer = setTimeout(() => fail(new Error(`timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
process.on("unhandledRejection", fail);
process.on("uncaughtException", fail);

function waitForUpgrade(engine, ms) {
  if (engine.transport.name !== "polling") return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    engine.once("upgrade", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function main() {
  const events = [];
  const answers = [...ANSWERS];
  let resolveDone;
  const done = new Promise((resolve) => {
    resolveDone = resolve;
  });

  // 1. Connect the socket (the page does this at load, before "Run").
  socket = io(baseUrl);
  socket.onAny((name, data) => {
    events.push([name, data === undefined ? null : data]);
    if (name === "input_required" && answers.length > 0) {
      socket.emit("input", { input: answers.shift() });
    }
    if (name === "execution_complete") resolveDone();
  });
  socket.on("disconnect", (reason) => {
    if (reason !== "io client disconnect") fail(new Error(`disconnected: ${reason}`));
  });
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });

  // 2. POST the code (Node's global fetch).
  const resp = await fetch(new URL("/api/execute", baseUrl), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code: CODE, language: "python" }),
  });
  const body = await resp.text();
  if (resp.status !== 201) throw new Error(`POST /api/execute: ${resp.status} ${body}`);
  const { sessionId } = JSON.parse(body);
  if (!sessionId) throw new Error(`POST /api/execute: no sessionId in ${body}`);

  // 3. Join: the server replays what was printed so far, then streams live.
  socket.emit("join", { sessionId });

  await done;
  await waitForUpgrade(socket.io.engine, UPGRADE_GRACE_MS);
  const transport = socket.io.engine.transport.name;
  clearTimeout(timer);
  const line = JSON.stringify({ events, transport }) + "\n";
  process.stdout.write(line, () => {
    // Close cleanly (the server sees a client disconnect) and let Node exit once
    // the WebSocket is closed; a hard exit only if something keeps it alive.
    socket.disconnect();
    setTimeout(() => process.exit(0), 2_000).unref();
  });
}

main().catch(fail);

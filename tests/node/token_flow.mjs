// A host application's learner token, minted with `jose` exactly as docs/deployment.md
// shows, used by the real socket.io-client 4 (auth: {token}) and fetch (Bearer).
//
//   CODEX_TOKEN_SECRET=... node token_flow.mjs BASE_URL
//
// Prints ONE JSON line: {"output": "...", "status": "ok", "refused": {...}} where
// `refused` is what a connection without a token got (connect_error's message and
// data). Exits 1 on any error or after 20 s. Run by tests/e2e/test_node_client.py.

import { SignJWT } from "jose";
import { io } from "socket.io-client";

const baseUrl = process.argv[2];
const learnerId = "ada";
const timer = setTimeout(() => fail(new Error("timed out after 20 s")), 20_000);

function fail(err) {
  process.stderr.write(`token_flow: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}
process.on("unhandledRejection", fail);

// -- as in docs/deployment.md ----------------------------------------------------------
const secret = new TextEncoder().encode(process.env.CODEX_TOKEN_SECRET);
const token = await new SignJWT({ codex: { timeLimit: 5 } })
  .setProtectedHeader({ alg: "HS256" })
  .setSubject(learnerId).setIssuer("my-lms").setAudience("codex")
  .setIssuedAt().setExpirationTime("1h")
  .sign(secret);
// ---------------------------------------------------------------------------------------

function refusedWithoutToken() {
  return new Promise((resolve) => {
    const bare = io(baseUrl, { reconnection: false });
    bare.on("connect", () => resolve({ connected: true }));
    bare.on("connect_error", (err) => {
      bare.close();
      resolve({ message: err.message, data: err.data });
    });
  });
}

const refused = await refusedWithoutToken();
const socket = io(baseUrl, { auth: { token }, reconnection: false });
await new Promise((resolve, reject) => {
  socket.on("connect", resolve);
  socket.on("connect_error", reject);
});
const response = await fetch(`${baseUrl}/api/execute`, {
  method: "POST",
  headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
  body: JSON.stringify({ code: 'print("hi", input("Who? "))' }),
});
const { sessionId } = await response.json();
let output = "";
socket.on("output", ({ output: text }) => (output += text));
socket.on("input_required", () => socket.emit("input", { input: "Ada", sessionId }));
socket.on("execution_complete", ({ status }) => {
  clearTimeout(timer);
  process.stdout.write(JSON.stringify({ output, status, refused }) + "\n");
  socket.disconnect();
  process.exit(0);
});
socket.emit("join", { sessionId });

// autocannon_test.mjs — a bounded load run against tern-server with autocannon (npm), a load
// generator that shares no code with tern (tern-loadgen is the C one).
//   node scripts/server/autocannon_test.mjs PORT API_KEY [AMOUNT=600] [CONNECTIONS=12]
// AMOUNT requests over CONNECTIONS keep-alive connections, each connection cycling through a mix:
// completions (plain and streamed), chat (streamed), models, tokenize, health, and bad requests
// (malformed JSON, a wrong type, an unknown model, an unknown path, a missing and a wrong API key).
// Every answer is checked: the status the request must get (or 429 when the queue is full), a JSON
// body of the right shape (OpenAI error objects for errors), streams of `data:` events that parse
// and end with `data: [DONE]`. Then: no connection errors or timeouts, no 5xx, every request
// answered, and /health shows no busy slot and an empty queue. Exits 1 if anything failed.
import autocannon from "autocannon";

const [port, key, amountArg, connArg] = process.argv.slice(2);
const amount = Number(amountArg ?? 600), connections = Number(connArg ?? 12);
const base = `http://127.0.0.1:${port}`;
const auth = { "content-type": "application/json", authorization: `Bearer ${key}` };
const counts = {}, bad = [];

function json(body) { try { return JSON.parse(body); } catch { return null; } }
function isError(o, status) {
  return o && o.error && typeof o.error.message === "string" && typeof o.error.type === "string" &&
         (status !== 401 || o.error.code === "invalid_api_key");
}
// a server-sent event stream: data lines that parse as JSON chunks of `object`, then [DONE]
function isStream(body, object) {
  const events = body.split("\n\n").filter((e) => e.length);
  if (events.length < 2 || events[events.length - 1] !== "data: [DONE]") return false;
  for (const e of events.slice(0, -1)) {
    if (e.startsWith(":")) continue;   // keep-alive comment
    if (!e.startsWith("data: ")) return false;
    const o = json(e.slice(6));
    if (!o || o.object !== object || !Array.isArray(o.choices)) return false;
  }
  return true;
}
function usageOk(o) {
  return o.usage && Number.isInteger(o.usage.prompt_tokens) && Number.isInteger(o.usage.completion_tokens) &&
         o.usage.total_tokens === o.usage.prompt_tokens + o.usage.completion_tokens;
}

// name, request, wanted status, check of a body with that status
const mix = [
  ["completion", { method: "POST", path: "/v1/completions", headers: auth,
                   body: JSON.stringify({ prompt: "ROMEO:", max_tokens: 6, temperature: 0 }) },
   200, (o) => o && o.object === "text_completion" && typeof o.choices?.[0]?.text === "string" && usageOk(o)],
  ["malformed JSON", { method: "POST", path: "/v1/completions", headers: auth, body: '{"prompt": "x", ' }, 400, isError],
  ["chat stream", { method: "POST", path: "/v1/chat/completions", headers: auth,
                    body: JSON.stringify({ messages: [{ role: "user", content: "Hello" }], max_tokens: 6, stream: true, seed: 3 }) },
   200, "stream:chat.completion.chunk"],
  ["wrong type", { method: "POST", path: "/v1/chat/completions", headers: auth,
                   body: JSON.stringify({ messages: "hi" }) }, 400, isError],
  ["models", { method: "GET", path: "/v1/models", headers: auth }, 200, (o) => o && o.object === "list" && o.data.length === 1],
  ["no API key", { method: "POST", path: "/v1/completions", headers: { "content-type": "application/json" },
                   body: JSON.stringify({ prompt: "x" }) }, 401, isError],
  ["completion stream", { method: "POST", path: "/v1/completions", headers: auth,
                          body: JSON.stringify({ prompt: "JULIET:", max_tokens: 5, stream: true, top_k: 5 }) },
   200, "stream:text_completion"],
  ["unknown model", { method: "POST", path: "/v1/completions", headers: auth,
                      body: JSON.stringify({ prompt: "x", model: "gpt-9" }) }, 404, isError],
  ["tokenize", { method: "POST", path: "/tokenize", headers: auth, body: JSON.stringify({ content: "to be or not" }) },
   200, (o) => o && Array.isArray(o.tokens) && o.tokens.length > 0],
  ["wrong API key", { method: "POST", path: "/v1/chat/completions", headers: { ...auth, authorization: "Bearer nope" },
                      body: JSON.stringify({ messages: [{ role: "user", content: "x" }] }) }, 401, isError],
  ["unknown path", { method: "GET", path: "/v1/embeddings", headers: auth }, 404, isError],
  ["health", { method: "GET", path: "/health" }, 200, (o) => o && o.status === "ok"],
];

const requests = mix.map(([name, req, want, ok]) => ({
  ...req,
  onResponse: (status, body) => {
    const c = (counts[name] ??= { answered: 0, status: {} });
    c.answered++;
    c.status[status] = (c.status[status] ?? 0) + 1;
    let good;
    if (status === 429) good = isError(json(body), status);   // queue full: allowed, must be well-formed
    else if (status !== want) good = false;
    else if (typeof ok === "string") good = isStream(body, ok.slice(7));
    else good = ok(json(body), status);
    if (!good && bad.length < 10) bad.push(`${name}: status ${status}: ${body.slice(0, 200)}`);
    if (!good) c.bad = (c.bad ?? 0) + 1;
  },
}));

const result = await autocannon({ url: base, connections, amount, requests, timeout: 60 });
let failed = 0;
function check(name, ok, detail = "") {
  if (ok) console.log(`ok   autocannon: ${name}`);
  else { failed++; console.log(`FAIL autocannon: ${name} ${detail}`); }
}
const answered = Object.values(counts).reduce((s, c) => s + c.answered, 0);
const n429 = Object.values(counts).reduce((s, c) => s + (c.status[429] ?? 0), 0);
console.log(`autocannon: ${amount} requests on ${connections} connections in ${result.duration.toFixed(1)} s: ` +
            `${result["2xx"]} 2xx, ${result["4xx"]} 4xx (${n429} of them 429), ${result["5xx"]} 5xx, ` +
            `${result.errors} errors, ${result.timeouts} timeouts; latency p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`);
for (const [name, c] of Object.entries(counts))
  console.log(`  ${name.padEnd(18)} ${String(c.answered).padStart(5)} answered, status ${JSON.stringify(c.status)}${c.bad ? `, ${c.bad} BAD` : ""}`);
check("every request answered", answered === amount, `${answered} of ${amount}`);
check("every request of the mix sent", Object.keys(counts).length === mix.length, Object.keys(counts).join(","));
check("every answer well-formed with the right status", bad.length === 0, "\n  " + bad.join("\n  "));
check("no connection errors or timeouts", result.errors === 0 && result.timeouts === 0, `${result.errors} errors, ${result.timeouts} timeouts`);
check("no 5xx", result["5xx"] === 0, `${result["5xx"]}`);
// the last answers may still be on their way out of the engine: give it a moment
let h;
for (let i = 0; i < 50; i++) {
  h = await (await fetch(`${base}/health`)).json();
  if (h.slots_busy === 0 && h.queue === 0) break;
  await new Promise((r) => setTimeout(r, 100));
}
check("slots and queue drained", h.slots_busy === 0 && h.queue === 0, JSON.stringify(h));
process.exit(failed ? 1 : 0);

// openai_test.mjs — tern-server against the official OpenAI Node client (npm "openai").
//   node scripts/server/openai_test.mjs BUILD_DIR MODEL.gguf PORT API_KEY
// Checks: models.list; completions (greedy and seeded sampling) equal tern-generate's continuation
// for the same prompt and settings; streaming gives the same text as non-streaming; chat, plain and
// streamed, with usage; logprobs; stop sequences; the client's error classes for a wrong model,
// key and parameter; a stream aborted by the client frees its slot. Prints one line per check;
// exits 1 if any failed.
import OpenAI from "openai";
import { execFileSync } from "node:child_process";

const [build, model, port, key] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 120000 });
let failed = 0, passed = 0;
function check(name, ok, detail = "") {
  if (ok) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name} ${detail}`); }
}

// tern-server's text repair: every byte that does not begin a well-formed UTF-8 sequence becomes U+FFFD
function repair(buf) {
  const out = [];
  let i = 0;
  const cont = (b) => b >= 0x80 && b <= 0xbf;
  while (i < buf.length) {
    const c = buf[i];
    let len = 0, lo = 0x80, hi = 0xbf;
    if (c < 0x80) len = 1;
    else if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) { len = 3; if (c === 0xe0) lo = 0xa0; if (c === 0xed) hi = 0x9f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; if (c === 0xf0) lo = 0x90; if (c === 0xf4) hi = 0x8f; }
    let ok = len > 0 && i + len <= buf.length;
    for (let k = 1; ok && k < len; k++) ok = k === 1 ? buf[i + 1] >= lo && buf[i + 1] <= hi : cont(buf[i + k]);
    if (ok) { for (let k = 0; k < len; k++) out.push(buf[i + k]); i += len; }
    else { out.push(0xef, 0xbf, 0xbd); i += 1; }
  }
  return Buffer.from(out).toString("utf8");
}

// tern-generate prints the prompt, the continuation and a newline
function generate(prompt, n, args) {
  const out = execFileSync(`${build}/tern-generate`, ["-m", model, "-p", prompt, "-n", String(n), ...args],
                           { stdio: ["ignore", "pipe", "ignore"], env: { ...process.env, OMP_NUM_THREADS: "1" } });
  const p = Buffer.from(prompt, "utf8");
  if (!out.subarray(0, p.length).equals(p)) throw new Error("tern-generate did not echo the prompt");
  return repair(out.subarray(p.length, out.length - 1));
}

async function health() { return (await fetch(`${base}/health`)).json(); }

async function main() {
  const models = await client.models.list();
  const id = models.data[0]?.id;
  check("models.list", models.data.length === 1 && typeof id === "string", JSON.stringify(models.data));

  const prompt = "ROMEO: What say you";
  const greedy = await client.completions.create({ model: id, prompt, max_tokens: 24, temperature: 0 });
  const want = generate(prompt, 24, ["--greedy"]);
  check("completions greedy == tern-generate --greedy", greedy.choices[0].text === want,
        `${JSON.stringify(greedy.choices[0].text)} vs ${JSON.stringify(want)}`);
  check("completions usage", greedy.usage.completion_tokens === 24 && greedy.usage.prompt_tokens > 0 &&
        greedy.usage.total_tokens === greedy.usage.prompt_tokens + 24, JSON.stringify(greedy.usage));

  for (const seed of [1, 42, 1234]) {
    const r = await client.completions.create({ model: id, prompt, max_tokens: 20, temperature: 0.9, top_p: 0.9, top_k: 30, seed });
    const w = generate(prompt, 20, ["--temp", "0.9", "--top-p", "0.9", "--top-k", "30", "--seed", String(seed)]);
    check(`completions seed ${seed} == tern-generate --seed ${seed}`, r.choices[0].text === w,
          `${JSON.stringify(r.choices[0].text)} vs ${JSON.stringify(w)}`);
  }

  let streamed = "", chunks = 0, usage = null;
  const stream = await client.completions.create({ model: id, prompt, max_tokens: 24, temperature: 0, stream: true,
                                                   stream_options: { include_usage: true } });
  for await (const ev of stream) {
    chunks++;
    if (ev.choices?.[0]?.text) streamed += ev.choices[0].text;
    if (ev.usage) usage = ev.usage;
  }
  check("completions stream == non-stream", streamed === greedy.choices[0].text && chunks >= 2, `${chunks} chunks`);
  check("completions stream usage", usage?.completion_tokens === 24, JSON.stringify(usage));

  const lp = await client.completions.create({ model: id, prompt, max_tokens: 8, temperature: 0, logprobs: 3 });
  const L = lp.choices[0].logprobs;
  check("completions logprobs", L.tokens.length === 8 && L.token_logprobs.every((x) => x <= 0) &&
        L.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 3) &&
        L.tokens.join("") === lp.choices[0].text, JSON.stringify(L).slice(0, 300));

  // a stop sequence from the middle of the greedy text (it may span tokens)
  const text = greedy.choices[0].text;
  const stopAt = Math.min(6, Math.max(1, text.length - 3));
  const stopSeq = text.slice(stopAt, stopAt + 3);
  const st = await client.completions.create({ model: id, prompt, max_tokens: 24, temperature: 0, stop: [stopSeq] });
  check("completions stop sequence", st.choices[0].finish_reason === "stop" && st.choices[0].text === text.slice(0, text.indexOf(stopSeq)),
        `${JSON.stringify(stopSeq)} -> ${JSON.stringify(st.choices[0].text)}`);

  const messages = [{ role: "system", content: "You are terse." }, { role: "user", content: "Who is Romeo?" }];
  const chat = await client.chat.completions.create({ model: id, messages, max_tokens: 16, seed: 5 });
  const content = chat.choices[0].message.content;
  check("chat.completions", chat.object === "chat.completion" && chat.choices[0].message.role === "assistant" &&
        typeof content === "string" && chat.usage.completion_tokens > 0, JSON.stringify(chat).slice(0, 300));
  let chatStreamed = "", role = null;
  const cs = await client.chat.completions.create({ model: id, messages, max_tokens: 16, seed: 5, stream: true });
  for await (const ev of cs) {
    const d = ev.choices?.[0]?.delta;
    if (d?.role) role = d.role;
    if (d?.content) chatStreamed += d.content;
  }
  check("chat stream == non-stream", chatStreamed === content && role === "assistant", `${JSON.stringify(chatStreamed)} vs ${JSON.stringify(content)}`);

  const chatLp = await client.chat.completions.create({ model: id, messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2 });
  const c = chatLp.choices[0].logprobs?.content;
  check("chat logprobs", Array.isArray(c) && c.length >= 1 && c.every((t) => t.logprob <= 0 && t.top_logprobs.length === 2 && Array.isArray(t.bytes)));

  // errors surface as the client's error classes
  try { await client.completions.create({ model: "gpt-9", prompt: "x" }); check("unknown model -> 404", false); }
  catch (e) { check("unknown model -> NotFoundError 404", e instanceof OpenAI.NotFoundError && e.status === 404, String(e)); }
  try { await client.completions.create({ model: id, prompt: "x", temperature: 5 }); check("bad parameter -> 400", false); }
  catch (e) { check("bad parameter -> BadRequestError 400", e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "temperature", String(e)); }
  const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: "wrong-key", maxRetries: 0 });
  try { await wrong.models.list(); check("wrong key -> 401", false); }
  catch (e) { check("wrong key -> AuthenticationError 401", e instanceof OpenAI.AuthenticationError && e.status === 401, String(e)); }

  // the client aborts a stream: its slot is free again right away
  const ac = new AbortController();
  const long = await client.completions.create({ model: id, prompt, max_tokens: 200, stream: true }, { signal: ac.signal });
  try { for await (const ev of long) { if (ev.choices?.[0]?.text) { ac.abort(); } } } catch (e) { /* aborted */ }
  let h = null;
  for (let i = 0; i < 100; i++) { h = await health(); if (h.slots_busy === 0 && h.queue === 0) break; await new Promise((r) => setTimeout(r, 50)); }
  check("aborted stream frees its slot", h.slots_busy === 0 && h.queue === 0, JSON.stringify(h));

  console.log(`openai client (npm openai): ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
main().catch((e) => { console.log(`FAIL unexpected: ${e?.stack || e}`); process.exit(1); });

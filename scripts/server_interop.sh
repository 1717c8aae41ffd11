#!/usr/bin/env bash
# server_interop.sh — tern-server against real clients (part of `make interop`; alone: make interop-server).
#   scripts/server_interop.sh [BUILD_DIR=build]
# 1. trains a tiny model (tokenizer + 30 steps of configs/tiny.cfg on tests/fixtures/parity.txt, a
#    few seconds) and exports it to GGUF;
# 2. starts tern-server on a free loopback port (--port 0, with an API key, a small queue, body
#    limit and timeout) and stops it at the end whatever happens (trap);
# 3. curl: raw HTTP (health, completion, server-sent events, 401, 404, 405, 413, 400), and a
#    slow sender (an upload throttled to 100 bytes/s) that the server must cut off;
# 4. the official OpenAI Node client (npm "openai", installed into scripts/server/node_modules):
#    scripts/server/openai_test.mjs, which also checks that completions equal tern-generate's for
#    the same prompt, seed and sampling settings;
# 5. tern-loadgen load: 800 requests from 16 clients mixing valid, malformed, oversized,
#    unauthorized and hung-up requests: every answer well-formed, no slot or queue entry left,
#    no 5xx, resident memory flat;
# 6. autocannon (npm): 960 requests over 16 kept-alive connections mixing completions, streams,
#    chat, models, tokenize, health and bad requests (scripts/server/autocannon_test.mjs): every
#    answer with its status and shape, no connection errors, no 5xx, slots and queue drained;
# 7. the server must still be alive and exit 0 on SIGTERM.
set -euo pipefail
B=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "$B" in /*) ;; *) B="$root/$B" ;; esac
for p in tern-server tern-loadgen tern-generate tern-train tern-export tern-tokenizer; do
  [ -x "$B/$p" ] || { echo "server_interop.sh: $B/$p missing (make)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "server_interop.sh: curl not found (scripts/install-deps.sh interop)" >&2; exit 1; }
command -v node >/dev/null || { echo "server_interop.sh: node not found (scripts/install-deps.sh interop)" >&2; exit 1; }
if [ ! -d scripts/server/node_modules/openai ] || [ ! -d scripts/server/node_modules/autocannon ]; then
  echo "server_interop.sh: installing the npm packages openai and autocannon into scripts/server/node_modules" >&2
  (cd scripts/server && npm install --no-audit --no-fund >&2)
fi
work=$(mktemp -d /tmp/tern-server-interop-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

echo "== tiny model for the server tests"
"$B/tern-tokenizer" train -q -v 512 -o "$work/tok.tkz" tests/fixtures/parity.txt
"$B/tern-tokenizer" encode -q -t "$work/tok.tkz" -o "$work/train.tok" --val "$work/val.tok" --val-frac 0.1 tests/fixtures/parity.txt
"$B/tern-train" configs/tiny.cfg train_data="$work/train.tok" val_data="$work/val.tok" tokenizer="$work/tok.tkz" \
    out_dir="$work/run" steps=30 --fresh > "$work/train.log" 2>&1 || { tail -5 "$work/train.log"; exit 1; }
"$B/tern-export" "$work/run/latest.h5" -o "$work/model.gguf" > /dev/null

KEY=interop-key
"$B/tern-server" -m "$work/model.gguf" --port 0 --port-file "$work/port" --api-key "$KEY" --slots 4 --queue 8 \
    --max-body 65536 --timeout 3 > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
[ -s "$work/port" ] || { echo "server_interop.sh: the server did not start" >&2; cat "$work/server.log" >&2; exit 1; }
PORT=$(cat "$work/port")
URL="http://127.0.0.1:$PORT"
echo "== tern-server on $URL"

fails=0
expect() {   # name, wanted status, curl args...
  local name=$1 want=$2; shift 2
  local got
  got=$(curl -s -o "$work/body" -w '%{http_code}' "$@" || true)
  if [ "$got" = "$want" ]; then echo "ok   curl: $name ($got)"; else echo "FAIL curl: $name: status $got, wanted $want: $(head -c 300 "$work/body")"; fails=$((fails + 1)); fi
}
AUTH=(-H "Authorization: Bearer $KEY")
expect "GET /health (no key needed)" 200 "$URL/health"
expect "GET /v1/models" 200 "${AUTH[@]}" "$URL/v1/models"
expect "POST /v1/completions" 200 "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"prompt":"ROMEO:","max_tokens":8}' "$URL/v1/completions"
grep -q '"text_completion"' "$work/body" || { echo "FAIL curl: completion body: $(head -c 300 "$work/body")"; fails=$((fails + 1)); }
expect "POST /v1/chat/completions stream" 200 -N "${AUTH[@]}" -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true}' "$URL/v1/chat/completions"
if [ "$(tail -c 14 "$work/body")" = "data: [DONE]"$'\n\n' ] || tail -n 2 "$work/body" | grep -q '^data: \[DONE\]$'; then echo "ok   curl: stream ends with data: [DONE]";
else echo "FAIL curl: stream end: $(tail -c 100 "$work/body")"; fails=$((fails + 1)); fi
expect "no API key -> 401" 401 -d '{"prompt":"x"}' "$URL/v1/completions"
expect "wrong API key -> 401" 401 -H "Authorization: Bearer nope" -d '{"prompt":"x"}' "$URL/v1/completions"
expect "malformed JSON -> 400" 400 "${AUTH[@]}" -d '{"prompt":' "$URL/v1/completions"
expect "wrong type -> 400" 400 "${AUTH[@]}" -d '{"prompt":"x","max_tokens":"ten"}' "$URL/v1/completions"
expect "unknown model -> 404" 404 "${AUTH[@]}" -d '{"prompt":"x","model":"gpt-9"}' "$URL/v1/completions"
expect "unknown path -> 404" 404 "${AUTH[@]}" "$URL/v1/embeddings"
expect "wrong method -> 405" 405 "${AUTH[@]}" "$URL/v1/chat/completions"
head -c 70000 /dev/zero | tr '\0' 'a' | sed 's/^/{"prompt":"/; s/$/"}/' > "$work/big.json"
expect "oversized body -> 413" 413 "${AUTH[@]}" --data-binary @"$work/big.json" "$URL/v1/completions"
python_long=$(printf 'word %.0s' $(seq 100))
expect "prompt longer than the context -> 400" 400 "${AUTH[@]}" -d "{\"prompt\":\"$python_long\"}" "$URL/v1/completions"
# a slow sender: a 4 KB body at 100 bytes/s would take 40 s; the server gives a request 3 s
head -c 4000 /dev/zero | tr '\0' 'a' | sed 's/^/{"prompt":"/; s/$/"}/' > "$work/slow.json"
t0=$(date +%s)
code=$(curl -s -o /dev/null -w '%{http_code}' --limit-rate 100 "${AUTH[@]}" --data-binary @"$work/slow.json" "$URL/v1/completions" || true)
t1=$(date +%s)
if [ "$code" != 200 ] && [ $((t1 - t0)) -le 15 ]; then echo "ok   curl: slow sender cut off after $((t1 - t0)) s (status $code)";
else echo "FAIL curl: slow sender: status $code after $((t1 - t0)) s"; fails=$((fails + 1)); fi

echo "== official OpenAI client"
node scripts/server/openai_test.mjs "$B" "$work/model.gguf" "$PORT" "$KEY" || fails=$((fails + 1))

echo "== load: tern-loadgen"
"$B/tern-loadgen" load --port "$PORT" --api-key "$KEY" --requests 800 --concurrency 16 --max-body 65536 --seed 7 || fails=$((fails + 1))

echo "== load: autocannon (npm)"
node scripts/server/autocannon_test.mjs "$PORT" "$KEY" 960 16 || fails=$((fails + 1))

kill -0 "$pid" 2>/dev/null || { echo "FAIL: the server died"; cat "$work/server.log"; exit 1; }
kill -TERM "$pid"
if wait "$pid"; then echo "ok   server exited cleanly on SIGTERM"; else echo "FAIL: server exit status $?"; fails=$((fails + 1)); fi
pid=""
[ "$fails" -eq 0 ] || { echo "server_interop.sh: $fails failed"; tail -5 "$work/server.log"; exit 1; }
echo "server_interop.sh: all passed"

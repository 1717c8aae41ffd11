#!/usr/bin/env bash
# bench_server.sh — tern-server's batched decoding: aggregate generated tokens/s and per-request
# latency with 1, 2, 4 and 8 concurrent streams (tern-loadgen bench), on random-weight models of
#   small: dim 256, ffn 768, 6 layers, 4 heads, vocab 4096
#   2b:    the BitNet b1.58 2B4T shape (2560/6912/30 layers, 20/5 heads), vocab 32000
# with a logits matrix of type HEAD (default q8_0, what tern-export writes by default; f16 for
# the figures before the 16-row Q8_0 kernels).
# Each model gets a BPE tokenizer of its vocabulary size trained on the bundled tiny-shakespeare
# (tern-server --random SPEC --tokenizer), 8 slots; every request is a streaming completion of
# MAX_TOKENS tokens (end-of-sequence banned, so all generate the same count). Each stream count is
# run REPS times; the table shows the median aggregate tok/s over the repetitions and latency
# percentiles over all their requests. The last column compares with one stream. Then the same
# stream counts without HTTP (tern-bench --streams: forward_multi steps alone, REPS repeats of
# MAX_TOKENS steps at depth 64): what the engine's steps cost, apart from clients and sampling.
#   scripts/bench_server.sh [BUILD_DIR=build] [MODELS="small 2b"]
# Environment: OMP_NUM_THREADS (2), STREAMS (1,2,4,8), REQUESTS per stream (small 8, 2b 2),
# MAX_TOKENS (small 128, 2b 32), REPS (3), CTX (256), HEAD (q8_0).
set -euo pipefail
B=${1:-build}
MODELS=${2:-"small 2b"}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "$B" in /*) ;; *) B="$root/$B" ;; esac
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
STREAMS=${STREAMS:-1,2,4,8}
REPS=${REPS:-3}
CTX=${CTX:-256}
HEAD=${HEAD:-q8_0}
work=$(mktemp -d /tmp/tern-bench-server-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
echo "== tern-server batched decoding ($OMP_NUM_THREADS threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg))"
for model in $MODELS; do
  case "$model" in
    small) vocab=4096; requests=${REQUESTS:-8}; max_tokens=${MAX_TOKENS:-128} ;;
    2b) vocab=32000; requests=${REQUESTS:-2}; max_tokens=${MAX_TOKENS:-32} ;;
    *) echo "bench_server.sh: unknown model '$model' (small, 2b)" >&2; exit 2 ;;
  esac
  "$B/tern-tokenizer" train -q -v "$vocab" -o "$work/tok-$vocab.tkz" data/tinyshakespeare/input.txt
  rm -f "$work/port"
  "$B/tern-server" --random "$model,head=$HEAD" --tokenizer "$work/tok-$vocab.tkz" --ctx "$CTX" --slots 8 --port 0 \
      --port-file "$work/port" > "$work/server-$model.log" 2>&1 &
  pid=$!
  for _ in $(seq 1200); do [ -s "$work/port" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  [ -s "$work/port" ] || { echo "bench_server.sh: the server did not start" >&2; cat "$work/server-$model.log" >&2; exit 1; }
  echo "-- $model: $(head -1 "$work/server-$model.log" | sed 's/^tern-server: //')"
  echo "   $REPS x (${STREAMS} streams x $requests streaming requests x $max_tokens tokens)"
  "$B/tern-loadgen" bench --port "$(cat "$work/port")" --streams "$STREAMS" --requests "$requests" --max-tokens "$max_tokens" \
      --reps "$REPS"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  echo "   forward only (tern-bench --random $model,head=$HEAD --streams $STREAMS -n $max_tokens -d 64 -r $REPS):"
  "$B/tern-bench" --random "$model,head=$HEAD" --streams "$STREAMS" -n "$max_tokens" -d 64 -r "$REPS" | sed -n '/^streams /,$p' | sed 's/^/   /'
done

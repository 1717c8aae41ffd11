#!/usr/bin/env bash
# test_arm.sh — the standalone runtime's tests on emulated AArch64 CPUs, once per ARM kernel level
# (make test-arm). Emulation checks results, not speed (docs/EDGE.md: the speed model).
#   scripts/test_arm.sh [X86_BUILD=build] [ARM_BUILD=build-aarch64] [ARM_SANITIZER_BUILD]
# Needs both builds (make; make ARCH=aarch64) and qemu-aarch64 (scripts/install-deps.sh arm).
#
# 1. The x86 build trains a tiny model for a few seconds (configs/tiny.cfg, 60 steps, on the start
#    of the bundled tiny-shakespeare), exports it to GGUF (TQ2_0) and takes the references: the
#    mean NLL (tern-perplexity) of a held-out sample, a greedy continuation (token ids), and
#    rtcheck's random-model NLL, logits hash and 20 greedy ids (a random model's continuation
#    varies more than the barely trained one's) — with the plain kernels and with avx2 (whose
#    float helpers the NEON ones mirror; plain on x86 CPUs without AVX2).
# 2. Each ARM level runs on a qemu CPU whose features make it the level the runtime picks:
#      plain    cortex-a53, forced (--kernel plain)      compared with x86 plain
#      neon     cortex-a53 (ARMv8.0, no dotprod)          compared with x86 avx2
#      dotprod  cortex-a76 (ARMv8.2 with dotprod)         compared with x86 avx2
#      i8mm     max (qemu's every feature, i8mm too)      compared with x86 avx2
#    tests/rtcheck (kernel agreement with naive sums on odd shapes and extreme values, threaded and
#    one-token paths, the quantizer, the 16-lane sums, exp, TQ2_0/TQ1_0 from GGUF, batched prefill
#    == decode, bad files refused, the level the CPU selects); tern-perplexity: mean NLL equal to
#    the x86 one within 1e-6 (relative); tern-generate --greedy: the same token ids (and a seeded
#    sample too, when the NLL was bit-identical); tern-bench on a small random model runs; a level
#    the CPU lacks is refused.
# 3. With a third argument (make test-arm: build-aarch64-san, AddressSanitizer + UBSan), rtcheck
#    once more from that build on the i8mm CPU, every level (LeakSanitizer cannot run under qemu).
# Prints one line per level and a summary; exits non-zero if anything differs.
set -uo pipefail
cd "$(dirname "$0")/.."
X=${1:-build}
A=${2:-build-aarch64}
S=${3:-}
QEMU=${QEMU:-qemu-aarch64}
export QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}
export OMP_NUM_THREADS=2
# a policy set here means the programs never restart themselves (util.h tern_omp_wait_policy): under a
# binfmt-registered qemu the restarted process would run without this script's -cpu choice
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
unset TERN_KERNEL
for f in "$X/tern-tokenizer" "$X/tern-train" "$X/tern-export" "$X/tern-perplexity" "$X/tern-generate" "$X/tests/rtcheck" \
         "$A/tern-perplexity" "$A/tern-generate" "$A/tern-bench" "$A/tests/rtcheck"; do
  [ -x "$f" ] || { echo "test_arm.sh: $f missing (make && make ARCH=aarch64 first, or make test-arm)" >&2; exit 1; }
done
command -v "$QEMU" >/dev/null || { echo "test_arm.sh: $QEMU not found (scripts/install-deps.sh arm)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "test_arm.sh: FAIL: $*" >&2; fail=1; }
q() { local cpu=$1; shift; timeout 900 "$QEMU" -cpu "$cpu" "$@"; }

# ---- 1. tiny model and x86 references
t0=$(date +%s)
head -c 200000 data/tinyshakespeare/input.txt > "$T/text.txt"
tail -c 4000 data/tinyshakespeare/input.txt > "$T/sample.txt"
{ "$X/tern-tokenizer" train -o "$T/tok.tok" -v 512 -q "$T/text.txt" &&
  "$X/tern-tokenizer" encode -t "$T/tok.tok" -o "$T/train.tok" --val "$T/val.tok" --val-frac 0.1 -q "$T/text.txt" &&
  "$X/tern-train" configs/tiny.cfg train_data="$T/train.tok" val_data="$T/val.tok" tokenizer="$T/tok.tok" out_dir="$T/run" --fresh &&
  "$X/tern-export" "$T/run/latest.h5" -o "$T/tiny.gguf"; } > "$T/make_model.log" 2>&1 \
  || { cat "$T/make_model.log" >&2; echo "test_arm.sh: making the tiny model failed" >&2; exit 1; }
nll_of() { sed -n 's/^mean NLL: \([0-9.]*\).*/\1/p'; }
ref_kinds="plain"
"$X/tests/rtcheck" --kernel avx2 --quick > /dev/null 2>&1 && ref_kinds="plain avx2"
declare -A RNLL RIDS RSMP RCHK RGRD
for k in $ref_kinds; do
  RNLL[$k]=$("$X/tern-perplexity" -m "$T/tiny.gguf" -f "$T/sample.txt" --kernel "$k" 2>/dev/null | nll_of)
  RIDS[$k]=$("$X/tern-generate" -m "$T/tiny.gguf" -p "ROMEO:" -n 40 --greedy --ids --kernel "$k" 2>/dev/null)
  RSMP[$k]=$("$X/tern-generate" -m "$T/tiny.gguf" -p "ROMEO:" -n 40 --temp 1 --seed 7 --ids --kernel "$k" 2>/dev/null)
  out=$("$X/tests/rtcheck" --kernel "$k")
  RCHK[$k]=$(echo "$out" | sed -n 's/^rtcheck nll \([0-9.]*\) logits \([0-9a-f]*\).*/\1 \2/p')
  RGRD[$k]=$(echo "$out" | sed -n 's/^rtcheck greedy //p')
  [ -n "${RNLL[$k]}" ] && [ -n "${RIDS[$k]}" ] && [ -n "${RCHK[$k]}" ] || { echo "test_arm.sh: x86 reference ($k) failed" >&2; exit 1; }
done
simd_ref=$([ "${ref_kinds#*avx2}" != "$ref_kinds" ] && echo avx2 || echo plain)
echo "x86 reference ($(date +%s | awk -v a=$t0 '{print $1-a}') s): tiny model mean NLL plain ${RNLL[plain]}, $simd_ref ${RNLL[$simd_ref]}; greedy: ${RIDS[$simd_ref]:0:60}..."

# ---- 2. every ARM level
summary=""
total=0
for spec in "plain cortex-a53 plain" "neon cortex-a53 auto" "dotprod cortex-a76 auto" "i8mm max auto"; do
  set -- $spec
  level=$1 cpu=$2 how=$3
  ref=$([ "$level" = plain ] && echo plain || echo "$simd_ref")
  kopt=(); [ "$how" = plain ] && kopt=(--kernel plain)
  t1=$(date +%s)
  # rtcheck: the level's own kernels (forced), and the CPU's choice
  out=$(q "$cpu" "$A/tests/rtcheck" --kernel "$level" --expect-best "$([ "$level" = plain ] && echo neon || echo "$level")" 2>&1)
  rc=$?
  echo "$out" | grep -q FAIL && echo "$out" | grep FAIL >&2
  checks=$(echo "$out" | sed -n 's/.*: \([0-9]*\) checks passed, \([0-9]*\) failed.*/\1/p')
  [ $rc -eq 0 ] && [ -n "$checks" ] || { bad "$level ($cpu): rtcheck exit $rc"; checks=${checks:-0}; }
  got=$(echo "$out" | sed -n 's/^rtcheck nll \([0-9.]*\) logits \([0-9a-f]*\).*/\1 \2/p')
  grd=$(echo "$out" | sed -n 's/^rtcheck greedy //p')
  [ -n "$grd" ] && [ "$grd" = "${RGRD[$ref]}" ] || bad "$level: random model greedy ids '$grd' vs x86 '${RGRD[$ref]}'"
  rsame="bit-identical to x86 $ref"
  if [ "$got" != "${RCHK[$ref]}" ]; then
    rsame="differs from x86 $ref in the last bits"
    awk -v a="${got% *}" -v b="${RCHK[$ref]% *}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * (b < 0 ? -b : b)) }' \
      || bad "$level: random model NLL ${got% *} vs x86 $ref ${RCHK[$ref]% *}"
  fi
  # the tiny trained model: perplexity and greedy tokens against the x86 build
  n=0
  nll=$(q "$cpu" "$A/tern-perplexity" -m "$T/tiny.gguf" -f "$T/sample.txt" "${kopt[@]}" 2>"$T/err" | nll_of)
  if [ -z "$nll" ]; then bad "$level: tern-perplexity: $(cat "$T/err")"
  elif awk -v a="$nll" -v b="${RNLL[$ref]}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * b) }'; then n=$((n + 1))
  else bad "$level: mean NLL $nll, x86 $ref ${RNLL[$ref]}"; fi
  [ -n "$nll" ] && [ "$nll" = "${RNLL[$ref]}" ] && pexact="equal" || pexact="within 1e-6"
  ids=$(q "$cpu" "$A/tern-generate" -m "$T/tiny.gguf" -p "ROMEO:" -n 40 --greedy --ids "${kopt[@]}" 2>"$T/err")
  if [ "$ids" = "${RIDS[$ref]}" ]; then n=$((n + 1)); else bad "$level: greedy ids '$ids' vs x86 '${RIDS[$ref]}'"; fi
  grep -q "kernel $level" "$T/err" && n=$((n + 1)) || bad "$level: tern-generate ran kernel '$(grep -o 'kernel [a-z0-9]*' "$T/err")'"
  # sampling (seed 7) follows the logits' every bit: required to match when the NLL did exactly
  smp=$(q "$cpu" "$A/tern-generate" -m "$T/tiny.gguf" -p "ROMEO:" -n 40 --temp 1 --seed 7 --ids "${kopt[@]}" 2>/dev/null)
  if [ "$smp" = "${RSMP[$ref]}" ]; then n=$((n + 1)); ssame="same"
  elif [ "$pexact" = equal ]; then bad "$level: sampled ids '$smp' vs x86 '${RSMP[$ref]}'"; ssame="DIFFERENT"
  else n=$((n + 1)); ssame="different (logits not bit-identical)"; fi
  # tern-bench runs; a level this CPU lacks is refused
  if q "$cpu" "$A/tern-bench" --random small -p 16 -n 4 -r 1 "${kopt[@]}" > "$T/bench" 2>&1 && grep -q "decode .* tok/s" "$T/bench"; then n=$((n + 1))
  else bad "$level: tern-bench: $(tail -2 "$T/bench")"; fi
  lacks=$(case $cpu in cortex-a53) echo dotprod ;; cortex-a76) echo i8mm ;; *) echo avx2 ;; esac)
  if q "$cpu" "$A/tern-bench" --random small -p 4 -n 2 -r 1 --kernel "$lacks" > "$T/bench" 2>&1; then bad "$level: --kernel $lacks accepted on $cpu"
  elif grep -q "not available on this CPU" "$T/bench"; then n=$((n + 1)); else bad "$level: --kernel $lacks: $(cat "$T/bench")"; fi
  total=$((total + checks + n))
  line=$(printf "%-8s %-11s rtcheck %4s checks, programs %d/6; tiny model NLL %s (%s x86 %s), greedy ids same, sampled ids %s; random model %s, greedy ids same; %ds" \
         "$level" "$cpu" "$checks" "$n" "$nll" "$pexact" "$ref" "$ssame" "$rsame" $(( $(date +%s) - t1 )))
  echo "$line"
  summary="$summary$line"$'\n'
done
if [ -n "$S" ]; then
  t1=$(date +%s)
  out=$(ASAN_OPTIONS=detect_leaks=0 q max "$S/tests/rtcheck" 2>&1)
  rc=$?
  checks=$(echo "$out" | sed -n 's/.*: \([0-9]*\) checks passed, \([0-9]*\) failed.*/\1/p')
  if [ $rc -eq 0 ] && [ -n "$checks" ]; then
    total=$((total + checks))
    printf "%-8s %-11s rtcheck %4s checks under AddressSanitizer + UBSan (plain, neon, dotprod, i8mm); %ds\n" sanitize max "$checks" $(( $(date +%s) - t1 ))
  else
    echo "$out" | tail -20 >&2
    bad "sanitizer build: rtcheck exit $rc"
  fi
fi
echo "== test-arm: $total checks over 4 ARM levels under $($QEMU --version | head -1 | cut -d'(' -f1)$([ $fail -eq 0 ] && echo ": all passed" || echo ": FAILURES")"
exit $fail

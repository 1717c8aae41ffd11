#!/usr/bin/env bash
# Run libFuzzer targets built by `make fuzz-build`: scripts/fuzz.sh BUILD_DIR SECONDS TARGET...
# Each target runs SECONDS from its committed seed corpus tests/fuzz/corpus/<target>/ (read only)
# plus the inputs it found before (BUILD_DIR/corpus/<target>/, where new ones go). A crash, leak,
# sanitizer report or timeout (> 20 s for one input) stops with the input saved in
# BUILD_DIR/artifacts/ and a non-zero exit. Prints per target: runs, coverage (cov = edges,
# ft = features), corpus size, and the final libFuzzer line. FUZZ_SEED=N (environment) fixes
# libFuzzer's random seed (default: a new one each run). The targets that read files write each
# input to $TMPDIR first; unless TMPDIR is set, a writable /dev/shm (memory) is used, which ran
# `tokfile` 6x faster than a disk-backed /tmp.
set -uo pipefail
dir=$1; secs=$2; shift 2
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
mkdir -p "$dir/artifacts" "$dir/logs"
fail=0
for t in "$@"; do
  bin="$dir/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: no target $t ($bin)"; fail=1; continue; }
  mkdir -p "$dir/corpus/$t" "tests/fuzz/corpus/$t"
  log="$dir/logs/$t.log"
  # one process, no fork mode: findings stop the run; -rss_limit_mb bounds memory per input
  "$bin" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 -print_final_stats=1 \
         -artifact_prefix="$dir/artifacts/$t-" "$dir/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  # clang's OpenMP runtime registers every process in /dev/shm/__KMP_REGISTERED_LIB_<pid>; the
  # children that tern forks to check a checkpoint's structure end with _exit and leave theirs
  # (one per input of `checkpoint`): remove those of processes that no longer run
  for f in /dev/shm/__KMP_REGISTERED_LIB_*; do
    [ -O "$f" ] || continue
    p=${f#/dev/shm/__KMP_REGISTERED_LIB_}; p=${p%%_*}
    kill -0 "$p" 2>/dev/null || rm -f "$f"
  done
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz $t: ${secs}s, ${runs:-?} runs, exit $rc | ${last:-no progress line}"
  if [ $rc -ne 0 ]; then
    fail=1
    echo "fuzz $t: FAILED; the report (last lines of $log):"
    grep -E 'ERROR|SUMMARY|Test unit written|panic|deadly|timeout' "$log" | head -20
  fi
done
exit $fail

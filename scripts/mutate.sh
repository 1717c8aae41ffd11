#!/usr/bin/env bash
# mutate.sh — mutation testing (make mutate). Each mutant in tests/mutants/*.patch is one small,
# realistic bug; this script applies it to a scratch copy of the tree (never to the working tree),
# rebuilds incrementally, runs the test binaries the mutant names, and reports killed / survived.
#
#   scripts/mutate.sh                      every tests/mutants/*.patch (the committed list)
#   scripts/mutate.sh tests/mutants/x.patch ...     only these
#
# Mutant file: a unified diff (patch -p1, no fuzz; line offsets are fine) after header lines:
#   # mutant: one line saying what the bug is               (required)
#   # tests: test_a test_b                                   (required: binaries in build/tests;
#     rtcheck_arm: the ARM build's tests/rtcheck --quick under qemu-aarch64 -cpu max, every ARM
#     kernel level: for mutants of AArch64-only code; needs `scripts/install-deps.sh arm`)
#   # origin: where it comes from (optional)
#   # equivalent: why no test can tell it from the original (optional: the mutant is expected
#     to survive; it is reported apart and not counted against the score)
# A mutant is killed when one of its tests exits non-zero, crashes or times out (the tests run
# fastest first; the first that fails is reported).
#
# Environment: MUTATE_DIR (scratch, default build-mutate), MUTATE_TIMEOUT (the least time a test
# binary gets, default 60 s; each gets 10x its unmutated run time when that is more), MUTATE_MIN_SCORE (exit 1 below this % killed of the non-equivalent mutants, default
# 90), MUTATE_ALL_TESTS=1 (run every test binary for every mutant), MUTATE_JOBS (make -j, default 2).
# Output: one line per mutant, a table and the score on stdout and in $MUTATE_DIR/report.txt;
# logs of each build and test run under $MUTATE_DIR/logs. Exit 1 when a mutant does not apply or
# does not build (fix the mutant: the code moved), when the unmutated tests fail, or below the score.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${MUTATE_DIR:-build-mutate}
case "$dir" in /*) ;; *) dir="$root/$dir" ;; esac
tree="$dir/tree"
logs="$dir/logs"
tmo=${MUTATE_TIMEOUT:-60}
min_score=${MUTATE_MIN_SCORE:-90}
jobs=${MUTATE_JOBS:-2}
mkdir -p "$tree" "$logs"
rm -f "$logs"/*.log

if [ $# -gt 0 ]; then mutants=("$@"); else mutants=(tests/mutants/*.patch); fi
[ -e "${mutants[0]}" ] || { echo "mutate.sh: no mutants in tests/mutants/" >&2; exit 1; }

hdr() { sed -n "s/^# $2: *//p" "$1" | head -1; }
files_of() { sed -n 's#^+++ [ab]/\([^	 ]*\).*#\1#p' "$1"; }

# ---- scratch copy: tracked and untracked-but-not-ignored files, copied only when they differ (so
# the previous build stays valid for the rest) and then with a new mtime (so make rebuilds what was
# built from another version, e.g. a mutant left behind by an interrupted run); files gone from the
# working tree are removed
git ls-files -co --exclude-standard | LC_ALL=C sort > "$dir/files.lst"
while IFS= read -r f; do
  [ -f "$f" ] || continue
  if ! cmp -s "$f" "$tree/$f"; then mkdir -p "$tree/$(dirname "$f")"; cp "$f" "$tree/$f"; fi
done < "$dir/files.lst"
# files a killed run may have left mutated or built from a mutant: rebuilt whatever their content
if [ -f "$dir/active" ]; then
  while IFS= read -r f; do [ -f "$root/$f" ] && cp "$root/$f" "$tree/$f"; done < "$dir/active"
  rm -f "$dir/active"
fi
(cd "$tree" && find . -type f ! -path './build/*' | sed 's#^\./##' | LC_ALL=C sort) > "$dir/scratch.lst"
LC_ALL=C comm -23 "$dir/scratch.lst" "$dir/files.lst" | while IFS= read -r f; do rm -f "$tree/$f"; done

# ---- which tests: the union of the mutants' tests (or all)
all_tests=$(cd "$tree" && ls tests/test_*.c | sed 's#tests/\(.*\)\.c#\1#')
declare -A need
for m in "${mutants[@]}"; do
  t=$(hdr "$m" tests)
  [ -n "$(hdr "$m" mutant)" ] && [ -n "$t" ] || { echo "mutate.sh: $m: needs '# mutant:' and '# tests:' header lines" >&2; exit 1; }
  for x in $t; do
    [ "$x" = rtcheck_arm ] || echo "$all_tests" | grep -qx "$x" || { echo "mutate.sh: $m: no test binary '$x' (tests/$x.c)" >&2; exit 1; }
    need[$x]=1
  done
done
if [ "${MUTATE_ALL_TESTS:-0}" = 1 ]; then for x in $all_tests; do need[$x]=1; done; fi
# build only what the tests run: their binaries and the programs they start (a "tern-NAME" string
# in the test's source naming a program of infer/ train/ data/; every program for a test that
# finds programs by listing the build directory or by a name made at run time ("tern-%s"), like
# test_faults and test_programs)
progs=$(cd "$tree" && grep -l '^int main(' infer/*.c train/*.c data/*.c 2>/dev/null | sed 's#.*/\(.*\)\.c#tern-\1#' | sort -u)
targets_for() {
  local x p out=""
  for x in "$@"; do
    [ "$x" = rtcheck_arm ] && continue   # built by build() (the ARM cross build)
    out="$out build/tests/$x"
    if grep -q 'opendir(bindir)\|tern-%s' "$tree/tests/$x.c"; then
      for p in $progs; do out="$out build/$p"; done
      continue
    fi
    for p in $(grep -o 'tern-[a-z_]*' "$tree/tests/$x.c" | sort -u); do
      echo "$progs" | grep -qx "$p" && out="$out build/$p"
    done
  done
  echo "$out"
}
build() {
  local log=$1; shift
  make -C "$tree" -j"$jobs" BUILD=build $(targets_for "$@") > "$log" 2>&1 || return 1
  case " $* " in *" rtcheck_arm "*)
    make -C "$tree" -j"$jobs" ARCH=aarch64 BUILD=build-aarch64 SANITIZE=0 build-aarch64/tests/rtcheck >> "$log" 2>&1 ;; esac
}
# runs test binary $1 in the scratch tree with timeout $3 s; prints "" (pass) or why it failed
run_test() {
  local log="$2" t="$3"
  if [ "$1" = rtcheck_arm ]; then
    (cd "$tree" && OMP_NUM_THREADS=2 QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu} timeout -k 5 "$t" \
       qemu-aarch64 -cpu max build-aarch64/tests/rtcheck --quick > "$log" 2>&1)
  else
    (cd "$tree" && OMP_NUM_THREADS=2 timeout -k 5 "$t" "build/tests/$1" > "$log" 2>&1)
  fi
  local rc=$?
  if [ $rc -eq 0 ]; then echo ""; elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "timeout ${t}s";
  elif [ $rc -gt 128 ]; then echo "signal $((rc - 128))"; else echo "exit $rc"; fi
}

echo "mutate: scratch tree $tree; baseline build and tests (${!need[*]})"
if ! build "$logs/baseline.build.log" "${!need[@]}"; then echo "mutate: the unmutated tree does not build (see $logs/baseline.build.log)"; exit 1; fi
# baseline: every test passes; its duration sets its timeout under mutation (10x, at least
# MUTATE_TIMEOUT) and the order tests run in (fastest first)
declare -A dur tlimit
for x in "${!need[@]}"; do
  t0=$(date +%s.%N)
  why=$(run_test "$x" "$logs/baseline.$x.log" 1800)
  [ -z "$why" ] || { echo "mutate: $x fails without any mutant ($why; see $logs/baseline.$x.log)"; exit 1; }
  dur[$x]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  tlimit[$x]=$(awk -v d="${dur[$x]}" -v m="$tmo" 'BEGIN { l = int(10 * d + 1); print l < m ? m : l }')
done
by_speed() { for x in "$@"; do echo "${dur[$x]} $x"; done | sort -n | awk '!seen[$2]++ { print $2 }'; }
echo "mutate: baseline passed; seconds per test: $(for x in $(by_speed "${!need[@]}"); do printf '%s %.1f, ' "$x" "${dur[$x]}"; done)"

killed=0; survived=0; equiv=0; equiv_killed=0; errors=0
report="$dir/report.txt"
: > "$report.rows"
for m in "${mutants[@]}"; do
  name=$(basename "$m" .patch)
  eq=$(hdr "$m" equivalent)
  files=$(files_of "$m" | tr '\n' ' ')
  tests=$(hdr "$m" tests)
  [ "${MUTATE_ALL_TESTS:-0}" = 1 ] && tests="$tests $(echo "$all_tests" | tr '\n' ' ')"
  result="" detail=""
  if ! (cd "$tree" && patch -p1 -F0 -s --dry-run --no-backup-if-mismatch < "$root/$m" > "$logs/$name.patch.log" 2>&1); then
    result="STALE" detail="does not apply (see $logs/$name.patch.log)"
  else
    for f in $files; do mkdir -p "$dir/orig/$(dirname "$f")"; cp "$tree/$f" "$dir/orig/$f"; done
    printf '%s\n' $files > "$dir/active"
    restore() { for f in $files; do cp "$dir/orig/$f" "$tree/$f"; done; }   # new mtime: rebuilt next time
    trap 'restore; exit 130' INT TERM   # never leave a mutant behind
    (cd "$tree" && patch -p1 -F0 -s --no-backup-if-mismatch < "$root/$m" > /dev/null)
    if ! build "$logs/$name.build.log" $tests; then
      result="BUILD-ERROR" detail="see $logs/$name.build.log"
    else
      result="survived"
      for x in $(by_speed $tests); do
        why=$(run_test "$x" "$logs/$name.$x.log" "${tlimit[$x]}")
        if [ -n "$why" ]; then result="killed" detail="$x ($why)"; break; fi
      done
    fi
    restore
    rm -f "$dir/active"
    trap - INT TERM
  fi
  case "$result" in
    killed) if [ -n "$eq" ]; then equiv_killed=$((equiv_killed + 1)); detail="$detail — marked equivalent but killed: drop the equivalent line"; fi
            killed=$((killed + 1)) ;;
    survived) if [ -n "$eq" ]; then equiv=$((equiv + 1)); result="equivalent"; detail="$eq"; else survived=$((survived + 1)); detail="no test failed ($tests)"; fi ;;
    *) errors=$((errors + 1)) ;;
  esac
  printf '%-34s %-11s %s\n' "$name" "$result" "$detail"
  printf '%s\t%s\t%s\t%s\n' "$name" "$files" "$result" "$detail" >> "$report.rows"
done

total=$((killed + survived))
score=0
[ $total -gt 0 ] && score=$(( (1000 * killed / total + 5) / 10 ))
{
  echo
  printf '%-34s %-32s %-11s %s\n' "mutant" "file" "result" "killed by / why it survives"
  while IFS=$'\t' read -r n f r d; do printf '%-34s %-32s %-11s %s\n' "$n" "$f" "$r" "$d"; done < "$report.rows"
  echo
  echo "mutation score: $killed killed of $total ($score%); $survived survived; $equiv equivalent (not counted; $killed of $((total + equiv)) = $(( (1000 * killed / (total + equiv > 0 ? total + equiv : 1) + 5) / 10 ))% counting them); $errors stale or not building; ${#mutants[@]} mutants"
} | tee "$report"
rm -f "$report.rows"
[ $errors -eq 0 ] || { echo "mutate: $errors mutant(s) do not apply or do not build: update them" >&2; exit 1; }
[ $equiv_killed -eq 0 ] || { echo "mutate: $equiv_killed mutant(s) marked equivalent were killed" >&2; exit 1; }
[ $total -eq 0 ] || [ $score -ge "$min_score" ] || { echo "mutate: score $score% is below $min_score%" >&2; exit 1; }
exit 0

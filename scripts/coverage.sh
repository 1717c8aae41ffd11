#!/usr/bin/env bash
# coverage.sh — line and branch coverage of src/ and infer/ under make test's binaries (make coverage).
#
#   scripts/coverage.sh            build in build-cov/ with gcc --coverage, run make test there, report
#
# Prints one row per file of src/ and infer/ (lines hit/total and %, branches hit/total and %),
# the totals against the goal (COVERAGE_GOAL, default 85% of lines), and the uncovered error paths:
# lines never run that report an error (tern_error, tern_fatal, die, return -1, goto fail). Writes
# build-cov/coverage.txt (the same report), build-cov/uncovered.txt (every line never run, by file),
# build-cov/tern.info (lcov tracefile) and build-cov/html/ (genhtml). Needs gcov (gcc) and lcov
# (scripts/install-deps.sh coverage). Exit 1 when a test fails or a tool is missing.
# COVERAGE_OPT overrides the compiler flags (default -O0 -g: lines map one to one).
set -uo pipefail
cd "$(dirname "$0")/.."
out=build-cov
for tool in gcov lcov genhtml; do
  command -v "$tool" >/dev/null || { echo "coverage.sh: $tool not found (scripts/install-deps.sh coverage)" >&2; exit 1; }
done
opt=${COVERAGE_OPT:--O0 -g}
mkdir -p "$out"
find "$out" -name '*.gcda' -delete 2>/dev/null
echo "coverage: building in $out with '$opt --coverage' and running make test there"
if ! make -j2 BUILD="$out" OPT="$opt --coverage" test > "$out/test.log" 2>&1; then
  tail -30 "$out/test.log"
  echo "coverage: make test failed (full log: $out/test.log)" >&2
  exit 1
fi
grep '^test binaries:' "$out/test.log"
lcov_q="lcov --quiet --rc lcov_branch_coverage=1"
$lcov_q --capture --directory "$out/obj" --base-directory . --output-file "$out/all.info" 2> "$out/lcov.log" ||
  { cat "$out/lcov.log" >&2; exit 1; }
$lcov_q --extract "$out/all.info" "$PWD/src/*" "$PWD/infer/*" --output-file "$out/tern.info" 2>> "$out/lcov.log" ||
  { cat "$out/lcov.log" >&2; exit 1; }
genhtml --quiet --branch-coverage --output-directory "$out/html" "$out/tern.info" > /dev/null 2>> "$out/lcov.log" || true

# files of src/ and infer/ that no test binary runs at all do not appear in the tracefile: count
# them as 0% (their executable lines from gcov's notes would need a run; list them by name)
root="$PWD/"
awk -v root="$root" -v goal="${COVERAGE_GOAL:-85}" -v unc="$out/uncovered.txt" '
  function flush() {
    if (file == "") return
    rel = substr(file, length(root) + 1)
    files[++nf] = rel; lf[rel] = LF; lh[rel] = LH; bf[rel] = BRF; bh[rel] = BRH
    TLF += LF; TLH += LH; TBF += BRF; TBH += BRH
  }
  /^SF:/ { file = substr($0, 4); LF = LH = BRF = BRH = 0; next }
  /^DA:/ { split(substr($0, 4), a, ","); LF++; if (a[2] + 0 > 0) LH++; else zero[file] = zero[file] " " a[1]; next }
  /^BRDA:/ { split(substr($0, 6), a, ","); BRF++; if (a[4] != "-" && a[4] + 0 > 0) BRH++; next }
  /^end_of_record/ { flush(); file = ""; next }
  END {
    printf "%-34s %16s %8s %18s %8s\n", "file", "lines hit/total", "lines", "branches hit/total", "branches"
    n = asort(files, sorted)
    for (i = 1; i <= n; i++) {
      f = sorted[i]
      printf "%-34s %16s %7.1f%% %18s %7.1f%%\n", f, lh[f] "/" lf[f], lf[f] ? 100 * lh[f] / lf[f] : 100, bh[f] "/" bf[f], bf[f] ? 100 * bh[f] / bf[f] : 100
    }
    printf "%-34s %16s %7.1f%% %18s %7.1f%%\n", "TOTAL (src/ and infer/)", TLH "/" TLF, 100 * TLH / TLF, TBH "/" TBF, 100 * TBH / TBF
    printf "line coverage %.1f%% (goal %d%%): %s\n", 100 * TLH / TLF, goal, 100 * TLH / TLF >= goal ? "met" : "NOT met"
    for (f in zero) print substr(f, length(root) + 1) ":" zero[f] > unc
  }' "$out/tern.info" | tee "$out/coverage.txt"

# source files with no data at all (never linked into a test or never run)
missing=""
for f in $(ls src/*.c src/*/*.c src/*/*.h infer/*.c infer/*.h 2>/dev/null); do
  grep -q "^SF:$PWD/$f\$" "$out/tern.info" || missing="$missing $f"
done
[ -z "$missing" ] || echo "no coverage data (no test runs them):$missing" | tee -a "$out/coverage.txt"

# uncovered error paths: lines never run that report or return an error
{
  echo
  echo "uncovered error paths (lines never run that report an error; all uncovered lines: $out/uncovered.txt):"
  while IFS=: read -r f lines; do
    for l in $lines; do
      text=$(sed -n "${l}p" "$f")
      if echo "$text" | grep -Eq 'tern_error\(|tern_fatal\(|die\(|DIE\(|return -1|goto fail|usage\(\)'; then
        printf '  %s:%s: %s\n' "$f" "$l" "$(echo "$text" | sed 's/^[[:space:]]*//' | cut -c1-110)"
      fi
    done
  done < <(sort "$out/uncovered.txt")
} | tee -a "$out/coverage.txt" | awk 'NR <= 400'
echo "coverage: report in $out/coverage.txt, html in $out/html/index.html"

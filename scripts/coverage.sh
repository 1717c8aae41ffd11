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
# COVERAGE_OPT overrides the compiler flags (default -O0 -g: lines map one to one);
# COVERAGE_REPORT_ONLY=1 reports on the data of the last run without building or testing.
set -uo pipefail
cd "$(dirname "$0")/.."
out=build-cov
for tool in gcov lcov genhtml; do
  command -v "$tool" >/dev/null || { echo "coverage.sh: $tool not found (scripts/install-deps.sh coverage)" >&2; exit 1; }
done
opt=${COVERAGE_OPT:--O0 -g}
mkdir -p "$out"
if [ "${COVERAGE_REPORT_ONLY:-0}" != 1 ]; then   # COVERAGE_REPORT_ONLY=1: report on the last run's data
  find "$out" -name '*.gcda' -delete 2>/dev/null
  echo "coverage: building in $out with '$opt --coverage' and running make test there"
  if ! make -j2 BUILD="$out" OPT="$opt --coverage" test > "$out/test.log" 2>&1; then
    tail -30 "$out/test.log"
    echo "coverage: make test failed (full log: $out/test.log)" >&2
    exit 1
  fi
fi
grep '^test binaries:' "$out/test.log"
lcov_q="lcov --quiet --rc lcov_branch_coverage=1"
# zero counts for every compiled file (--initial), so code no test runs counts as uncovered
{ $lcov_q --capture --initial --directory "$out/obj" --base-directory . --output-file "$out/base.info" &&
  $lcov_q --capture --directory "$out/obj" --base-directory . --output-file "$out/run.info" &&
  $lcov_q --add-tracefile "$out/base.info" --add-tracefile "$out/run.info" --output-file "$out/all.info"; } 2> "$out/lcov.log" ||
  { cat "$out/lcov.log" >&2; exit 1; }
$lcov_q --extract "$out/all.info" "$PWD/src/*" "$PWD/infer/*" --output-file "$out/tern.info" 2>> "$out/lcov.log" ||
  { cat "$out/lcov.log" >&2; exit 1; }
genhtml --quiet --branch-coverage --output-directory "$out/html" "$out/tern.info" > /dev/null 2>> "$out/lcov.log" || true

# per-file table (lcov's tracefile: DA = line hits, BRDA = branch hits), totals, and every line
# never run into uncovered.txt ("file: line line ...")
root="$PWD/"
: > "$out/uncovered.txt"
awk -v root="$root" -v unc="$out/uncovered.txt" '
  /^SF:/ { file = substr($0, length(root) + 4); LF = LH = BRF = BRH = 0; zero = ""; next }
  /^DA:/ { split(substr($0, 4), a, ","); LF++; if (a[2] + 0 > 0) LH++; else zero = zero " " a[1]; next }
  /^BRDA:/ { split(substr($0, 6), a, ","); BRF++; if (a[4] != "-" && a[4] + 0 > 0) BRH++; next }
  /^end_of_record/ {
    printf "%s %d %d %d %d\n", file, LH, LF, BRH, BRF
    if (zero != "") print file ":" zero > unc
  }' "$out/tern.info" | sort > "$out/rows.txt"
{
  printf "%-34s %16s %8s %18s %8s\n" "file" "lines hit/total" "lines" "branches hit/total" "branches"
  awk -v goal="${COVERAGE_GOAL:-85}" '
    { printf "%-34s %16s %7.1f%% %18s %7.1f%%\n", $1, $2 "/" $3, $3 ? 100 * $2 / $3 : 100, $4 "/" $5, $5 ? 100 * $4 / $5 : 100
      lh += $2; lf += $3; bh += $4; bf += $5 }
    END {
      printf "%-34s %16s %7.1f%% %18s %7.1f%%\n", "TOTAL (src/ and infer/)", lh "/" lf, 100 * lh / lf, bh "/" bf, 100 * bh / bf
      printf "line coverage %.1f%% (goal %d%%): %s\n", 100 * lh / lf, goal, (100 * lh / lf >= goal) ? "met" : "NOT met"
    }' "$out/rows.txt"
  # .c files not compiled into build-cov at all (none expected)
  missing=""
  for f in $(ls src/*.c src/*/*.c infer/*.c 2>/dev/null); do
    grep -q "^$f " "$out/rows.txt" || missing="$missing $f"
  done
  [ -z "$missing" ] || echo "no coverage data (not compiled):$missing"
} | tee "$out/coverage.txt"

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

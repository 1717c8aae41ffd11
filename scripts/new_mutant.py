#!/usr/bin/env python3
"""new_mutant.py — write a mutant for `make mutate` (tests/mutants/NAME.patch) from one text edit.

  scripts/new_mutant.py NAME FILE OLD NEW --what "the bug, in one line" --tests "test_a test_b"
                        [--origin TEXT] [--equivalent WHY] [--nth K] [--edit OLD2 NEW2 ...]

OLD must occur in FILE (exactly once, or pick the K-th occurrence, 1-based, with --nth); the patch
replaces it by NEW. --edit adds further replacements in the same file (each OLD2 exactly once,
applied after the first). Escapes \\n and \\t in OLD/NEW are turned into newline / tab. The working tree
is not modified. Standard library only.
"""
import argparse
import difflib
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("file")
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--what", required=True)
    ap.add_argument("--tests", required=True)
    ap.add_argument("--origin")
    ap.add_argument("--equivalent")
    ap.add_argument("--nth", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="overwrite an existing mutant")
    ap.add_argument("--edit", nargs=2, action="append", default=[], metavar=("OLD", "NEW"))
    a = ap.parse_args()
    unesc = lambda s: s.replace("\\n", "\n").replace("\\t", "\t")
    old, new = unesc(a.old), unesc(a.new)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = open(os.path.join(root, a.file), encoding="utf-8").read()
    count = src.count(old)
    if count == 0:
        sys.exit(f"new_mutant.py: {a.file}: text not found: {old!r}")
    if count > 1 and a.nth == 0:
        sys.exit(f"new_mutant.py: {a.file}: text occurs {count} times; pick one with --nth")
    k = a.nth or 1
    pos = -1
    for _ in range(k):
        pos = src.find(old, pos + 1)
        if pos < 0:
            sys.exit(f"new_mutant.py: {a.file}: fewer than {k} occurrences")
    mut = src[:pos] + new + src[pos + len(old):]
    for o2, n2 in a.edit:
        o2, n2 = unesc(o2), unesc(n2)
        if mut.count(o2) != 1:
            sys.exit(f"new_mutant.py: {a.file}: --edit text must occur exactly once: {o2!r}")
        mut = mut.replace(o2, n2)
    diff = difflib.unified_diff(src.splitlines(True), mut.splitlines(True), "a/" + a.file, "b/" + a.file, n=3)
    body = "".join(diff)
    if not body:
        sys.exit("new_mutant.py: OLD and NEW are the same")
    out = os.path.join(root, "tests", "mutants", a.name + ".patch")
    if os.path.exists(out) and not a.force:
        sys.exit(f"new_mutant.py: {out} exists (--force to overwrite)")
    hdr = f"# mutant: {a.what}\n# tests: {a.tests}\n"
    if a.origin:
        hdr += f"# origin: {a.origin}\n"
    if a.equivalent:
        hdr += f"# equivalent: {a.equivalent}\n"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(hdr + body)
    print(out)


if __name__ == "__main__":
    main()

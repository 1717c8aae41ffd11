#!/usr/bin/env python3
"""refresh_mutants.py — rewrite mutants that no longer apply because the code around them moved.

  scripts/refresh_mutants.py [--check] [tests/mutants/x.patch ...]   (default: every tests/mutants/*.patch)

--check (make mutate-check) only lists the mutants that no longer apply and exits 1 if any do.

For each mutant that `patch -p1 -F0 --dry-run` refuses, each hunk's change is looked for in the
current file: first the hunk's whole old text (context and removed lines), then its removed lines
alone (with the nearest context line above for a pure insertion). Where that text occurs exactly
once, the hunk is redone there and the patch rewritten with fresh context and line numbers, header
lines kept. A mutant whose change cannot be found (the code it mutates was rewritten) is listed as
NEEDS-REWRITE: write it anew with scripts/new_mutant.py. Mutants that apply are left untouched.
Exit 1 when any mutant needs rewriting. Standard library only; the working tree is not modified.
"""
import difflib
import glob
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def applies(path):
    with open(path, "rb") as f:
        r = subprocess.run(["patch", "-p1", "-F0", "-s", "--dry-run", "--no-backup-if-mismatch"], stdin=f,
                           cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def parse(text):
    """header lines, then [(file, [hunk lines])] of a unified diff"""
    hdr, files, cur, hunk = [], [], None, None
    for line in text.splitlines(True):
        if line.startswith("--- "):
            continue
        if line.startswith("+++ "):
            name = line[4:].split("\t")[0].strip()
            cur = (name[2:] if name.startswith("b/") else name, [])
            files.append(cur)
            hunk = None
        elif line.startswith("@@"):
            hunk = []
            cur[1].append(hunk)
        elif hunk is not None and line[:1] in (" ", "-", "+", "\\"):
            hunk.append(line)
        elif cur is None:
            hdr.append(line)
    return hdr, files


def redo(src, hunk):
    """src with the hunk's change applied where its text occurs once, or None"""
    lines = [l for l in hunk if not l.startswith("\\")]
    old = "".join(l[1:] for l in lines if l[0] in " -")
    new = "".join(l[1:] for l in lines if l[0] in " +")
    if src.count(old) == 1:
        return src.replace(old, new)
    # removed lines alone (first to last changed line), the added ones in their place
    first = next(i for i, l in enumerate(lines) if l[0] in "-+")
    last = max(i for i, l in enumerate(lines) if l[0] in "-+")
    core = lines[first:last + 1]
    if not any(l[0] == "-" for l in core):   # pure insertion: anchor on the context line above
        if first == 0:
            return None
        core = [lines[first - 1]] + core
    old = "".join(l[1:] for l in core if l[0] in " -")
    new = "".join(l[1:] for l in core if l[0] in " +")
    if src.count(old) == 1:
        return src.replace(old, new)
    return None


def main():
    args = sys.argv[1:]
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    paths = args or sorted(glob.glob(os.path.join(root, "tests", "mutants", "*.patch")))
    bad = 0
    for p in paths:
        if applies(p):
            continue
        if check:
            print(f"STALE {os.path.relpath(p, root)} (scripts/refresh_mutants.py rewrites it where the change is still there)")
            bad += 1
            continue
        hdr, files = parse(open(p, encoding="utf-8").read())
        body = ""
        for name, hunks in files:
            src = open(os.path.join(root, name), encoding="utf-8").read()
            mut = src
            for h in hunks:
                mut = redo(mut, h) if mut is not None else None
            if mut is None or mut == src:
                body = None
                break
            body += "".join(difflib.unified_diff(src.splitlines(True), mut.splitlines(True), "a/" + name, "b/" + name, n=3))
        if body is None:
            print(f"NEEDS-REWRITE {os.path.relpath(p, root)}")
            bad += 1
            continue
        with open(p, "w", encoding="utf-8") as f:
            f.write("".join(hdr) + body)
        print(f"refreshed     {os.path.relpath(p, root)}" + ("" if applies(p) else "  (still does not apply!)"))
    if check:
        print(f"mutate-check: {len(paths) - bad} of {len(paths)} mutants apply")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

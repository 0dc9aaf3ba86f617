#!/usr/bin/env python3
"""Generate chapter 6 of the guide (docs/06-the-class.md) from one class and a template.

Chapter 6 builds one class, GUIDEPT, piece by piece, and every piece is a doctest, so each
example must carry the whole class with the parts not under discussion hidden (`# ` lines).
Writing those copies by hand would let them drift apart; instead the class lives once in
class.rs, cut into sections by `//@ NAME` lines, and template.md holds the prose with one
`@@DOCTEST` block per example:

    @@DOCTEST VISIBLE [only=SECTIONS]    VISIBLE: comma-separated sections shown, or `*`
    lines before the class (optional)    only=: the sections included at all (default: all)
    @@SECTIONS                           where the class goes (omitted: at the top)
    lines after the class (the test)
    @@END

Usage: build.py OUTPUT (CI runs it and compares with the committed chapter).
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def read_sections(path):
    """The class source as [(name, [lines])], in file order."""
    sections = []
    for line in open(path).read().splitlines():
        marker = re.match(r"//@ (\w+)", line)
        if marker:
            sections.append((marker.group(1), []))
        else:
            sections[-1][1].append(line)
    return sections


def is_hidden(line):
    return line.startswith("# ") or line == "#"


def render_doctest(header, block, sections):
    """One doctest: the lines before @@SECTIONS, the class, the lines after."""
    names = [name for name, _ in sections]
    args = header.split()[1:]
    visible = set(names) if args[0] == "*" else set(args[0].split(","))
    included = set(names)
    for arg in args[1:]:
        if arg.startswith("only="):
            included = set(arg[len("only="):].split(","))
    for name in visible:
        assert name in names, f"unknown section {name}"
    if "@@SECTIONS" in block:
        at = block.index("@@SECTIONS")
        before, after = block[:at], block[at + 1:]
    else:
        before, after = [], block

    out = ["```"] + before
    # The last line a reader sees, to avoid doubled or leading blank lines around hidden code.
    last_shown = "```"
    for line in before:
        if not is_hidden(line):
            last_shown = line
    if before and before[-1].strip():
        out.append("")
        last_shown = ""
    for name, body in sections:
        if name not in included:
            continue
        for line in body:
            if name in visible:
                if line.strip() == "" and (
                    last_shown.startswith("```") or last_shown == "" or last_shown.rstrip().endswith("{")
                ):
                    continue
                out.append(line)
                last_shown = line
            else:
                out.append("#" if line.strip() == "" else "# " + line)
    if last_shown.strip() and not last_shown.startswith("```") and after and after[0].strip() and not is_hidden(after[0]):
        out.append("")
    out += after + ["```"]
    return out


def main(output):
    sections = read_sections(os.path.join(HERE, "class.rs"))
    lines = open(os.path.join(HERE, "template.md")).read().splitlines()
    out = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("@@DOCTEST"):
            header = lines[i]
            end = lines.index("@@END", i)
            out += render_doctest(header, lines[i + 1:end], sections)
            i = end + 1
        else:
            out.append(lines[i])
            i += 1
    with open(output, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])

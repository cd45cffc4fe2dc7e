"""What failed in a `cargo test` log, in few lines, for the end of a CI run.

A CI page may show only the last lines of a run, and what a failing test printed stands far
above them: a trybuild mismatch hundreds of lines up, a panic's message above its backtrace.
This prints, for each trybuild case that failed, the difference between the expected and the
actual compiler output; each error a build run by a test printed (trybuild building its
cases' dependencies), with the lines after it; and for each panic its place and message,
without the backtrace.

    python3 .ci/failures.py LOG
"""

import difflib
import re
import sys

COLOUR = re.compile(r"\x1b\[[0-9;]*m")
ERROR = re.compile(r"^(error(\[E\d+\])?:|ERROR: )")
CASE = re.compile(r"^test (\S+) \[should [^]]+\] \.\.\. (mismatch|error)$")
RULE = "┈"


def blocks(lines, start):
    """The text between the next two rule lines after `start`, and the index after them."""
    i = start
    while i < len(lines) and not lines[i].startswith(RULE):
        i += 1
    j = i + 1
    while j < len(lines) and not lines[j].startswith(RULE):
        j += 1
    return lines[i + 1 : j], j + 1


def main(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [COLOUR.sub("", line.rstrip("\n")) for line in f]
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        case = CASE.match(line)
        if case:
            out.append(f"trybuild {case.group(1)}: {case.group(2)}")
            if case.group(2) == "mismatch":
                expected, i = blocks(lines, i + 1)
                actual, i = blocks(lines, i)
                diff = difflib.unified_diff(expected, actual, "expected", "actual", n=1, lineterm="")
                out.extend("  " + d for d in list(diff)[2:])
            else:
                # A case that did not build as it should: the compiler's first lines say why.
                i += 1
                told = 0
                while i < len(lines) and not lines[i].startswith("test ") and told < 20:
                    if lines[i] and not lines[i].startswith(RULE):
                        out.append("  " + lines[i])
                        told += 1
                    i += 1
            continue
        if ERROR.match(line):
            # A build that failed under a test (trybuild's own build of its cases'
            # dependencies, say): the compiler's or cargo's words, and what follows them.
            out.extend(lines[i : i + 6])
            i += 6
            continue
        if " panicked at " in line:
            out.append(line)
            if i + 1 < len(lines):
                out.append("  " + lines[i + 1])
        i += 1
    print("\n".join(out[-120:]) if out else "(no trybuild mismatch or panic found in the log)")


if __name__ == "__main__":
    main(sys.argv[1])

"""The skipped tests of the last ctest run in BUILD_DIR, and why, on one
line, from ctest's log of every test's output (Testing/Temporary/
LastTest.log): GTest's "[  SKIPPED ] NAME" with the reason GTEST_SKIP()
printed before it, and the integration suites' "SKIPPED ID: REASON" lines
(tests/integration/run_suite.py).

usage: skip_summary.py BUILD_DIR"""
import os
import re
import sys


def main():
    log = os.path.join(sys.argv[1], "Testing", "Temporary", "LastTest.log")
    if not os.path.exists(log):
        print(f"skipped: unknown ({log} is missing)")
        return
    skipped = []
    reason = []
    with open(log, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"\[  SKIPPED \] (\S+) \(", line)
            if m:
                skipped.append((m.group(1), " ".join(reason) or "no reason given"))
                reason = []
                continue
            m = re.match(r"SKIPPED (\S+): (.*)", line)
            if m:
                skipped.append((m.group(1), m.group(2)))
                continue
            if line.startswith("[ RUN      ]"):
                reason = []
            elif re.search(r": Skipped$", line):
                reason = [""]  # what follows, up to [  SKIPPED ], is the reason
            elif reason:
                reason.append(line.strip())
    reason_text = {}
    for name, why in skipped:
        reason_text.setdefault(name, why.strip())
    if not reason_text:
        print("skipped: none")
    else:
        print(f"skipped: {len(reason_text)} test(s): " + "; ".join(f"{t} ({r})" for t, r in reason_text.items()))


if __name__ == "__main__":
    main()

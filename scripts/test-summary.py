#!/usr/bin/python3
"""Counts test cases from meson's testlog.json: each TAP subtest ("ok" /
"not ok" line) is a case; a test without TAP output counts as one case.
A test program that failed as a whole (crash, timeout, bad exit) counts
as a failure even if its subtests passed. Prints "N passed, M failed"."""
import json
import re
import sys

passed = failed = skipped = 0
with open(sys.argv[1]) as log:
    for line in log:
        test = json.loads(line)
        out = test.get("stdout", test.get("stdo", "")) or ""
        oks = len(re.findall(r"^ok \d+(?! .*# SKIP)", out, re.M))
        skips = len(re.findall(r"^ok \d+.*# SKIP", out, re.M))
        not_oks = len(re.findall(r"^not ok \d+", out, re.M))
        whole_ok = test["result"] in ("OK", "EXPECTEDFAIL", "SKIP")
        if oks + not_oks + skips == 0:
            if test["result"] == "SKIP":
                skipped += 1
            elif whole_ok:
                passed += 1
            else:
                failed += 1
            continue
        passed += oks
        skipped += skips
        failed += not_oks
        if not whole_ok and not_oks == 0:
            failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)

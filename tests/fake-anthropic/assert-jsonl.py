#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks a JSON-lines file (the CLI's stream-json stdout, or the fake API's
request log) against Python expressions, for the shell tests.

    assert-jsonl.py FILE EXPR [EXPR...]

Each EXPR is evaluated with L = the parsed lines and these helpers:
    of(type, subtype=None)   lines whose "type" (and "subtype") match
    one(type, subtype=None)  the only such line (fails when there are 0 or 2+)
    last(type, subtype=None) the last such line
    blocks(type)             content blocks of that type in all assistant/user messages
    main                     fake-API log entries of kind "main"
Exits 1 naming the first expression that is false, with the file attached.
"""

import json
import sys


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, exprs = sys.argv[1], sys.argv[2:]
    with open(path, encoding="utf-8") as f:
        L = [json.loads(line) for line in f if line.strip()]

    def of(type_, subtype=None):
        return [x for x in L if x.get("type") == type_ and (subtype is None or x.get("subtype") == subtype)]

    def one(type_, subtype=None):
        found = of(type_, subtype)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}/{subtype} line, found {len(found)}")
        return found[0]

    def last(type_, subtype=None):
        found = of(type_, subtype)
        if not found:
            raise AssertionError(f"no {type_}/{subtype} line")
        return found[-1]

    def blocks(type_):
        out = []
        for x in L:
            content = (x.get("message") or {}).get("content")
            if isinstance(content, list):
                out += [b for b in content if isinstance(b, dict) and b.get("type") == type_]
        return out

    env = {"L": L, "of": of, "one": one, "last": last, "blocks": blocks,
           "main": [x for x in L if x.get("kind") == "main"]}
    for expr in exprs:
        try:
            ok = eval(expr, env)  # the test's own expressions
        except Exception as e:  # noqa: BLE001 - any failure is a failed check
            ok, why = False, f"{type(e).__name__}: {e}"
        else:
            why = "false"
        if not ok:
            print(f"FAILED in {path}: {expr}  ({why})", file=sys.stderr)
            with open(path, encoding="utf-8") as f:
                for line in f:
                    print("  | " + line.rstrip()[:600], file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Hashes of runs' metrics.json, to compare two binaries or two runs of one config.

    python3 scripts/metrics_hash.py RUN_DIR [RUN_DIR ...]

Prints, per run: the SHA-256 of metrics.json as written, and the SHA-256 of its content
without the wall-time fields (`train_seconds`, also inside `ossl` / `ossl_best`), which
differ between any two runs. Two runs with the same second hash have the same metrics, bit
for bit (floats are compared as the JSON text Unseen wrote). Standard library only.
"""
import hashlib
import json
import sys


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k != "train_seconds"}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def main(runs):
    for run in runs:
        raw = open(f"{run}/metrics.json", "rb").read()
        # parse_float=str keeps the text of every number: no float round trip.
        m = strip(json.loads(raw, parse_float=str, parse_int=str))
        canon = json.dumps(m, sort_keys=True, separators=(",", ":")).encode()
        print(f"{hashlib.sha256(raw).hexdigest()[:16]}  "
              f"{hashlib.sha256(canon).hexdigest()[:16]}  {run}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

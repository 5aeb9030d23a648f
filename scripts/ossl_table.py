#!/usr/bin/env python3
"""Tabulates open-set SSL runs (FixMatch next to IOMatch) from their run folders.

    python3 scripts/ossl_table.py RUN_DIR [RUN_DIR ...]

Reads each run's `metrics.json` (written by `trainer train`) and `config.toml`, groups the
runs by dataset (`data.id_name`), seen classes, labels per class and iterations, and prints
two markdown tables:
open-set balanced accuracy of the final EMA model (`ossl`) and of the best checkpoint
(`ossl_best`, highest closed-set accuracy over the run's evaluations: the paper's
protocol), one column per recipe with every seed and the mean; the higher mean is in bold.
A third table gives, per run, closed-set accuracy, unknown recall, the AUROC of the unknown
score, the open BA the same model gets by never predicting "unknown"
(`never_unknown_balanced_accuracy`; for runs written before Unseen reported it, K/(K+1) x
the closed-set accuracy, which stands in for the mean closed recall on near-balanced test
sets), and the wall time.

    python3 scripts/ossl_table.py --curves RUN_DIR [RUN_DIR ...]

prints instead each run's open-set balanced accuracy at every evaluation, read from its
TensorBoard file (`tb/`, scalar `eval/open_balanced_accuracy`).

Standard library only (Python >= 3.11 for tomllib).
"""

import json
import struct
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

RECIPES = ("fixmatch", "iomatch")


def load(run: Path):
    m = json.loads((run / "metrics.json").read_text())
    cfg = tomllib.loads((run / "config.toml").read_text())
    data = cfg.get("data", {}).get("id_name") or cfg.get("data", {}).get("id", {}).get("source")
    return {
        "run": run,
        "data": data,
        "labels": m["ossl"].get("labels_per_class"),
        "seen": m["ossl"].get("seen_classes"),
        "iterations": m["ossl"].get("iterations"),
        "recipe": m["recipe"],
        "seed": m["seed"],
        "final": m["ossl"],
        "best": m.get("ossl_best"),
    }


def pct(x):
    return f"{100 * x:.2f}"


def ba_table(groups, which):
    out = [
        "| data | seen | labels / class | iterations | FixMatch (seeds; mean) | IOMatch (seeds; mean) |",
        "|---|---|---|---|---|---|",
    ]
    for (data, seen, labels, iters), by_recipe in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2] or 0, kv[0][3] or 0)
    ):
        cells, means = [], []
        for r in RECIPES:
            runs = sorted(by_recipe.get(r, []), key=lambda x: x["seed"])
            vals = [x[which]["open_balanced_accuracy"] for x in runs if x[which] is not None]
            if not vals:
                cells.append("-")
                means.append(None)
                continue
            mean = sum(vals) / len(vals)
            means.append(mean)
            cells.append((", ".join(pct(v) for v in vals), mean, len(vals)))
        best = max((m for m in means if m is not None), default=None)
        row = []
        for c, m in zip(cells, means):
            if c == "-":
                row.append(c)
                continue
            vals, mean, n = c
            shown = f"**{pct(mean)}**" if m == best and means.count(best) == 1 else pct(mean)
            row.append(f"{vals}; {shown}")
        out.append(f"| {data} | {seen} | {labels} | {iters} | {row[0]} | {row[1]} |")
    return "\n".join(out)


def _varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _fields(b):
    """(field number, value) of a protobuf message (varints as int, the rest as bytes)."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        f, t = key >> 3, key & 7
        if t == 0:
            v, i = _varint(b, i)
        elif t == 1:
            v, i = b[i:i + 8], i + 8
        elif t == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif t == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {t}")
        yield f, v


def scalars(tb_file, tag):
    """[(step, value)] of a scalar in a TensorBoard event file: records are
    `len u64, crc u32, Event, crc u32`; Event.step = 2, Event.summary = 5,
    Summary.value = 1, Value.tag = 1, Value.simple_value = 2 (float)."""
    data = Path(tb_file).read_bytes()
    out, i = [], 0
    while i + 12 <= len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        event, i = data[i + 12:i + 12 + n], i + 12 + n + 4
        step = 0
        for f, v in _fields(event):
            if f == 2:
                step = v
            elif f == 5:
                for f2, value in _fields(v):
                    if f2 != 1:
                        continue
                    fs = dict(_fields(value))
                    if fs.get(1) == tag.encode() and 2 in fs:
                        out.append((step, struct.unpack("<f", fs[2])[0]))
    return out


def curves(argv):
    for a in argv:
        files = sorted((Path(a) / "tb").glob("events.out.tfevents.*"))
        if not files:
            sys.exit(f"{a} has no tb/events.out.tfevents.* file")
        points = [p for f in files for p in scalars(f, "eval/open_balanced_accuracy")]
        print(f"{Path(a).name}: " + " ".join(f"{s}:{pct(v)}" for s, v in points))


def main(argv):
    if not argv:
        sys.exit(__doc__)
    if argv[0] == "--curves":
        return curves(argv[1:])
    runs = []
    for a in argv:
        p = Path(a)
        if not (p / "metrics.json").exists():
            sys.exit(f"{p} has no metrics.json (not a finished run folder)")
        runs.append(load(p))
    groups = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r["recipe"] not in RECIPES:
            sys.exit(f"{r['run']}: recipe {r['recipe']!r} is not an open-set SSL recipe")
        groups[(r["data"], r["seen"], r["labels"], r["iterations"])][r["recipe"]].append(r)
    print("Open-set balanced accuracy (%), final EMA model:\n")
    print(ba_table(groups, "final"))
    print("\nOpen-set balanced accuracy (%), best checkpoint (highest closed-set accuracy):\n")
    print(ba_table(groups, "best"))
    print(
        "\n| run | recipe | seed | closed final | closed best (iteration) | "
        "unknown recall final | unknown recall best | AUROC final | never-unknown BA final | "
        "wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda x: (x["data"], x["labels"] or 0, x["recipe"], x["seed"])):
        f, b = r["final"], r["best"]
        best_closed = f"{pct(b['closed_accuracy'])} ({b['iterations']})" if b else "-"
        best_unk = pct(b["open_recall"][-1]) if b else "-"
        secs = f.get("train_seconds")
        secs = f"{secs:.0f}" if secs is not None else "-"
        k = f["num_seen_classes"]
        never_unknown = f.get("never_unknown_balanced_accuracy")  # absent from older runs
        if never_unknown is None:
            never_unknown = k / (k + 1) * f["closed_accuracy"]
        print(
            f"| {r['run'].name} | {r['recipe']} | {r['seed']} | {pct(f['closed_accuracy'])} | "
            f"{best_closed} | {pct(f['open_recall'][-1])} | {best_unk} | {pct(f['auroc'])} | "
            f"{pct(never_unknown)} | {secs} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

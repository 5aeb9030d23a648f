#!/usr/bin/env python3
"""The Python side of scripts/bench_knn.sh: OpenOOD's KNN (faiss IndexFlatL2), NNGuide
(faiss IndexFlatIP) or MDS (scikit-learn EmpiricalCovariance) on the data the Rust example
`bench_knn` wrote, timed the same way, compared with the Rust scores.

    bench_knn.py run --detector knn|nnguide|mds --data-dir DIR --n-train N --n-query M \
        --dim D --k K --classes C --repeat R      # prints one line of JSON
    bench_knn.py table DIR/rust_*.json DIR/py_*.json  # Markdown table of a run

Needs numpy, faiss-cpu, scikit-learn (and scipy, which scikit-learn brings).
"""

import argparse
import json
import os
import resource
import sys
import time


def rss_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def normalizer(x):
    # OpenOOD knn_postprocessor.py / nnguide_postprocessor.py, verbatim (the 1e-10 is added
    # to every component, after the division).
    import numpy as np

    return x / np.linalg.norm(x, axis=-1, keepdims=True) + 1e-10


def run(a):
    import faiss
    import numpy as np
    from scipy.special import logsumexp
    import sklearn.covariance

    d = a.dim
    load = lambda name, rows: np.fromfile(os.path.join(a.data_dir, name), dtype="<f4").reshape(rows, -1)
    train = load("train.f32", a.n_train)
    query = load("query.f32", a.n_query)
    assert train.shape[1] == d and query.shape[1] == d
    extra = {}
    rss_before_fit = rss_mib("VmRSS")
    score_s, score_cpu_s = [], []
    if a.detector == "knn":
        t = time.perf_counter()
        index = faiss.IndexFlatL2(d)
        index.add(normalizer(train).astype(np.float32))
        fit_s = time.perf_counter() - t
        for _ in range(a.repeat):
            t, cpu = time.perf_counter(), time.process_time()
            dist, _ = index.search(normalizer(query).astype(np.float32), a.k)
            scores = -dist[:, -1]
            score_s.append(time.perf_counter() - t)
            score_cpu_s.append(time.process_time() - cpu)
        ref_name = "faiss IndexFlatL2"
    elif a.detector == "nnguide":
        train_logits = load("train_logits.f32", a.n_train)
        query_logits = load("query_logits.f32", a.n_query)
        t = time.perf_counter()
        bank = normalizer(train) * logsumexp(train_logits, axis=-1)[:, None]
        index = faiss.IndexFlatIP(d)
        index.add(bank.astype(np.float32))
        fit_s = time.perf_counter() - t
        for _ in range(a.repeat):
            t, cpu = time.perf_counter(), time.process_time()
            sims, _ = index.search(normalizer(query).astype(np.float32), a.k)
            scores = sims.mean(axis=1) * logsumexp(query_logits, axis=-1)
            score_s.append(time.perf_counter() - t)
            score_cpu_s.append(time.process_time() - cpu)
        ref_name = "faiss IndexFlatIP"
    elif a.detector == "mds":
        labels = load("train_labels.f32", a.n_train)[:, 0].astype(np.int64)
        t = time.perf_counter()
        # mds_postprocessor.py: class means, EmpiricalCovariance of the class-centred
        # features, its precision_ (pinvh).
        means = np.stack([train[labels == c].mean(0) for c in range(a.classes)])
        centred = np.concatenate([train[labels == c] - means[c] for c in range(a.classes)])
        cov = sklearn.covariance.EmpiricalCovariance(assume_centered=False)
        cov.fit(centred.astype(np.float32))
        precision = cov.precision_.astype(np.float32)
        del centred
        fit_s = time.perf_counter() - t
        for _ in range(a.repeat):
            t, cpu = time.perf_counter(), time.process_time()
            # OpenOOD computes diag(t P tᵀ) with a full [n, n] product; the row-wise form
            # below is the same numbers without the n² work.
            class_scores = np.empty((a.n_query, a.classes), dtype=np.float32)
            for c in range(a.classes):
                tc = query - means[c]
                class_scores[:, c] = -((tc @ precision) * tc).sum(1)
            scores = class_scores.max(1)
            score_s.append(time.perf_counter() - t)
            score_cpu_s.append(time.process_time() - cpu)
        ref_name = "scikit-learn EmpiricalCovariance + NumPy"
    else:
        sys.exit(f"unknown detector {a.detector}")
    rust_path = os.path.join(a.data_dir, f"scores_{a.detector}.f32")
    if os.path.exists(rust_path):
        rust = np.fromfile(rust_path, dtype="<f4").astype(np.float64)
        diff = np.abs(rust - scores.astype(np.float64))
        extra["max_abs_diff"] = float(diff.max())
        extra["max_rel_diff"] = float((diff / np.maximum(np.abs(scores), 1e-12)).max())
        extra["score_range"] = [float(scores.min()), float(scores.max())]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({
        "impl": ref_name,
        "detector": a.detector,
        "n_train": a.n_train,
        "n_query": a.n_query,
        "dim": d,
        "k": a.k,
        "threads": faiss.omp_get_max_threads(),
        "fit_s": fit_s,
        "score_s": score_s,
        "score_cpu_s": score_cpu_s,
        "rss_before_fit_mib": rss_before_fit,
        "peak_rss_mib": peak,
        "versions": {"numpy": np.__version__, "faiss": faiss.__version__,
                     "sklearn": sklearn.__version__},
        **extra,
    }))


def table(paths):
    """One row per detector and implementation over all the runs given (the script
    alternates Rust and reference runs): best wall-clock and CPU seconds of the scoring
    (every run in brackets), best fit, largest peak RSS."""
    runs = {}
    for p in paths:
        with open(p) as f:
            r = json.loads(f.read())
        det = r["detector"].split(":")[0]
        side = "rust" if r["impl"] == "rust" else "ref"
        agg = runs.setdefault(det, {}).setdefault(side, dict(r, score_s=[], score_cpu_s=[], fit=[]))
        agg["score_s"] += r["score_s"]
        agg["score_cpu_s"] += r["score_cpu_s"]
        agg["fit"].append(r["fit_s"])
        agg["peak_rss_mib"] = max(agg["peak_rss_mib"], r["peak_rss_mib"])
        agg["rss_before_fit_mib"] = max(agg["rss_before_fit_mib"], r["rss_before_fit_mib"])
        for key in ("max_abs_diff", "max_rel_diff"):
            if key in r:
                agg[key] = max(agg.get(key, 0.0), r[key])
    print("| detector | implementation | fit s | score s, wall (all runs) | score s, CPU | "
          "ratio ref/rust, wall | ratio ref/rust, CPU | peak RSS MiB (before fit) | max abs diff (rel) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for det, pair in runs.items():
        rust, ref = pair.get("rust"), pair.get("ref")
        for r in (rust, ref):
            if r is None:
                continue
            wall, cpu = min(r["score_s"]), min(r["score_cpu_s"])
            all_runs = ", ".join(f"{s:.2f}" for s in r["score_s"])
            if r is ref and rust is not None:
                ratio = f"**{wall / min(rust['score_s']):.2f}**"
                rust_cpu = min(rust["score_cpu_s"])
                # /proc/self/stat counts 10 ms ticks: tiny runs read 0.
                ratio_cpu = f"{cpu / rust_cpu:.2f}" if rust_cpu > 0 else "n/a"
                diff = f"{r.get('max_abs_diff', float('nan')):.2e} ({r.get('max_rel_diff', float('nan')):.1e})"
            else:
                ratio = ratio_cpu = diff = ""
            name = r["impl"] + (f" `{r['detector']}`" if r is rust else "")
            print(f"| {det} | {name} | {min(r['fit']):.2f} | {wall:.2f} ({all_runs}) | {cpu:.2f} | {ratio} "
                  f"| {ratio_cpu} | {r['peak_rss_mib']:.0f} ({r['rss_before_fit_mib']:.0f}) | {diff} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--detector", required=True)
    r.add_argument("--data-dir", required=True)
    for flag, default in [("n-train", 50000), ("n-query", 10000), ("dim", 512), ("k", 50),
                          ("classes", 10), ("repeat", 3)]:
        r.add_argument(f"--{flag}", type=int, default=default)
    t = sub.add_parser("table")
    t.add_argument("paths", nargs="+")
    a = p.parse_args()
    if a.cmd == "run":
        run(a)
    else:
        table(a.paths)


if __name__ == "__main__":
    main()

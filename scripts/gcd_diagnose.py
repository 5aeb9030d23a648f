#!/usr/bin/env python3
"""Recomputes a category-discovery run's numbers outside Unseen and compares its head with
clustering its backbone (never run in CI; needs numpy, scipy, scikit-learn, safetensors).

    trainer embed --config RUN/config.toml --run RUN --train-split --out train.safetensors
    trainer export --run RUN --out export.safetensors          # optional: prototype stats
    python3 scripts/gcd_diagnose.py train.safetensors [--export export.safetensors]

Reports, on the unlabelled training images (the papers' number) with GCD's v2 protocol (one
Hungarian matching over all classes; scipy's linear_sum_assignment):
  - `head`: the argmax of the run's prototype logits (what its metrics.json reports);
  - `kmeans`: scikit-learn KMeans(K, n_init=10) on the L2-normalised backbone features of
    every training image, labels unused;
  - `ss-kmeans`: a NumPy port of GCD's semi-supervised k-means (`K_Means.fit_mix`,
    sgvaze/generalized-category-discovery) with the labelled images pinned to their class;
  - the cluster sizes of each, and with --export, the prototypes' norms, their pairwise
    cosines and the cosine between each old-class prototype and its labelled class mean.
"""
import argparse

import numpy as np
from safetensors.numpy import load_file
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans


def v2(y, p, is_old):
    """GCD's split_cluster_acc_v2: one matching over all classes, then All/Old/New."""
    d = max(p.max(), y.max()) + 1
    w = np.zeros((d, d), dtype=np.int64)
    for yi, pi in zip(y, p):
        w[pi, yi] += 1
    r, c = linear_sum_assignment(w.max() - w)
    m = {i: j for i, j in zip(r, c)}
    hit = np.array([m[pi] == yi for yi, pi in zip(y, p)])
    return hit.mean(), hit[is_old].mean(), hit[~is_old].mean()


def ss_kmeans(x, labels, k, rng, n_init=10, max_iter=100, tol=1e-4):
    """GCD's fit_mix: labelled points fixed to their class cluster, k-means++ for the rest."""
    lab = labels >= 0
    xl, xu, yl = x[lab], x[~lab], labels[lab]
    classes = np.unique(yl)
    best = None
    for _ in range(n_init):
        centers = [xl[yl == c].mean(0) for c in classes]
        # k-means++ on the unlabelled points with the class means as chosen centres.
        for _ in range(k - len(classes)):
            c = np.array(centers)
            d2 = ((xu[:, None, :] - c[None]) ** 2).sum(-1).min(1)
            prob = d2 / d2.sum()
            idx = np.searchsorted(np.cumsum(prob), rng.random())
            centers.append(xu[min(idx, len(xu) - 1)])
        c = np.array(centers)
        l_assign = np.searchsorted(classes, yl)
        best_run = None
        for _ in range(max_iter):
            old = c.copy()
            d = ((xu[:, None, :] - c[None]) ** 2).sum(-1)
            u_assign = d.argmin(1)
            inertia = d.min(1).sum() + ((xl - c[l_assign]) ** 2).sum()
            for j in range(k):
                pts = np.concatenate([xl[l_assign == j], xu[u_assign == j]])
                if len(pts):
                    c[j] = pts.mean(0)
            if best_run is None or inertia < best_run[0]:
                best_run = (inertia, u_assign.copy())
            if np.sqrt(((c - old) ** 2).sum(1)).sum() ** 2 < tol:
                break
        if best is None or best_run[0] < best[0]:
            best = best_run
    return best[1], best[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("embedding")
    ap.add_argument("--export")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    e = load_file(a.embedding)
    if "labelled" not in e:
        raise SystemExit(f"{a.embedding} has no `labelled` tensor: embed a category-discovery "
                         "run with --run RUN --train-split")
    f, y = e["features"].astype(np.float64), e["labels"]
    lab = e["labelled"].astype(bool)
    k = int(y.max()) + 1
    num_old = int(y[lab].max()) + 1
    x = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    unl = ~lab
    is_old = y[unl] < num_old
    rows = []
    if "logits" in e:
        rows.append(("head", e["logits"][unl].argmax(1)))
    km = KMeans(k, n_init=10, random_state=a.seed).fit(x)
    rows.append(("kmeans", km.labels_[unl]))
    labels = np.where(lab, y, -1)
    p, inertia = ss_kmeans(x, labels, k, np.random.default_rng(a.seed))
    print(f"ss-kmeans inertia {inertia:.4f}")
    rows.append(("ss-kmeans", p))
    print(f"{unl.sum()} unlabelled images ({is_old.sum()} old), {lab.sum()} labelled, K = {k}")
    print(f"{'predictor':<10} {'All':>6} {'Old':>6} {'New':>6}  cluster sizes")
    for name, p in rows:
        acc = v2(y[unl], p, is_old)
        sizes = np.bincount(p, minlength=k)
        print(f"{name:<10} " + " ".join(f"{100 * v:6.2f}" for v in acc) + f"  {sorted(sizes.tolist(), reverse=True)}")
    if a.export:
        w = load_file(a.export)
        v = w["1.prototype_layer.weight_v"].astype(np.float64)
        n = np.linalg.norm(v, axis=1)
        c = v / n[:, None]
        cos = c @ c.T
        off = cos[~np.eye(k, dtype=bool)]
        print(f"prototype norms: mean {n.mean():.3f} min {n.min():.3f} max {n.max():.3f}")
        print(f"prototype pairwise cosine: mean {off.mean():.3f} max {off.max():.3f}")
        means = np.array([x[lab & (y == j)].mean(0) for j in range(num_old)])
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        print("cos(old prototype, labelled class mean): " + " ".join(f"{v:.3f}" for v in (c[:num_old] * means).sum(1)))
        feat_means = np.array([x[y == j].mean(0) for j in range(k)])
        feat_means /= np.linalg.norm(feat_means, axis=1, keepdims=True)
        best = (c @ feat_means.T).max(1)
        print("max cos(prototype, any true class mean): " + " ".join(f"{v:.3f}" for v in best))


if __name__ == "__main__":
    main()

"""Isolation-forest benchmark: FlowForest against scikit-learn and isotree.

Usage: bench.py PATH/TO/detection-bench   (make bench-detection builds it)

All three train 100 trees of 256 samples on the same data and score the same
vectors on one core: batch throughput, one vector at a time, and training
time. Each figure is the best of several runs; ratios are against
scikit-learn measured in this same run.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from isotree import IsolationForest as IsoTree
from sklearn.ensemble import IsolationForest as SkForest

D = 26          # the flow vector's width
TRAIN = 20_000
TEST = 20_000
SINGLE = 2_000  # one-at-a-time calls timed on the Python side (they are slow)


def best(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: bench.py PATH/TO/detection-bench")
    rng = np.random.default_rng(7)
    centers = rng.normal(0, 3, size=(4, D))
    train = centers[rng.integers(0, 4, TRAIN)] + rng.normal(0, 1, (TRAIN, D))
    test = centers[rng.integers(0, 4, TEST)] + rng.normal(0, 1.5, (TEST, D))

    with tempfile.TemporaryDirectory() as tmp:
        train_path = os.path.join(tmp, "train.csv")
        test_path = os.path.join(tmp, "test.csv")
        np.savetxt(train_path, train, delimiter=",", fmt="%.17g")
        np.savetxt(test_path, test, delimiter=",", fmt="%.17g")
        out = subprocess.run([sys.argv[1], train_path, test_path], check=True, capture_output=True, text=True)
    ff = json.loads(out.stdout)

    rows = {}
    sk = SkForest(n_estimators=100, max_samples=256, n_jobs=1, random_state=0)
    sk_train = best(lambda: sk.fit(train), 5)
    sk_batch = best(lambda: sk.score_samples(test), 3)
    one = test[:SINGLE]
    sk_single = best(lambda: [sk.score_samples(one[i:i + 1]) for i in range(SINGLE)], 1) / SINGLE
    rows["scikit-learn"] = (sk_train, TEST / sk_batch, 1 / sk_single)

    it = IsoTree(ntrees=100, sample_size=256, ndim=1, nthreads=1, random_seed=0)
    it_train = best(lambda: it.fit(train), 5)
    it_batch = best(lambda: it.predict(test), 3)
    it_single = best(lambda: [it.predict(one[i:i + 1]) for i in range(SINGLE)], 1) / SINGLE
    rows["isotree"] = (it_train, TEST / it_batch, 1 / it_single)

    rows["FlowForest"] = (ff["train_s"], ff["batch_vectors_per_s"], ff["single_vectors_per_s"])

    base = rows["scikit-learn"]
    print(f"isolation forest, 100 trees x 256 samples, {D} features, {TRAIN} training / {TEST} scored vectors, one core")
    print(f"{'':14} {'train 100 trees':>16} {'batch vectors/s':>16} {'single vectors/s':>17} {'single us':>10}   ratios vs scikit-learn (train speed, batch, single)")
    for name, (tr, batch, single) in rows.items():
        print(f"{name:14} {tr * 1e3:13.2f} ms {batch:16,.0f} {single:17,.0f} {1e6 / single:10.2f}   "
              f"{base[0] / tr:6.1f}x {batch / base[1]:6.1f}x {single / base[2]:8.1f}x")
    print(f"FlowForest one vector with path credit (explanations): {ff['single_with_credit_us']:.2f} us")


if __name__ == "__main__":
    main()

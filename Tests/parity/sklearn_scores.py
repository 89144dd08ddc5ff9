"""Scores test vectors with scikit-learn's IsolationForest for the parity test.

Usage: sklearn_scores.py TRAIN.csv TEST.csv SEED
Prints one score per test row, in scikit-learn's sign convention flipped to
the paper's (higher is more anomalous), so the caller can compute ROC AUC.
"""
import sys

import numpy as np
from sklearn.ensemble import IsolationForest


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: sklearn_scores.py TRAIN.csv TEST.csv SEED")
    train = np.loadtxt(sys.argv[1], delimiter=",", ndmin=2)
    test = np.loadtxt(sys.argv[2], delimiter=",", ndmin=2)
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=int(sys.argv[3]))
    forest.fit(train)
    # score_samples is −s(x); negate to get the paper's s(x).
    for s in -forest.score_samples(test):
        print(repr(float(s)))


if __name__ == "__main__":
    main()

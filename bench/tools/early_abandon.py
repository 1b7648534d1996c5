#!/usr/bin/python3
"""How much of an L2 distance could be skipped by stopping once the partial
sum passes the search's bound (am_hnsw README, "Where a query's time goes").

    apt-get install python3-numpy
    /usr/bin/python3 bench/tools/early_abandon.py

For 200 Fashion-MNIST test queries: the bound is the exact distance of the
16th nearest training image; the candidates are the images ranked 16 to 300
(and 16 to 120), standing in for what a search at ef_search 16 visits.  For
each fraction f of the dimensions read first, it prints the share of
candidates whose partial sum already exceeds the bound and the share of
bytes that would still be read.
"""
import gzip

import numpy as np

DIR = "/usr/share/datasets/fashion-mnist/"


def images(name):
    with gzip.open(DIR + name) as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784).astype(np.float32)


base = images("train-images-idx3-ubyte.gz")
queries = images("t10k-images-idx3-ubyte.gz")[:200]
for lo, hi in [(16, 300), (16, 120)]:
    for f in [0.25, 0.4, 0.5, 0.6]:
        k = int(784 * f)
        abandoned = total = 0
        for q in queries:
            sq = (base - q) ** 2
            dist = sq.sum(1)
            order = np.argsort(dist)
            bound = dist[order[lo]]
            cand = order[lo:hi]
            abandoned += int((sq[cand, :k].sum(1) > bound).sum())
            total += len(cand)
        share = abandoned / total
        print(f"ranks {lo}-{hi}, first {f:.0%} read: abandoned {share:.2f}, "
              f"bytes read {1 - share * (1 - f):.2f}")

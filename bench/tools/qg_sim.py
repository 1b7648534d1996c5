#!/usr/bin/python3
"""Simulated search by per-edge codes on Fashion-MNIST: each neighbour list
keeps a compact code of every neighbour (its projection on r principal axes
of the data, quantised to b bits per axis, and the norm of what the axes
leave out), so expanding a node gives estimates of all its neighbours'
distances without reading them.  The candidate queue is ordered by those
estimates; a node's stored vector is read only when it is expanded, and
only expanded nodes enter the results (in the manner of SymphonyQG).

    apt-get install python3-numpy libopenblas0-pthread
    /usr/bin/python3 bench/tools/qg_sim.py 1000 base:0:0:32,40 lb:64:4:40,60

Arguments: the number of test queries, then MODE:R:BITS:EF,EF,... where
MODE is base (best-first search reading every neighbour, as now), drop
(estimate = in-axes distance + both left-out norms squared), lb (in-axes
distance + (|q_perp| - |v_perp|)^2, a lower bound but for quantisation),
kK (in-axes distance + |q_perp|^2 + |v_perp|^2 - 2K|q_perp||v_perp|: drop
is k0, lb is k1) or in (in-axes distance only).  Uses the graph and ground truth cached by
sketch_sim.py.  Prints, per query: element reads (expansions for the
per-edge modes, distances for base), estimates, recall@10.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sketch_sim  # noqa: E402


def main():
    import heapq
    import numpy as np
    X = sketch_sim.load('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
    Q = sketch_sim.load('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz', 1000)
    A = np.load(os.path.join(sketch_sim.CACHE, 'adj.npy'))
    gt = np.load(os.path.join(sketch_sim.CACHE, 'base.npz'))['gt']
    n = len(X)
    rng = np.random.default_rng(1)
    samp = rng.choice(n, 500, replace=False)
    NQ = int(sys.argv[1])
    Xs = X[rng.choice(n, 1000, replace=False)]
    mu = Xs.mean(0)
    _, _, Vt = np.linalg.svd(Xs - mu, full_matrices=False)
    x2 = ((X - mu) ** 2).sum(1)
    cache = {}

    def codes(r, b):
        if (r, b) not in cache:
            P = (X - mu) @ Vt[:r].T
            lo = P.min(1, keepdims=True)
            st = (P.max(1, keepdims=True) - lo) / (2 ** b - 1) + 1e-12
            Pq = lo + np.round((P - lo) / st) * st
            perp = np.sqrt(np.maximum(x2 - (P * P).sum(1), 0))
            cache[(r, b)] = (Pq.astype(np.float32), perp.astype(np.float32))
        return cache[(r, b)]

    def exact(ids, q):
        return ((X[ids] - q) ** 2).sum(1)

    def base(q, ef):
        d0 = exact(samp, q)
        e = samp[np.argmin(d0)]
        de = float(d0.min())
        visited = {e}
        cand = [(de, e)]
        res = [(-de, e)]
        nd = 1
        while cand:
            dc, c = heapq.heappop(cand)
            if len(res) >= ef and dc > -res[0][0]:
                break
            nb = [v for v in A[c] if v >= 0 and v not in visited]
            if not nb:
                continue
            visited.update(nb)
            d = exact(np.array(nb), q)
            nd += len(nb)
            for v, dv in zip(nb, d):
                dv = float(dv)
                if len(res) < ef or dv < -res[0][0]:
                    heapq.heappush(cand, (dv, v))
                    heapq.heappush(res, (-dv, v))
                    if len(res) > ef:
                        heapq.heappop(res)
        top = [v for _, v in sorted((-a, b) for a, b in res)[:10]]
        return nd, 0, top

    def qg(q, ef, mode, r, b):
        Pc, perp = codes(r, b)
        qc = (q - mu) @ Vt[:r].T
        qperp = float(np.sqrt(max(float(((q - mu) ** 2).sum() - qc @ qc), 0)))
        d0 = exact(samp, q)
        e = samp[np.argmin(d0)]
        visited = {e}
        cand = [(0.0, e)]
        res = []
        nexp = 0
        nest = 0
        while cand:
            ec, c = heapq.heappop(cand)
            if len(res) >= ef and ec > -res[0][0]:
                break
            dc = float(exact([c], q)[0])
            nexp += 1
            if len(res) < ef or dc < -res[0][0]:
                heapq.heappush(res, (-dc, c))
                if len(res) > ef:
                    heapq.heappop(res)
            nb = [v for v in A[c] if v >= 0 and v not in visited]
            if not nb:
                continue
            visited.update(nb)
            nb = np.array(nb)
            nest += len(nb)
            din = ((Pc[nb] - qc) ** 2).sum(1)
            if mode == 'drop':
                est = din + qperp ** 2 + perp[nb] ** 2
            elif mode == 'lb':
                est = din + (perp[nb] - qperp) ** 2
            elif mode.startswith('k'):
                kappa = float(mode[1:])
                est = din + qperp ** 2 + perp[nb] ** 2 - 2 * kappa * qperp * perp[nb]
            else:
                est = din
            bound = -res[0][0] if len(res) >= ef else np.inf
            for v, ev in zip(nb, est):
                if ev <= bound:
                    heapq.heappush(cand, (float(ev), v))
        top = [v for _, v in sorted((-a, b) for a, b in res)[:10]]
        return nexp, nest, top

    for spec in sys.argv[2:]:
        mode, r, b, efs = spec.split(':')
        for ef in efs.split(','):
            tr = te = rc = 0
            for i in range(NQ):
                if mode == 'base':
                    nr, ne, top = base(Q[i], int(ef))
                else:
                    nr, ne, top = qg(Q[i], int(ef), mode, int(r), int(b))
                tr += nr
                te += ne
                rc += len(set(top) & set(gt[i])) / 10
            print(f'{mode:5s} r={r} bits={b} ef={ef}: reads/q {tr / NQ:.1f} '
                  f'estimates/q {te / NQ:.1f} recall {rc / NQ:.4f}', flush=True)


if __name__ == '__main__':
    main()

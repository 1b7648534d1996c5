#!/usr/bin/python3
"""Simulated edge sketches on Fashion-MNIST (am_hnsw README, "Edge sketches"):
distances per query and recall@10 of a best-first search that passes over
neighbours whose sketch estimate is beyond the furthest result kept.

    apt-get install python3-numpy libopenblas0-pthread
    /usr/bin/python3 bench/tools/sketch_sim.py 300 base:32:0:32,40 fbits:64:0.1:40
    DATAPCA=1 /usr/bin/python3 bench/tools/sketch_sim.py 300 fbits:64:0.1:40
    RANDB=1 /usr/bin/python3 bench/tools/sketch_sim.py 300 fbits:128:0.1:40

Arguments: the number of test queries, then MODE:R:MARGIN:EF,EF,... where
MODE is base (no sketch), finger (R float projections, angle estimate),
fbits (R sign bits), fq8 / fq4 (8-/4-bit projections), proj, projlb,
fingerdot, fbw (sign bits weighted by the spread of edge residuals along
each axis, the cosine estimated from the query's projected residual, as
RaBitQ does; WDATA=1 weights by the data's spread instead), fbwk (the same
with each edge's own alignment factor).  The axes are the principal axes of
edge residuals, of the data with DATAPCA=1, or random with RANDB=1.
DEFER=D (DEFN=N, default 16): keep the neighbours passed over, and when the
search has converged visit (one batch) the N with the smallest estimates
within (1 + D) of the furthest result, then go on.  Each line reports
distances, recall, nodes expanded and such extra batches, per query.  The graph: the exact 64 nearest
neighbours of every training image (a few minutes with OpenBLAS), pruned by
RobustPrune to at most 32 with back-links; both are cached in
$SKETCH_SIM_CACHE (default ~/.cache/omen-sketch-sim).  The search starts
from the nearest of 500 random nodes.
"""
import os
CACHE = os.environ.get('SKETCH_SIM_CACHE', os.path.expanduser('~/.cache/omen-sketch-sim'))
os.makedirs(CACHE, exist_ok=True)


def load(p, n=None):
    """The images of an idx3 file (gzip) as float32 rows, the first n"""
    import gzip, numpy as np
    with gzip.open(p) as f:
        d = f.read()
    a = np.frombuffer(d, dtype=np.uint8, offset=16).reshape(-1, 784).astype(np.float32)
    return a if n is None else a[:n]


def prepare_knn():
    import numpy as np, gzip, time
    X = load('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
    Q = load('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz', 1000)
    n = len(X); K = 64
    x2 = (X*X).sum(1)
    knn = np.zeros((n, K), dtype=np.int32); kd = np.zeros((n, K), dtype=np.float32)
    t = time.time()
    for s in range(0, n, 2000):
        d = x2[s:s+2000, None] + x2[None, :] - 2 * X[s:s+2000] @ X.T
        for i in range(d.shape[0]): d[i, s+i] = np.inf
        idx = np.argpartition(d, K, axis=1)[:, :K]
        dd = np.take_along_axis(d, idx, 1)
        o = np.argsort(dd, 1)
        knn[s:s+2000] = np.take_along_axis(idx, o, 1); kd[s:s+2000] = np.take_along_axis(dd, o, 1)
        print(s, time.time()-t, flush=True)
    d = (Q*Q).sum(1)[:, None] + x2[None, :] - 2 * Q @ X.T
    gt = np.argsort(d, 1)[:, :10]
    np.savez(os.path.join(CACHE, 'base.npz'), knn=knn, kd=kd, gt=gt)


def prepare_graph():
    import numpy as np, gzip, time
    X = load('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
    b = np.load(os.path.join(CACHE, 'base.npz')); knn, kd = b['knn'], b['kd']
    n = len(X); M = 32
    def prune(u, cands, dists):
        o = np.argsort(dists); cands = cands[o]; dists = dists[o]
        V = X[cands]; v2 = (V*V).sum(1)
        P = v2[:, None] + v2[None, :] - 2 * V @ V.T
        out = []
        for i in range(len(cands)):
            if cands[i] == u: continue
            if out and (P[i, out] < dists[i]).any(): continue
            out.append(i)
            if len(out) == M: break
        return list(cands[out])
    t=time.time()
    adj = [prune(u, knn[u], kd[u]) for u in range(n)]
    print('fwd', time.time()-t, np.mean([len(a) for a in adj]), flush=True)
    rev = [[] for _ in range(n)]
    for u in range(n):
        for v in adj[u]: rev[v].append(u)
    for v in range(n):
        s = set(adj[v])
        add = [u for u in rev[v] if u not in s]
        if not add: continue
        al = adj[v] + add
        if len(al) <= M: adj[v] = al
        else:
            c = np.array(al); d = ((X[c]-X[v])**2).sum(1)
            adj[v] = prune(v, c, d)
    print('rev', time.time()-t, np.mean([len(a) for a in adj]), flush=True)
    A = np.full((n, M), -1, dtype=np.int32)
    for u in range(n): A[u, :len(adj[u])] = adj[u]
    np.save(os.path.join(CACHE, 'adj.npy'), A)


NEXP = 0; NROUND = 0
def simulate():
    import numpy as np, gzip, heapq, sys
    X = load('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
    Q = load('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz', 1000)
    A = np.load(os.path.join(CACHE, 'adj.npy')); gt = np.load(os.path.join(CACHE, 'base.npz'))['gt']
    n = len(X)
    rng = np.random.default_rng(1)
    samp = rng.choice(n, 500, replace=False)
    NQ = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    # residual PCA basis from edge residuals
    us = rng.choice(n, 3000, replace=False)
    R = []
    for u in us:
        for v in A[u]:
            if v >= 0: R.append(X[v] - X[u])
    R = np.array(R)
    _, _, Vt = np.linalg.svd(R[:20000], full_matrices=False)
    def mk(r):
        B = Vt[:r]
        return B, X @ B.T
    bases = {r: mk(r) for r in (8, 16, 32, 64, 128)}
    if os.environ.get('DATAPCA'):
        Xs = X[rng.choice(n, 5000, replace=False)]; Xs = Xs - Xs.mean(0)
        _, _, Vd = np.linalg.svd(Xs, full_matrices=False)
        for r in (32, 64, 128):
            bases[r] = (Vd[:r], X @ Vd[:r].T)
        print('data pca')
    if os.environ.get('RANDB'):
        G = np.random.default_rng(7).standard_normal((128, 784)).astype(np.float32)
        for r in (16, 32, 64, 128):
            bases[r] = (G[:r], X @ G[:r].T)
        print('random bases')
    Rr = R[:20000]
    for r in (16, 32, 64):
        B = bases[r][0]; p = Rr @ B.T
        print('r', r, 'residual energy captured', ((p*p).sum() / (Rr*Rr).sum()).round(3))
    W = {}; KAP = {}; WD = {}
    for rr in bases:
        pb = Rr @ bases[rr][0].T
        W[rr] = pb.std(0).astype(np.float32)
        WD[rr] = (X[:5000] @ bases[rr][0].T).std(0).astype(np.float32)
        if os.environ.get('WDATA'): W[rr] = WD[rr]
        bt = np.where(pb > 0, 1.0, -1.0) * W[rr]
        bh = bt / np.linalg.norm(bt, axis=1, keepdims=True)
        KAP[rr] = float(np.mean((bh * pb).sum(1) / (np.linalg.norm(pb, axis=1) + 1e-9)))
        print('kappa', rr, round(KAP[rr], 3))
    def search(q, ef, mode, r=32, eps=0.0):
        B, BX = bases[r] if r in bases else (None, None)
        dq = lambda ids: ((X[ids] - q)**2).sum(1)
        d0 = dq(samp); e = samp[np.argmin(d0)]
        visited = {e}
        de = float(((X[e]-q)**2).sum()); nd = 1
        cand = [(de, e)]; res = [(-de, e)]
        Bq = q @ B.T if B is not None else None
        q2perp = float(q @ q - Bq @ Bq) if B is not None else 0
        def visit(ids):
            """Mark ids visited, offer them to the queue and the results"""
            for v in ids: visited.add(v)
            for v, dv in zip(ids, dq(ids)):
                dv = float(dv)
                if len(res) < ef or dv < -res[0][0]:
                    heapq.heappush(cand, (dv, v)); heapq.heappush(res, (-dv, v))
                    if len(res) > ef: heapq.heappop(res)
            return len(ids)
        deferred = {}
        DEF = float(os.environ.get('DEFER', '-1')); DEFN = int(os.environ.get('DEFN', '16'))
        global NEXP, NROUND
        while True:
          while cand:
            dc, c = heapq.heappop(cand)
            if len(res) >= ef and dc > -res[0][0]: break
            NEXP += 1
            nb = [v for v in A[c] if v >= 0 and v not in visited]
            if not nb: continue
            nb = np.array(nb)
            if mode != 'base' and len(res) >= ef:
                tau = -res[0][0]
                if mode == 'proj':   # exact in-subspace + perp norms, cross term 0
                    pv = BX[nb]; d_in = ((pv - Bq)**2).sum(1)
                    x2perp = (X[nb]**2).sum(1) - (pv*pv).sum(1)
                    est = d_in + q2perp + x2perp
                elif mode == 'projlb':   # lower bound: in-subspace only
                    pv = BX[nb]; est = ((pv - Bq)**2).sum(1)
                elif mode == 'finger':   # centred at c, angle from subspace
                    a = Bq - BX[c]; b = BX[nb] - BX[c]
                    nvc = np.sqrt(((X[nb] - X[c])**2).sum(1))
                    cos = (b @ a) / (np.linalg.norm(b, axis=1) * np.linalg.norm(a) + 1e-9)
                    est = dc + nvc**2 - 2 * np.sqrt(dc) * nvc * cos
                elif mode == 'fbits':   # sign bits of the r projections
                    a = Bq - BX[c]; b = BX[nb] - BX[c]
                    nvc = np.sqrt(((X[nb] - X[c])**2).sum(1))
                    ham = ((b > 0) != (a > 0)).sum(1)
                    cos = np.cos(np.pi * ham / len(a))
                    est = dc + nvc**2 - 2 * np.sqrt(dc) * nvc * cos
                elif mode in ('fbw', 'fbwk', 'rbk'):
                    a = Bq - BX[c]; b = BX[nb] - BX[c]
                    nvc = np.sqrt(((X[nb] - X[c])**2).sum(1))
                    w = W[r] if mode != 'rbk' else np.ones(r, dtype=np.float32)
                    if os.environ.get('WDATA'): w = WD[r]
                    bt = np.where(b > 0, 1.0, -1.0) * w
                    bh = bt / np.linalg.norm(bt, axis=1, keepdims=True)
                    na = np.linalg.norm(a) + 1e-9
                    if mode == 'fbw':
                        kap = KAP[r]
                    else:
                        kap = (bh * b).sum(1) / (np.linalg.norm(b, axis=1) + 1e-9)
                    cos = np.clip((bh @ a) / na / kap, -1, 1)
                    est = dc + nvc**2 - 2 * np.sqrt(dc) * nvc * cos
                elif mode == 'fq8':   # int8 quantised projections
                    a = Bq - BX[c]; b = BX[nb] - BX[c]
                    sc = np.abs(b).max(1, keepdims=True) / 127 + 1e-9
                    b = np.round(b / sc) * sc
                    nvc = np.sqrt(((X[nb] - X[c])**2).sum(1))
                    cos = (b @ a) / (np.linalg.norm(b, axis=1) * np.linalg.norm(a) + 1e-9)
                    est = dc + nvc**2 - 2 * np.sqrt(dc) * nvc * cos
                elif mode == 'fq4':   # 4-bit quantised projections
                    a = Bq - BX[c]; b = BX[nb] - BX[c]
                    sc = np.abs(b).max(1, keepdims=True) / 7 + 1e-9
                    b = np.round(b / sc) * sc
                    nvc = np.sqrt(((X[nb] - X[c])**2).sum(1))
                    cos = (b @ a) / (np.linalg.norm(b, axis=1) * np.linalg.norm(a) + 1e-9)
                    est = dc + nvc**2 - 2 * np.sqrt(dc) * nvc * cos
                elif mode == 'fingerdot':   # centred at c, in-subspace dot only
                    a = Bq - BX[c]; b = BX[nb] - BX[c]
                    nvc2 = ((X[nb] - X[c])**2).sum(1)
                    est = dc + nvc2 - 2 * (b @ a)
                keep = est <= tau * (1 + eps)
                if DEF >= 0:
                    for v, e_ in zip(nb[~keep], est[~keep]):
                        if e_ < deferred.get(v, 1e30): deferred[v] = float(e_)
                nb = nb[keep]
                if len(nb) == 0: continue
            nd += visit(nb)
          if DEF < 0: break
          tau = -res[0][0]
          pick = sorted((e_, v) for v, e_ in deferred.items() if v not in visited and e_ <= tau * (1 + DEF))[:DEFN]
          deferred = {}
          if not pick: break
          NROUND += 1
          nd += visit(np.array([v for _, v in pick]))
        top = [v for _, v in sorted((-a, b) for a, b in res)[:10]]
        return nd, top
    def run(ef, mode, r=32, eps=0.0):
        global NEXP, NROUND
        NEXP = 0; NROUND = 0
        tn = 0; rc = 0
        for i in range(NQ):
            nd, top = search(Q[i], ef, mode, r, eps)
            tn += nd; rc += len(set(top) & set(gt[i])) / 10
        ex=0
        print(f'{mode:10s} r={r} eps={eps} ef={ef}: dist/q {tn/NQ:.1f} recall {rc/NQ:.4f} exp {NEXP/NQ:.1f} rounds {NROUND/NQ:.2f}', flush=True)
    for spec in sys.argv[2:]:
        m, r, eps, efs = spec.split(':')
        for ef in efs.split(','):
            run(int(ef), m, int(r), float(eps))


if __name__ == '__main__':
    if not os.path.exists(os.path.join(CACHE, 'base.npz')):
        prepare_knn()
    if not os.path.exists(os.path.join(CACHE, 'adj.npy')):
        prepare_graph()
    simulate()

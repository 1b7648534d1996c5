/*
 * index_prune.c
 *	  RobustPrune: the one neighbour-selection rule both graphs use
 *	  (ALGORITHMS.md section 1; HNSW's heuristic is the case alpha = 1).
 *
 * A candidate u is dominated by an already chosen v at level a when
 * d(p,u) > a * d(v,u): v is so much nearer to u than p is that an edge
 * p->v already leads towards u.  Rather than re-testing every pair at each
 * level, each candidate keeps the smallest level at which it stays
 * undominated ("domalpha"): it is skipped at level a iff domalpha > a.
 * Chosen candidates only ever raise domalpha, so one pairwise distance per
 * (chosen, later candidate) pair is enough across all levels, and none for
 * a candidate already dominated at the last level, alpha.
 *
 * Distances may be negative (inner product).  For d(v,u) <= 0 the rule
 * d(p,u) > a * d(v,u) would grow more permissive as a grows; we keep HNSW's
 * plain rule there (dominated iff d(p,u) > d(v,u), at every level).
 */
#include "postgres.h"

#include <math.h>

#include "omen_index.h"

/* Choose up to maxdeg of cands[0..n) (sorted by distance to p) */
int
OmenRobustPrune(const OmenCand *cands, int n, float alpha, int maxdeg,
				OmenPairDistFn pairdist, void *arg, int *out)
{
	float	   *domalpha;
	bool	   *chosen;
	int			nout = 0;
	float		a = 1.0f;

	if (n <= 0 || maxdeg <= 0)
		return 0;

	domalpha = palloc(sizeof(float) * n);
	chosen = palloc0(sizeof(bool) * n);
	for (int i = 0; i < n; i++)
		domalpha[i] = -INFINITY;

	for (;;)
	{
		for (int i = 0; i < n && nout < maxdeg; i++)
		{
			if (chosen[i] || domalpha[i] > a)
				continue;
			chosen[i] = true;
			out[nout++] = i;

			/* what choosing i means for every later candidate */
			for (int j = i + 1; j < n; j++)
			{
				float		dvu;
				float		dpu;
				float		need;

				/*
				 * Past alpha, j can never be chosen (domalpha only grows and
				 * the level stops at alpha): no more distances for it
				 */
				if (chosen[j] || domalpha[j] > alpha)
					continue;
				dvu = pairdist(arg, i, j);
				dpu = cands[j].dist;
				if (dvu > 0.0f)
					need = dpu / dvu;
				else
					need = (dpu > dvu) ? INFINITY : -INFINITY;
				if (need > domalpha[j])
					domalpha[j] = need;
			}
		}
		if (nout >= maxdeg || a >= alpha)
			break;
		a = Min(a * 1.2f, alpha);
	}

	pfree(domalpha);
	pfree(chosen);

	/* chosen in list order per level; report nearest first */
	{
		/* insertion sort of small arrays by candidate index (= distance) */
		for (int i = 1; i < nout; i++)
		{
			int			x = out[i];
			int			k = i - 1;

			while (k >= 0 && out[k] > x)
			{
				out[k + 1] = out[k];
				k--;
			}
			out[k + 1] = x;
		}
	}
	return nout;
}

/*
 * RobustPrune over the candidates' full vectors: sort cands[0..n) nearest
 * first, then choose up to maxdeg of them.  cands[i].aux indexes vecs (the
 * caller's order, which the sort leaves alone); out gets positions in the
 * sorted cands.  Returns how many were chosen.
 */
int
OmenRobustPruneVectors(OmenCand *cands, int n, float **vecs,
					   const OmenDistance *dist, float alpha, int maxdeg,
					   int *out)
{
	float	  **sorted = palloc(sizeof(float *) * Max(n, 1));
	OmenVecPairArg pa;
	int			nout;

	OmenSortCands(cands, n);
	for (int i = 0; i < n; i++)
		sorted[i] = vecs[cands[i].aux];
	pa.dist = dist;
	pa.vecs = sorted;
	nout = OmenRobustPrune(cands, n, alpha, maxdeg, OmenVecPairDist, &pa, out);
	pfree(sorted);
	return nout;
}

/* OmenPairDistFn over an array of full vectors (OmenVecPairArg) */
float
OmenVecPairDist(void *arg, int i, int j)
{
	OmenVecPairArg *pa = (OmenVecPairArg *) arg;

	return OmenDistanceCalc(pa->dist, pa->vecs[i], pa->vecs[j]);
}

/*
 * index_sketch.c
 *	  Edge sketches: enough about an edge c -> v to estimate d(q, v) from
 *	  d(q, c) without reading v, so a search can pass over neighbours that
 *	  cannot improve its results (the idea of FINGER, Chen et al., 2023).
 *
 * For squared L2, d(q,v) = |q-c|^2 + |v-c|^2 - 2 |q-c| |v-c| cos t, where t
 * is the angle between q-c and v-c.  The edge keeps |v-c| and the signs of
 * v-c projected on r directions (one bit each); the node keeps its own
 * projection Bc.  At search time Bq is computed once, the signs of Bq-Bc
 * once per expanded node, and t follows from the number of signs that
 * differ: for directions spread evenly, P(sign differs) = t / pi.  The
 * directions are the first r principal axes of a sample of the indexed
 * vectors (found by subspace iteration), which estimate t much better than
 * random directions do at the same r (ALGORITHMS.md-style simulation in the
 * omen_hnsw README).  For inner product, d(q,v) = d(q,c) - q.(v-c), with
 * the angle between q and v-c, so the same edge data serves.
 *
 * The estimate is a guess, not a bound: a search that skips by it can miss
 * a neighbour it would have kept.  omen.hnsw_sketch_margin sets how much
 * further than the current furthest result an estimate must be to skip.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "omen_index.h"
#include "port/pg_bitutils.h"
#include "simd/omen_simd.h"

/* Orthonormalise the rows of v (r x dim) in place; a dependent row is redrawn */
static void
Orthonormalise(float *v, int r, int dim, pg_prng_state *rng)
{
	for (int j = 0; j < r; j++)
	{
		float	   *vj = v + (Size) j * dim;

		for (int pass = 0; pass < 3; pass++)
		{
			double		norm = 0.0;

			/* twice through, for the rounding of the first */
			for (int twice = 0; twice < 2; twice++)
				for (int k = 0; k < j; k++)
				{
					const float *vk = v + (Size) k * dim;
					omen_kernels->axpy(-omen_kernels->ip(vj, vk, dim), vk, vj,
									   dim);
				}
			for (int i = 0; i < dim; i++)
				norm += (double) vj[i] * vj[i];
			if (norm > 1e-20)
			{
				float		inv = (float) (1.0 / sqrt(norm));

				for (int i = 0; i < dim; i++)
					vj[i] *= inv;
				break;
			}
			/* in the span of the rows before it: start again at random */
			for (int i = 0; i < dim; i++)
				vj[i] = (float) (pg_prng_double(rng) - 0.5);
		}
	}
}

/*
 * The first r principal axes (rows of basis, r x dim, orthonormal) of the
 * n vectors sample[0..n), by a few rounds of subspace iteration from
 * random directions.  Deterministic for the same sample.  With fewer
 * vectors than axes, the axes beyond the sample's span are random.
 */
void
OmenSketchBasis(const float *const *sample, int n, int dim, int r,
				float *basis)
{
	pg_prng_state rng;
	float	   *mean = palloc0(sizeof(float) * dim);
	float	   *w = palloc(sizeof(float) * (Size) n * r);
	float	   *next = palloc(sizeof(float) * (Size) r * dim);
	float	   *wsum = palloc(sizeof(float) * r);

	Assert(r <= dim);
	pg_prng_seed(&rng, UINT64CONST(0x6f6d656e736b6574));	/* "omensket" */
	for (int s = 0; s < n; s++)
		for (int i = 0; i < dim; i++)
			mean[i] += sample[s][i] / n;
	for (Size i = 0; i < (Size) r * dim; i++)
		basis[i] = (float) (pg_prng_double(&rng) - 0.5);
	Orthonormalise(basis, r, dim, &rng);

	for (int iter = 0; iter < 6 && n > 0; iter++)
	{
		/* w = (X - mean) B^T, then next = w^T (X - mean) */
		for (int j = 0; j < r; j++)
		{
			float		mb = omen_kernels->ip(mean, basis + (Size) j * dim, dim);

			for (int s = 0; s < n; s++)
				w[(Size) s * r + j] =
					omen_kernels->ip(sample[s], basis + (Size) j * dim, dim) - mb;
		}
		memset(next, 0, sizeof(float) * (Size) r * dim);
		memset(wsum, 0, sizeof(float) * r);
		for (int s = 0; s < n; s++)
		{
			const float *x = sample[s];

			for (int j = 0; j < r; j++)
			{
				float		c = w[(Size) s * r + j];

				wsum[j] += c;
				omen_kernels->axpy(c, x, next + (Size) j * dim, dim);
			}
		}
		for (int j = 0; j < r; j++)
			omen_kernels->axpy(-wsum[j], mean, next + (Size) j * dim, dim);
		Orthonormalise(next, r, dim, &rng);
		memcpy(basis, next, sizeof(float) * (Size) r * dim);
		CHECK_FOR_INTERRUPTS();
	}
	pfree(mean);
	pfree(w);
	pfree(next);
	pfree(wsum);
}

/* out[0..r) = basis x */
void
OmenSketchProject(const float *basis, int r, int dim, const float *x,
				  float *out)
{
	for (int j = 0; j < r; j++)
		out[j] = omen_kernels->ip(basis + (Size) j * dim, x, dim);
}

/* Bit j set where a[j] > b[j] (j < r <= 64) */
uint64
OmenSketchSigns(const float *a, const float *b, int r)
{
	uint64		bits = 0;

	/* no branch: the signs are as good as random */
	for (int j = 0; j < r; j++)
		bits |= (uint64) (a[j] > b[j]) << j;
	return bits;
}

/* cos(pi * k / r) for k = 0 .. r (computed once per r in a backend) */
void
OmenSketchCosTable(int r, float *table)
{
	static float cached[OMEN_SKETCH_MAX_BITS + 1];
	static int	cached_r = 0;

	Assert(r > 0 && r <= OMEN_SKETCH_MAX_BITS);
	if (r != cached_r)
	{
		for (int k = 0; k <= r; k++)
			cached[k] = (float) cos(M_PI * k / r);
		cached_r = r;
	}
	memcpy(table, cached, sizeof(float) * (r + 1));
}

/*
 * Estimates of d(q, v) for the n edges c -> v (signs[i], norms[i] = |v-c|,
 * NaN when unknown: the estimate is then -inf, never skipped).  For L2
 * (squared, and cosine as L2 between unit vectors): dc = |q-c|^2 and
 * qsigns the signs of Bq - Bc.  For inner product: dc = -q.c, qnorm = |q|
 * and qsigns the signs of Bq (against 0).
 */
void
OmenSketchEstimate(bool ip, float dc, float qnorm, uint64 qsigns,
				   const uint64 *signs, const float *norms, int n,
				   const float *costable, float *est)
{
	float		qc = ip ? qnorm : sqrtf(Max(dc, 0.0f));

	for (int i = 0; i < n; i++)
	{
		float		nv = norms[i];
		float		cos;

		if (isnan(nv))
		{
			est[i] = -INFINITY;
			continue;
		}
		cos = costable[pg_popcount64(qsigns ^ signs[i])];
		if (ip)
			est[i] = dc - qc * nv * cos;
		else
			est[i] = dc + nv * nv - 2.0f * qc * nv * cos;
	}
}

/*
 * diskannquant.c
 *	  omen_diskann: the scalar quantiser that gives each node a code of
 *	  1, 2 or 4 bits per dimension, and the asymmetric distance from a
 *	  full-precision query to a code (ALGORITHMS.md section 4).
 *
 * Training: per dimension, the values of a sample are sorted and 2^bits
 * band centres are fitted by Lloyd's algorithm in one dimension (start at
 * the quantiles, cut points halfway between neighbouring centres, each
 * centre the mean of its band), which minimises the squared error of that
 * coordinate.  Data with many equal values (pixels at 0) would collapse
 * equal-quantile starts into one band; duplicates are spread out first.
 *
 * Distance: the query is never quantised.  For a query q, a table gives
 * for every half byte of a code and each of its 16 values the summed
 * contribution of the dimensions packed in it (for L2,
 * sum (q_j - centre_j[band])^2), so a distance is two lookups per code
 * byte into a table small enough for the L1 cache.
 */
#include "postgres.h"

#include <math.h>

#include "diskann.h"
#include "miscadmin.h"
#include "simd/omen_simd.h"
#include "utils/float.h"

/*
 * Whether codes of this index start with a coarse centre (a DiskannCodeHead):
 * for l2, cosine and inner product, whose distances split into a centre's
 * term plus a residual's.  Not for l1, nor for full-precision nodes.
 */
bool
DiskannCentred(int bits, OmenMetric metric)
{
	return bits != 0 && (metric == OMEN_METRIC_L2 ||
						 metric == OMEN_METRIC_COSINE ||
						 metric == OMEN_METRIC_IP);
}

/* Bytes of code for a vector of dim dimensions */
int
DiskannCodeBytes(int dim, int bits, OmenMetric metric)
{
	if (bits == 0)
		return dim * (int) sizeof(float);
	return (DiskannCentred(bits, metric) ? DISKANN_CODE_HEAD : 0) +
		(dim * bits + 7) / 8;
}

static int
cmp_float(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

/* The band of value v: how many cut points lie below it */
static inline int
BandOf(const float *cuts, int ncuts, float v)
{
	int			s = 0;

	while (s < ncuts && v > cuts[s])
		s++;
	return s;
}

/* First index in sorted[0..n) whose value is > x */
static int
UpperBound(const float *sorted, int n, float x)
{
	int			lo = 0,
				hi = n;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (sorted[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Fit the centres and cuts of one dimension from its sorted sample */
static void
FitDimension(const float *sorted, const double *prefix, int n, int levels,
			 float *cuts, float *centres)
{
	float		lo = sorted[0];
	float		hi = sorted[n - 1];

	/* start at the band quantiles */
	for (int k = 0; k < levels; k++)
	{
		int			i = (int) (((2.0 * k + 1) * n) / (2.0 * levels));

		centres[k] = sorted[Min(i, n - 1)];
	}
	/* spread equal starts between their neighbours and the maximum */
	for (int k = 1; k < levels; k++)
	{
		if (centres[k] <= centres[k - 1])
			centres[k] = centres[k - 1] + (hi - centres[k - 1]) / (levels - k + 1);
	}

	for (int iter = 0; iter < 20 && hi > lo; iter++)
	{
		bool		changed = false;
		int			start = 0;

		for (int k = 0; k < levels - 1; k++)
			cuts[k] = (centres[k] + centres[k + 1]) / 2;
		for (int k = 0; k < levels; k++)
		{
			int			end = (k == levels - 1) ? n : UpperBound(sorted, n, cuts[k]);

			if (end > start)
			{
				float		c = (float) ((prefix[end] - prefix[start]) / (end - start));

				if (c != centres[k])
				{
					centres[k] = c;
					changed = true;
				}
			}
			start = Max(start, end);
		}
		if (!changed)
			break;
	}
	for (int k = 0; k < levels - 1; k++)
		cuts[k] = (centres[k] + centres[k + 1]) / 2;
}

/* Floats a serialised quantiser takes: cut points, band centres, coarse */
Size
DiskannQuantFloats(int dim, int bits, int ncoarse)
{
	int			levels = 1 << bits;

	return (Size) dim * (levels - 1) + (Size) dim * levels +
		(Size) dim * ncoarse;
}

/*
 * Lay a quantiser over data, DiskannQuantFloats(dim, bits, ncoarse) floats
 * in the serialised order.
 */
void
DiskannQuantSetup(DiskannQuant *q, int dim, int bits, OmenMetric metric,
				  int ncoarse, float *data)
{
	Assert(bits == 1 || bits == 2 || bits == 4);
	q->dim = dim;
	q->bits = bits;
	q->levels = 1 << bits;
	q->perbyte = 8 / bits;
	q->metric = metric;
	q->headbytes = DiskannCentred(bits, metric) ? DISKANN_CODE_HEAD : 0;
	q->codebytes = DiskannCodeBytes(dim, bits, metric);
	q->bandbytes = q->codebytes - q->headbytes;
	q->ncoarse = q->headbytes ? ncoarse : 0;
	q->cuts = data;
	q->centres = q->cuts + (Size) dim * (q->levels - 1);
	q->coarse = q->centres + (Size) dim * q->levels;
}

void
DiskannQuantSerialize(const DiskannQuant *q, float *out)
{
	/* DiskannQuantSetup laid the parts out in this order, back to back */
	memcpy(out, q->cuts,
		   sizeof(float) * DiskannQuantFloats(q->dim, q->bits, q->ncoarse));
}

/* The coarse centre nearest to v (squared l2), and that distance */
static int
NearestCoarse(const DiskannQuant *q, const float *v, float *dist)
{
	int			best = 0;
	float		bestd = get_float4_infinity();

	for (int k = 0; k < q->ncoarse; k++)
	{
		float		d = omen_kernels->l2sq(v, q->coarse + (Size) k * q->dim,
										   q->dim);

		if (d < bestd)
		{
			bestd = d;
			best = k;
		}
	}
	if (dist)
		*dist = bestd;
	return best;
}

/*
 * k-means (Lloyd) into q->coarse over nk of the sample rows samp[0..ns),
 * spread evenly, started at rows spread evenly over those.  A centre left
 * empty moves to the row farthest from its own centre.  Then leaves every
 * sample row's nearest centre in assign[].
 */
static void
TrainCoarse(DiskannQuant *q, const float *samp, int ns, int nk, int *assign)
{
	int			k = q->ncoarse;
	int			dim = q->dim;
	double	   *sums = palloc(sizeof(double) * dim * k);
	int		   *counts = palloc(sizeof(int) * k);
	float	   *far = palloc(sizeof(float) * nk);
	int		   *kassign = palloc(sizeof(int) * nk);

#define KROW(i) (samp + (Size) ((int64) (i) * ns / nk) * dim)

	for (int c = 0; c < k; c++)
		memcpy(q->coarse + (Size) c * dim, KROW((int64) c * nk / k),
			   sizeof(float) * dim);

	for (int iter = 0; iter < DISKANN_COARSE_ITERS; iter++)
	{
		for (int i = 0; i < nk; i++)
		{
			if ((i & 1023) == 0)
				CHECK_FOR_INTERRUPTS();
			kassign[i] = NearestCoarse(q, KROW(i), &far[i]);
		}

		memset(sums, 0, sizeof(double) * dim * k);
		memset(counts, 0, sizeof(int) * k);
		for (int i = 0; i < nk; i++)
		{
			const float *v = KROW(i);
			double	   *sum = sums + (Size) kassign[i] * dim;

			for (int j = 0; j < dim; j++)
				sum[j] += v[j];
			counts[kassign[i]]++;
		}
		for (int c = 0; c < k; c++)
		{
			float	   *centre = q->coarse + (Size) c * dim;

			if (counts[c] > 0)
			{
				for (int j = 0; j < dim; j++)
					centre[j] = (float) (sums[(Size) c * dim + j] / counts[c]);
			}
			else
			{
				int			worst = 0;

				for (int i = 1; i < nk; i++)
					if (far[i] > far[worst])
						worst = i;
				memcpy(centre, KROW(worst), sizeof(float) * dim);
				far[worst] = 0;
			}
		}
	}
#undef KROW

	for (int i = 0; i < ns; i++)
	{
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		assign[i] = NearestCoarse(q, samp + (Size) i * dim, NULL);
	}
	pfree(sums);
	pfree(counts);
	pfree(far);
	pfree(kassign);
}

/*
 * Learn a quantiser from vecs[0..n) (n x dim floats), using at most
 * DISKANN_TRAIN_SAMPLE of them spread evenly: the coarse centres first
 * (one per DISKANN_COARSE_POINTS sample rows, up to DISKANN_MAX_COARSE),
 * then the bands of each dimension of the residuals.
 */
DiskannQuant *
DiskannQuantTrain(const float *vecs, int n, int dim, int bits,
				  OmenMetric metric)
{
	DiskannQuant *q = palloc0(sizeof(DiskannQuant));
	int			ns = Min(n, DISKANN_TRAIN_SAMPLE);
	int			ncoarse = 0;
	float	   *samp;
	float	   *col = palloc(sizeof(float) * Max(ns, 1));
	double	   *prefix = palloc(sizeof(double) * (Max(ns, 1) + 1));

	if (DiskannCentred(bits, metric))
		ncoarse = Max(1, Min(DISKANN_MAX_COARSE, ns / DISKANN_COARSE_POINTS));
	DiskannQuantSetup(q, dim, bits, metric, ncoarse,
					  palloc0(sizeof(float) *
							  DiskannQuantFloats(dim, bits, ncoarse)));
	if (ns == 0)
		return q;

	samp = palloc_extended(sizeof(float) * dim * (Size) ns, MCXT_ALLOC_HUGE);
	for (int i = 0; i < ns; i++)
		memcpy(samp + (Size) i * dim, vecs + (Size) ((int64) i * n / ns) * dim,
			   sizeof(float) * dim);

	if (q->ncoarse > 0)
	{
		int		   *assign = palloc(sizeof(int) * ns);

		TrainCoarse(q, samp, ns,
					Min(ns, q->ncoarse * DISKANN_COARSE_POINTS), assign);
		for (int i = 0; i < ns; i++)
		{
			float	   *v = samp + (Size) i * dim;
			const float *c = q->coarse + (Size) assign[i] * dim;

			for (int j = 0; j < dim; j++)
				v[j] -= c[j];
		}
		pfree(assign);
	}

	for (int j = 0; j < dim; j++)
	{
		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < ns; i++)
			col[i] = samp[(Size) i * dim + j];
		qsort(col, ns, sizeof(float), cmp_float);
		prefix[0] = 0;
		for (int i = 0; i < ns; i++)
			prefix[i + 1] = prefix[i] + col[i];
		FitDimension(col, prefix, ns, q->levels,
					 &q->cuts[j * (q->levels - 1)],
					 &q->centres[j * q->levels]);
	}
	pfree(samp);
	pfree(col);
	pfree(prefix);
	return q;
}

/*
 * Write vec's code (q->codebytes bytes): under a head, the nearest coarse
 * centre c and the bands of the residual vec - c, with the head's bias
 * computed from the residual the bands stand for (r):
 * |q - c - r|^2 = |q - c|^2 - 2 q.r + (2 c.r + |r|^2), and
 * -q.(c + r) = -q.c - q.r.
 */
void
DiskannQuantEncode(const DiskannQuant *q, const float *vec, uint8 *code)
{
	int			ncuts = q->levels - 1;
	const float *c = NULL;
	uint8	   *bands = code + q->headbytes;
	double		bias = 0;

	memset(code, 0, q->codebytes);
	if (q->headbytes)
	{
		DiskannCodeHead *h = (DiskannCodeHead *) code;

		h->coarse = (uint16) NearestCoarse(q, vec, NULL);
		c = q->coarse + (Size) h->coarse * q->dim;
	}
	for (int j = 0; j < q->dim; j++)
	{
		float		v = c ? vec[j] - c[j] : vec[j];
		int			s = BandOf(&q->cuts[j * ncuts], ncuts, v);

		bands[j / q->perbyte] |= (uint8) (s << ((j % q->perbyte) * q->bits));
		if (c && q->metric != OMEN_METRIC_IP)
		{
			float		r = q->centres[j * q->levels + s];

			bias += 2.0 * c[j] * r + (double) r * r;
		}
	}
	if (q->headbytes)
		((DiskannCodeHead *) code)->bias = (float4) bias;
}

/* The vector a code stands for (its coarse centre plus its bands' centres) */
void
DiskannQuantDecode(const DiskannQuant *q, const uint8 *code, float *out)
{
	uint8		mask = (uint8) (q->levels - 1);
	const uint8 *bands = code + q->headbytes;
	const float *c = NULL;

	if (q->headbytes)
		c = q->coarse + (Size) ((const DiskannCodeHead *) code)->coarse * q->dim;
	for (int j = 0; j < q->dim; j++)
	{
		int			s = (bands[j / q->perbyte] >> ((j % q->perbyte) * q->bits)) & mask;

		out[j] = q->centres[j * q->levels + s] + (c ? c[j] : 0);
	}
}

/* Build the per-query table of partial distances, 16 per half byte */
void
DiskannLutInit(DiskannLut *lut, const DiskannQuant *q, OmenMetric metric,
			   const float *query)
{
	int			levels = q->levels;
	int			pernibble = 4 / q->bits;	/* dimensions per half byte */
	int			nnibbles = q->bandbytes * 2;
	float		t[16];

	lut->headbytes = q->headbytes;
	lut->codebytes = q->bandbytes;
	lut->table = palloc(sizeof(float) * 16 * nnibbles);
	lut->coarse = NULL;
	lut->quant = q;
	lut->query = query;
	lut->ncoarse = q->ncoarse;
	if (q->headbytes)
	{
		/* the coarse centres' terms, computed as the search meets them */
		lut->coarse = palloc(sizeof(float) * Max(q->ncoarse, 1));
		for (int k = 0; k < q->ncoarse; k++)
			lut->coarse[k] = get_float4_nan();
	}

	for (int k = 0; k < nnibbles; k++)
	{
		float	   *tab = &lut->table[k * 16];
		int			size = 1;

		tab[0] = 0;
		for (int i = 0; i < pernibble; i++)
		{
			int			j = k * pernibble + i;

			/* this dimension's contribution for each band */
			for (int s = 0; s < levels; s++)
			{
				float		c,
							d;

				if (j >= q->dim)
				{
					t[s] = 0;
					continue;
				}
				c = q->centres[j * levels + s];
				if (q->headbytes)
				{
					/* a residual band: -2 q.r, or -q.r */
					t[s] = (metric == OMEN_METRIC_IP ? -1.0f : -2.0f) *
						query[j] * c;
					continue;
				}
				switch (metric)
				{
					case OMEN_METRIC_IP:
						t[s] = -query[j] * c;
						break;
					case OMEN_METRIC_L1:
						t[s] = fabsf(query[j] - c);
						break;
					default:
						d = query[j] - c;
						t[s] = d * d;
						break;
				}
			}
			/* tab[v + s * size] = tab[v] + t[s], s = 0 last (in place) */
			for (int v = 0; v < size; v++)
				for (int s = levels - 1; s >= 0; s--)
					tab[v + s * size] = tab[v] + t[s];
			size *= levels;
		}
		Assert(size == 16);
	}
}

/* Coarse centre k's term in the distance of the table's query: |q - c|^2, or -q.c */
float
DiskannLutCoarse(DiskannLut *lut, int k)
{
	const DiskannQuant *q = lut->quant;
	const float *c;

	if (k >= q->ncoarse)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("omen_diskann node code names coarse centre %d of %d",
						k, q->ncoarse),
				 errhint("Please REINDEX the index.")));
	c = q->coarse + (Size) k * q->dim;
	lut->coarse[k] = q->metric == OMEN_METRIC_IP ?
		-omen_kernels->ip(lut->query, c, q->dim) :
		omen_kernels->l2sq(lut->query, c, q->dim);
	return lut->coarse[k];
}

void
DiskannLutFree(DiskannLut *lut)
{
	if (lut->table)
		pfree(lut->table);
	if (lut->coarse)
		pfree(lut->coarse);
	lut->table = NULL;
	lut->coarse = NULL;
}

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

/* Bytes of code for a vector of dim dimensions */
int
DiskannCodeBytes(int dim, int bits)
{
	if (bits == 0)
		return dim * (int) sizeof(float);
	return (dim * bits + 7) / 8;
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

/*
 * Learn a quantiser from vecs[0..n) (n x dim floats), using at most
 * DISKANN_TRAIN_SAMPLE of them spread evenly.
 */
DiskannQuant *
DiskannQuantTrain(const float *vecs, int n, int dim, int bits)
{
	DiskannQuant *q = palloc0(sizeof(DiskannQuant));
	int			ns = Min(n, DISKANN_TRAIN_SAMPLE);
	float	   *col = palloc(sizeof(float) * Max(ns, 1));
	double	   *prefix = palloc(sizeof(double) * (Max(ns, 1) + 1));

	Assert(bits == 1 || bits == 2 || bits == 4);
	q->dim = dim;
	q->bits = bits;
	q->levels = 1 << bits;
	q->perbyte = 8 / bits;
	q->codebytes = DiskannCodeBytes(dim, bits);
	q->cuts = palloc0(sizeof(float) * dim * (q->levels - 1));
	q->centres = palloc0(sizeof(float) * dim * q->levels);

	if (ns == 0)
		return q;

	for (int j = 0; j < dim; j++)
	{
		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < ns; i++)
		{
			int64		row = (int64) i * n / ns;

			col[i] = vecs[row * dim + j];
		}
		qsort(col, ns, sizeof(float), cmp_float);
		prefix[0] = 0;
		for (int i = 0; i < ns; i++)
			prefix[i + 1] = prefix[i] + col[i];
		FitDimension(col, prefix, ns, q->levels,
					 &q->cuts[j * (q->levels - 1)],
					 &q->centres[j * q->levels]);
	}
	pfree(col);
	pfree(prefix);
	return q;
}

/* Write vec's code (q->codebytes bytes) */
void
DiskannQuantEncode(const DiskannQuant *q, const float *vec, uint8 *code)
{
	int			ncuts = q->levels - 1;

	memset(code, 0, q->codebytes);
	for (int j = 0; j < q->dim; j++)
	{
		int			s = BandOf(&q->cuts[j * ncuts], ncuts, vec[j]);

		code[j / q->perbyte] |= (uint8) (s << ((j % q->perbyte) * q->bits));
	}
}

/* The vector a code stands for (each coordinate its band's centre) */
void
DiskannQuantDecode(const DiskannQuant *q, const uint8 *code, float *out)
{
	uint8		mask = (uint8) (q->levels - 1);

	for (int j = 0; j < q->dim; j++)
	{
		int			s = (code[j / q->perbyte] >> ((j % q->perbyte) * q->bits)) & mask;

		out[j] = q->centres[j * q->levels + s];
	}
}

/* Build the per-query table of partial distances, 16 per half byte */
void
DiskannLutInit(DiskannLut *lut, const DiskannQuant *q, OmenMetric metric,
			   const float *query)
{
	int			levels = q->levels;
	int			pernibble = 4 / q->bits;	/* dimensions per half byte */
	int			nnibbles = q->codebytes * 2;
	float		t[16];

	lut->codebytes = q->codebytes;
	lut->table = palloc(sizeof(float) * 16 * nnibbles);

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

void
DiskannLutFree(DiskannLut *lut)
{
	if (lut->table)
		pfree(lut->table);
	lut->table = NULL;
}

/* Floats a serialised quantiser takes: cut points then centres */
Size
DiskannQuantFloats(int dim, int bits)
{
	int			levels = 1 << bits;

	return (Size) dim * (levels - 1) + (Size) dim * levels;
}

void
DiskannQuantSerialize(const DiskannQuant *q, float *out)
{
	Size		ncuts = (Size) q->dim * (q->levels - 1);

	memcpy(out, q->cuts, sizeof(float) * ncuts);
	memcpy(out + ncuts, q->centres, sizeof(float) * q->dim * q->levels);
}

DiskannQuant *
DiskannQuantDeserialize(const float *in, int dim, int bits)
{
	DiskannQuant *q = palloc0(sizeof(DiskannQuant));
	Size		ncuts;

	q->dim = dim;
	q->bits = bits;
	q->levels = 1 << bits;
	q->perbyte = 8 / bits;
	q->codebytes = DiskannCodeBytes(dim, bits);
	ncuts = (Size) dim * (q->levels - 1);
	q->cuts = palloc(sizeof(float) * ncuts);
	q->centres = palloc(sizeof(float) * dim * q->levels);
	memcpy(q->cuts, in, sizeof(float) * ncuts);
	memcpy(q->centres, in + ncuts, sizeof(float) * dim * q->levels);
	return q;
}

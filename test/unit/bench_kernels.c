/*
 * bench_kernels.c
 *	  Nanoseconds per distance for each kernel at each SIMD level this CPU
 *	  supports, at dimensions 128, 784 and 1536.
 *
 * Built standalone by test/unit/Makefile; run it with "make -C test/unit
 * bench".  Each measurement computes the distance from one query to every
 * vector of a set sized to stay in the L2 cache (256 KiB), repeated so that a
 * run covers about 16M floats, through the kernel table's function pointer as
 * the extension calls it.  It reports the median of several runs, timed with
 * clock_gettime(CLOCK_MONOTONIC).  The results are summed into a volatile so
 * the compiler cannot drop the work.
 */
#include "simd/omen_simd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WORKING_SET_BYTES (256 * 1024)
#define FLOATS_PER_RUN (16 * 1024 * 1024)
#define NRUNS 7

enum
{
	K_L2SQ,
	K_IP,
	K_L1,
	K_COSINE,
	NKERNELS
};

static const char *const kernel_names[NKERNELS] = {"l2sq", "ip", "l1", "cosine_parts"};
static const int dims[] = {128, 784, 1536};

#define NDIMS ((int) (sizeof(dims) / sizeof(dims[0])))

static volatile float sink;

/* xorshift64: deterministic inputs */
static uint64_t rng_state = 0x243f6a8885a308d3ULL;

/* Uniform float in [-1, 1) */
static float
rng_float(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float) ((double) (rng_state >> 11) * 0x1.0p-52 - 1.0);
}

/* Seconds from CLOCK_MONOTONIC */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* One timed run: reps passes of query against all nvec vectors; returns ns per distance */
static double
time_run(const OmenKernels *k, int kernel, const float *query,
		 const float *vecs, int nvec, int dim, int reps)
{
	float		acc = 0.0f;
	double		start = now();
	double		elapsed;

	for (int r = 0; r < reps; r++)
	{
		for (int j = 0; j < nvec; j++)
		{
			const float *v = vecs + (size_t) j * dim;

			switch (kernel)
			{
				case K_L2SQ:
					acc += k->l2sq(query, v, dim);
					break;
				case K_IP:
					acc += k->ip(query, v, dim);
					break;
				case K_L1:
					acc += k->l1(query, v, dim);
					break;
				default:
					{
						float		ab,
									aa,
									bb;

						k->cosine_parts(query, v, dim, &ab, &aa, &bb);
						acc += ab + aa + bb;
					}
					break;
			}
		}
	}
	elapsed = now() - start;
	sink += acc;
	return elapsed * 1e9 / ((double) reps * nvec);
}

/* Order doubles, for qsort */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/* Median ns per distance over NRUNS runs, after one warm-up run */
static double
measure(const OmenKernels *k, int kernel, const float *query,
		const float *vecs, int nvec, int dim)
{
	double		runs[NRUNS];
	int			reps = FLOATS_PER_RUN / (nvec * dim);

	if (reps < 1)
		reps = 1;
	time_run(k, kernel, query, vecs, nvec, dim, reps);
	for (int i = 0; i < NRUNS; i++)
		runs[i] = time_run(k, kernel, query, vecs, nvec, dim, reps);
	qsort(runs, NRUNS, sizeof(double), cmp_double);
	return runs[NRUNS / 2];
}

/* ns per code of lut16 over 16 codes, median of NRUNS runs of calls calls */
static double
measure_lut16(const OmenKernels *k, const float *lut, const uint8_t *codes,
			  int nbytes, int calls)
{
	double		runs[NRUNS];
	float		out[16];

	for (int r = 0; r < NRUNS; r++)
	{
		struct timespec t0,
					t1;
		float		acc = 0.0f;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int c = 0; c < calls; c++)
		{
			k->lut16(lut, codes, nbytes, nbytes, out);
			acc += out[c & 15];
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		sink = acc;
		runs[r] = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) /
			((double) calls * 16);
	}
	qsort(runs, NRUNS, sizeof(double), cmp_double);
	return runs[NRUNS / 2];
}

/* Print level l's time; the first level is scalar, the last the best */
static void
print_level(int l, double ns, double *scalar_ns, double *best_ns)
{
	if (l == 0)
		*scalar_ns = ns;
	*best_ns = ns;
	printf(" %9.1f", ns);
	fflush(stdout);
}

int
main(void)
{
	const OmenKernels *levels[OMEN_SIMD_NLEVELS];
	int			nlevels = 0;

	for (int level = 0; level < OMEN_SIMD_NLEVELS; level++)
	{
		const OmenKernels *k = OmenKernelsFor((OmenSimdLevel) level);

		if (k != NULL)
			levels[nlevels++] = k;
	}

	printf("omen distance kernels: ns per distance, median of %d runs\n", NRUNS);
	printf("(one query against the vectors of a %d KiB working set, repeated; "
		   "best level here: %s)\n\n",
		   WORKING_SET_BYTES / 1024, OmenKernelsFor(OmenBestSimdLevel())->name);
	printf("%5s  %-13s %7s", "dim", "kernel", "vectors");
	for (int l = 0; l < nlevels; l++)
		printf(" %9s", levels[l]->name);
	printf("  %s\n", nlevels > 1 ? "best vs scalar" : "");

	for (int d = 0; d < NDIMS; d++)
	{
		int			dim = dims[d];
		int			nvec = WORKING_SET_BYTES / (dim * (int) sizeof(float));
		float	   *query = malloc(sizeof(float) * dim);
		float	   *vecs = malloc(sizeof(float) * (size_t) dim * nvec);

		if (query == NULL || vecs == NULL)
		{
			fprintf(stderr, "out of memory\n");
			return 1;
		}
		for (int i = 0; i < dim; i++)
			query[i] = rng_float();
		for (size_t i = 0; i < (size_t) dim * nvec; i++)
			vecs[i] = rng_float();

		for (int kernel = 0; kernel < NKERNELS; kernel++)
		{
			double		scalar_ns = 0.0;
			double		best_ns = 0.0;

			printf("%5d  %-13s %7d", dim, kernel_names[kernel], nvec);
			for (int l = 0; l < nlevels; l++)
			{
				print_level(l, measure(levels[l], kernel, query, vecs, nvec, dim),
							&scalar_ns, &best_ns);
			}
			if (nlevels > 1)
				printf("  %13.1fx", scalar_ns / best_ns);
			printf("\n");
		}
		free(query);
		free(vecs);
	}

	/*
	 * lut16: omen_diskann's table distance, per code (16 codes per call),
	 * for 2-bit codes of 128, 784 and 1536 dimensions (dim / 4 bytes)
	 */
	printf("\n%5s  %-13s %7s", "dim", "kernel", "codes");
	for (int l = 0; l < nlevels; l++)
		printf(" %9s", levels[l]->name);
	printf("  %s\n", nlevels > 1 ? "best vs scalar" : "");
	for (int d = 0; d < NDIMS; d++)
	{
		int			nbytes = dims[d] / 4;
		float	   *lut = malloc(sizeof(float) * 32 * nbytes);
		uint8_t    *codes = malloc(16 * (size_t) nbytes);
		double		scalar_ns = 0.0;
		double		best_ns = 0.0;
		int			calls = FLOATS_PER_RUN / (16 * nbytes) + 1;

		for (int i = 0; i < 32 * nbytes; i++)
			lut[i] = rng_float();
		for (int i = 0; i < 16 * nbytes; i++)
			codes[i] = (uint8_t) (rng_float() * 255.0f);
		printf("%5d  %-13s %7d", dims[d], "lut16 (2-bit)", 16);
		for (int l = 0; l < nlevels; l++)
			print_level(l, measure_lut16(levels[l], lut, codes, nbytes, calls),
						&scalar_ns, &best_ns);
		if (nlevels > 1)
			printf("  %13.1fx", scalar_ns / best_ns);
		printf("\n");
		free(lut);
		free(codes);
	}
	return 0;
}

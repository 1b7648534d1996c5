/*
 * test_kernels.c
 *	  TAP unit tests for the distance kernels in src/simd/.
 *
 * Built standalone (no PostgreSQL) by test/unit/Makefile; run it with
 * "make -C test/unit check", which uses prove.  For every SIMD level this CPU
 * supports it checks every kernel against a reference computed in double:
 *
 *   - exact small cases, and integer inputs of many lengths whose sums are
 *     exact in float in any order, so the result must match bit for bit;
 *   - random inputs (uniform in [-10, 10], and of mixed magnitude) on all
 *     lengths 1..70, the primes below 2000, other random lengths up to 2000,
 *     lengths around the vector widths and 16000, at misaligned addresses,
 *     within the error bound derived below;
 *   - that no kernel reads outside [a, a + n) or [b, b + n): the vectors are
 *     put against PROT_NONE guard pages, and a fault is reported as a
 *     failure;
 *
 * and it checks the CPU detection: OmenKernelsFor() is NULL exactly for the
 * levels the CPU lacks, agrees with the compiler's own CPU detection, and
 * OmenBestSimdLevel() is the highest supported level.
 *
 * The error bound.  Every kernel computes S = sum t_i, with terms
 * t_i = (a_i - b_i)^2, a_i * b_i, |a_i - b_i|, a_i^2 or b_i^2, in float
 * (unit roundoff u = 2^-24), adding the terms in some order: sequentially
 * (scalar), or in several vector lanes and accumulators combined at the end
 * (SIMD).  Whatever the order, it is a binary tree of additions whose leaves
 * are the n terms (plus exact zeros from masked tails, and additions with an
 * exact zero operand are exact), so each term passes through at most n - 1
 * rounded additions.  Forming a term takes at most 3 roundings: for l2sq,
 * fl(a - b) has relative error delta and squaring it gives (1 + delta)^2,
 * times the rounding of the product (which an FMA merges with the addition
 * and so removes).  By the standard analysis (Higham, "Accuracy and Stability
 * of Numerical Algorithms", 2nd ed., sections 3.1 and 4.2) the computed
 * result is sum t_i (1 + theta_i) with |theta_i| <= gamma(n + 2), where
 * gamma(k) = k u / (1 - k u), hence
 *
 *     |computed - exact| <= gamma_float(n + 2) * sum |t_i|.
 *
 * The reference is computed the same way in double (u = 2^-53), so it is off
 * by at most gamma_double(n + 2) * sum |t_i|, and sum |t_i| itself (computed
 * in double) by a relative gamma_double(n).  The test therefore accepts
 *
 *     |got - ref| <= (gamma_float(n + 2) + gamma_double(2n + 4)) * sum |t_i|
 *                    + n * 2^-148
 *
 * where the last term allows for underflow (each operation can lose at most
 * 2^-150 absolutely to gradual underflow; the inputs here never underflow).
 * This is a worst-case bound that holds for summation in any order, not a
 * guess fitted to the observed errors: it is about 6e-8 * (n + 2) relative to
 * sum |t_i|, i.e. 4.3e-6 at n = 70 and 9.5e-4 at n = 16000, while a dropped,
 * doubled or misplaced element is caught exactly by the integer-input test.
 */
#include "simd/omen_half.h"
#include "simd/omen_simd.h"

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_LEN 16000
#define MAX_OFFSET 16			/* misalign inputs by 0..15 floats */
#define MAX_REPORTS 5			/* diagnostic lines per failing test */

enum
{
	K_L2SQ,
	K_IP,
	K_L1,
	K_COSINE,
	NKERNELS
};

static const char *const kernel_names[NKERNELS] = {"l2sq", "ip", "l1", "cosine_parts"};
static const char *const level_names[OMEN_SIMD_NLEVELS] = {"scalar", "avx2", "avx512"};

static int	test_number = 0;
static int	failures = 0;

/* The lengths every random-input test runs over */
static int	lengths[4096];
static int	nlengths = 0;

/* Report one TAP test result */
static void
ok(int passed, const char *fmt,...)
{
	va_list		args;

	test_number++;
	if (!passed)
		failures++;
	printf("%sok %d - ", passed ? "" : "not ", test_number);
	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
	printf("\n");
	fflush(stdout);
}

/* splitmix64: a small seeded PRNG, so every run sees the same inputs */
static uint64_t rng_state = 0x6f6d656e2d73696dULL;

/* Next 64 random bits */
static uint64_t
rng_next(void)
{
	uint64_t	z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1) */
static double
rng_unit(void)
{
	return (double) (rng_next() >> 11) * 0x1.0p-53;
}

/* Uniform integer in [lo, hi] */
static int
rng_int(int lo, int hi)
{
	return lo + (int) (rng_next() % (uint64_t) (hi - lo + 1));
}

/* Input generators: fill x[0..n) */
typedef void (*FillFn) (float *x, int n);

/* Uniform in [-10, 10] */
static void
fill_uniform(float *x, int n)
{
	for (int i = 0; i < n; i++)
		x[i] = (float) (-10.0 + 20.0 * rng_unit());
}

/* Random sign times 10^e, e uniform in [-6, 6]; one in 16 is exactly 0 */
static void
fill_mixed(float *x, int n)
{
	for (int i = 0; i < n; i++)
	{
		double		v = pow(10.0, -6.0 + 12.0 * rng_unit());

		if (rng_next() % 16 == 0)
			v = 0.0;
		x[i] = (float) ((rng_next() & 1) ? -v : v);
	}
}

/* Integers in [-3, 3]: every partial sum is an integer below 2^24 */
static void
fill_small_int(float *x, int n)
{
	for (int i = 0; i < n; i++)
		x[i] = (float) rng_int(-3, 3);
}

/*
 * The reference: the scalar algorithm in double.  out[] gets the result(s)
 * (three for cosine_parts: ab, aa, bb) and scale[] the matching sum |t_i|.
 */
static void
reference(int kernel, const float *a, const float *b, int n,
		  double out[3], double scale[3])
{
	double		s[3] = {0, 0, 0};
	double		m[3] = {0, 0, 0};

	for (int i = 0; i < n; i++)
	{
		double		x = a[i];
		double		y = b[i];
		double		d = x - y;

		switch (kernel)
		{
			case K_L2SQ:
				s[0] += d * d;
				m[0] += d * d;
				break;
			case K_IP:
				s[0] += x * y;
				m[0] += fabs(x * y);
				break;
			case K_L1:
				s[0] += fabs(d);
				m[0] += fabs(d);
				break;
			case K_COSINE:
				s[0] += x * y;
				m[0] += fabs(x * y);
				s[1] += x * x;
				m[1] += x * x;
				s[2] += y * y;
				m[2] += y * y;
				break;
		}
	}
	memcpy(out, s, sizeof(s));
	memcpy(scale, m, sizeof(m));
}

/* Run one kernel of a level; returns the number of outputs (1 or 3) */
static int
run_kernel(const OmenKernels *k, int kernel, const float *a, const float *b,
		   int n, float out[3])
{
	switch (kernel)
	{
		case K_L2SQ:
			out[0] = k->l2sq(a, b, n);
			return 1;
		case K_IP:
			out[0] = k->ip(a, b, n);
			return 1;
		case K_L1:
			out[0] = k->l1(a, b, n);
			return 1;
		default:
			k->cosine_parts(a, b, n, &out[0], &out[1], &out[2]);
			return 3;
	}
}

/* gamma(k) = k u / (1 - k u) for unit roundoff u */
static double
gamma_k(double k, double u)
{
	return k * u / (1.0 - k * u);
}

/* The tolerance derived in the header comment */
static double
tolerance(int n, double scale)
{
	return (gamma_k(n + 2, 0x1.0p-24) + gamma_k(2.0 * n + 4, 0x1.0p-53)) * scale
		+ n * 0x1.0p-148;
}

/* Compare a level's kernel with the reference on one input; 1 if within tolerance */
static double max_ratio;		/* largest |error| / tolerance seen */

static int
check_one(const OmenKernels *k, int kernel, const float *a, const float *b,
		  int n, int exact, int *reports, const char *what)
{
	double		ref[3];
	double		scale[3];
	float		got[3];
	int			nout = run_kernel(k, kernel, a, b, n, got);
	int			good = 1;

	reference(kernel, a, b, n, ref, scale);
	for (int j = 0; j < nout; j++)
	{
		double		tol = exact ? 0.0 : tolerance(n, scale[j]);
		double		err = fabs((double) got[j] - ref[j]);

		if (tol > 0 && err / tol > max_ratio)
			max_ratio = err / tol;

		if (!(err <= tol))		/* also catches NaN */
		{
			good = 0;
			if ((*reports)++ < MAX_REPORTS)
				printf("# %s %s %s n=%d output %d: got %.9g, reference %.17g, "
					   "|error| %.3g > tolerance %.3g\n",
					   k->name, kernel_names[kernel], what, n, j,
					   (double) got[j], ref[j], err, tol);
		}
	}
	return good;
}

/* Build the list of lengths the random-input tests use */
static void
make_lengths(void)
{
	static const int extra[] = {
		71, 72, 95, 96, 97, 127, 128, 129, 255, 256, 257, 300, 384, 511, 512,
		513, 768, 783, 784, 785, 1000, 1023, 1024, 1025, 1535, 1536, 1537,
		1999, 2000, MAX_LEN - 1, MAX_LEN
	};
	int			n;

	for (n = 1; n <= 70; n++)
		lengths[nlengths++] = n;
	/* the primes below 2000 (those up to 70 are already in) */
	for (n = 71; n < 2000; n++)
	{
		int			prime = 1;

		for (int d = 2; d * d <= n; d++)
			if (n % d == 0)
			{
				prime = 0;
				break;
			}
		if (prime)
			lengths[nlengths++] = n;
	}
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		lengths[nlengths++] = extra[i];
	/* and 200 random lengths up to 2000, odd and even */
	for (int i = 0; i < 200; i++)
		lengths[nlengths++] = rng_int(1, 2000);
}

/* Input buffers, with room to misalign */
static float buf_a[MAX_LEN + MAX_OFFSET];
static float buf_b[MAX_LEN + MAX_OFFSET];

/* One kernel of one level against the reference over all lengths */
static void
test_random(const OmenKernels *k, int kernel, FillFn fill, const char *what)
{
	int			good = 1;
	int			reports = 0;

	max_ratio = 0.0;
	for (int i = 0; i < nlengths; i++)
	{
		int			n = lengths[i];
		float	   *a = buf_a + rng_int(0, MAX_OFFSET - 1);
		float	   *b = buf_b + rng_int(0, MAX_OFFSET - 1);

		fill(a, n);
		fill(b, n);
		good &= check_one(k, kernel, a, b, n, 0, &reports, what);
	}
	printf("# %s %s %s: largest |error| / tolerance = %.3g\n",
		   k->name, kernel_names[kernel], what, max_ratio);
	ok(good, "%s: %s matches the double reference on %s inputs, %d lengths 1..%d, "
	   "|got - ref| <= gamma_float(n+2) * sum|t_i| (+ reference slack)",
	   k->name, kernel_names[kernel], what, nlengths, MAX_LEN);
}

/* Integer inputs: every order of summation is exact, so results must be equal */
static void
test_exact_integers(const OmenKernels *k)
{
	int			good = 1;
	int			reports = 0;

	for (int kernel = 0; kernel < NKERNELS; kernel++)
		for (int i = 0; i < nlengths; i++)
		{
			int			n = lengths[i];
			float	   *a = buf_a + rng_int(0, MAX_OFFSET - 1);
			float	   *b = buf_b + rng_int(0, MAX_OFFSET - 1);

			fill_small_int(a, n);
			fill_small_int(b, n);
			good &= check_one(k, kernel, a, b, n, 1, &reports, "integer");
		}
	ok(good, "%s: all kernels exact on integer inputs in [-3,3], %d lengths 1..%d",
	   k->name, nlengths, MAX_LEN);
}

/* Hand-checked small cases */
static void
test_small_cases(const OmenKernels *k)
{
	const float a3[] = {1, 2, 3};
	const float b3[] = {4, 5, 6};
	const float a1[] = {3};
	const float b1[] = {-1};
	float		ab,
				aa,
				bb;
	int			good = 1;

	good &= k->l2sq(a3, b3, 3) == 27.0f;
	good &= k->ip(a3, b3, 3) == 32.0f;
	good &= k->l1(a3, b3, 3) == 9.0f;
	k->cosine_parts(a3, b3, 3, &ab, &aa, &bb);
	good &= ab == 32.0f && aa == 14.0f && bb == 77.0f;
	ok(good, "%s: [1,2,3] vs [4,5,6]: l2sq 27, ip 32, l1 9, cosine_parts (32, 14, 77)",
	   k->name);

	good = 1;
	good &= k->l2sq(a1, b1, 1) == 16.0f;
	good &= k->ip(a1, b1, 1) == -3.0f;
	good &= k->l1(a1, b1, 1) == 4.0f;
	k->cosine_parts(a1, b1, 1, &ab, &aa, &bb);
	good &= ab == -3.0f && aa == 9.0f && bb == 1.0f;
	ok(good, "%s: [3] vs [-1]: l2sq 16, ip -3, l1 4, cosine_parts (-3, 9, 1)", k->name);
}

/* Guard-page test plumbing: a fault jumps back here */
static sigjmp_buf fault_jump;

/* SIGSEGV/SIGBUS handler: the kernel read outside its input */
static void
on_fault(int signo)
{
	(void) signo;
	siglongjmp(fault_jump, 1);
}

/*
 * Map a region of 'pages' readable pages between two PROT_NONE pages;
 * returns the first readable byte.
 */
static char *
map_guarded(size_t pages, size_t pagesize)
{
	char	   *p = mmap(NULL, (pages + 2) * pagesize, PROT_READ | PROT_WRITE,
						 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
	{
		perror("mmap");
		exit(2);
	}
	if (mprotect(p, pagesize, PROT_NONE) != 0 ||
		mprotect(p + (pages + 1) * pagesize, pagesize, PROT_NONE) != 0)
	{
		perror("mprotect");
		exit(2);
	}
	return p + pagesize;
}

/* Send SIGSEGV and SIGBUS to on_fault, keeping the old handlers */
static void
arm_faults(struct sigaction *old_segv, struct sigaction *old_bus)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, old_segv);
	sigaction(SIGBUS, &sa, old_bus);
}

/* Put the handlers arm_faults replaced back */
static void
disarm_faults(const struct sigaction *old_segv, const struct sigaction *old_bus)
{
	sigaction(SIGSEGV, old_segv, NULL);
	sigaction(SIGBUS, old_bus, NULL);
}

/* Run one kernel with the fault handler armed; 0 if it faulted */
static int
run_guarded(const OmenKernels *k, int kernel, const float *a, const float *b,
			int n)
{
	float		out[3];

	if (sigsetjmp(fault_jump, 1) != 0)
		return 0;
	run_kernel(k, kernel, a, b, n, out);
	return 1;
}

/* No kernel may read before a/b or past a + n / b + n */
static void
test_guard_pages(const OmenKernels *k)
{
	static char *region1 = NULL;
	static char *region2 = NULL;
	static size_t region_bytes;
	struct sigaction old_segv,
				old_bus;
	int			good = 1;

	if (region1 == NULL)
	{
		size_t		pagesize = (size_t) sysconf(_SC_PAGESIZE);
		size_t		pages = (MAX_LEN * sizeof(float) + pagesize - 1) / pagesize;

		region_bytes = pages * pagesize;
		region1 = map_guarded(pages, pagesize);
		region2 = map_guarded(pages, pagesize);
	}

	arm_faults(&old_segv, &old_bus);

	for (int layout = 0; layout < 2; layout++)
		for (int kernel = 0; kernel < NKERNELS; kernel++)
			for (int i = 0; i < nlengths; i++)
			{
				int			n = lengths[i];
				float	   *start1 = (float *) region1;
				float	   *end2 = (float *) (region2 + region_bytes) - n;
				const float *a = layout == 0 ? start1 : end2;
				const float *b = layout == 0 ? end2 : start1;

				fill_uniform((float *) a, n);
				fill_uniform((float *) b, n);
				if (!run_guarded(k, kernel, a, b, n))
				{
					if (good)
						printf("# %s %s n=%d: memory fault: read outside the input\n",
							   k->name, kernel_names[kernel], n);
					good = 0;
				}
			}

	disarm_faults(&old_segv, &old_bus);
	ok(good, "%s: no kernel reads before or past its inputs (guard pages), %d lengths",
	   k->name, nlengths);
}

/* The compiler's own CPU detection, to cross-check simd.c */
static int
compiler_says_supported(OmenSimdLevel level)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	switch (level)
	{
		case OMEN_SIMD_SCALAR:
			return 1;
		case OMEN_SIMD_AVX2:
			return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
		case OMEN_SIMD_AVX512:
			return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
				__builtin_cpu_supports("avx512f");
		default:
			return 0;
	}
#else
	return level == OMEN_SIMD_SCALAR;
#endif
}

/* lut16 reads nothing past the last code: it ends at a guard page */
static void
test_lut16_guard(const OmenKernels *k)
{
	static uint8_t *region = NULL;
	static size_t region_bytes;
	struct sigaction old_segv,
				old_bus;
	int			good = 1;
	float	   *lut = malloc(sizeof(float) * 32 * 200);

	if (region == NULL)
	{
		size_t		pagesize = (size_t) sysconf(_SC_PAGESIZE);
		size_t		pages = (16 * 200 + pagesize - 1) / pagesize;

		region_bytes = pages * pagesize;
		region = (uint8_t *) map_guarded(pages, pagesize);
	}
	for (int i = 0; i < 32 * 200; i++)
		lut[i] = 1.0f;

	arm_faults(&old_segv, &old_bus);
	for (int nbytes = 1; nbytes <= 200 && good; nbytes++)
	{
		uint8_t    *codes = region + region_bytes - 16 * nbytes;
		float		out[16];

		memset(codes, 0x37, 16 * nbytes);
		if (sigsetjmp(fault_jump, 1) != 0)
		{
			printf("# %s lut16 nbytes=%d: memory fault: read past the codes\n",
				   k->name, nbytes);
			good = 0;
			continue;
		}
		k->lut16(lut, codes, nbytes, nbytes, out);
		for (int i = 0; i < 16; i++)
			if (out[i] != 2.0f * nbytes)
				good = 0;
	}
	disarm_faults(&old_segv, &old_bus);
	free(lut);
	ok(good, "%s: lut16 reads nothing past the last code (guard page), 1..200 bytes",
	   k->name);
}

/*
 * lut16 (omen_diskann's table distances of 16 codes) against a double
 * reference, for code lengths 1..70 bytes and a few long ones: random
 * tables in [-10, 10], random code bytes, codes nbytes + (length % 5)
 * bytes apart.  The sum of 2 * nbytes table entries is bounded like the
 * distances: |got - ref| <= gamma(2n + 2) * sum |entries looked up|.  Also
 * one exact case: integer tables give integer sums.  And no byte outside
 * the codes is read: the 16th code ends at a guard page, and the bytes
 * between codes do not change the result.
 */
static void
test_lut16(const OmenKernels *k)
{
	static const int longer[] = {97, 98, 196, 392, 1000, 4000};
	int			worst_nbytes = 0;
	double		worst = 0.0;
	int			good = 1;
	int			exact = 1;

	for (int t = 0; t < 70 + (int) (sizeof(longer) / sizeof(longer[0])); t++)
	{
		int			nbytes = t < 70 ? t + 1 : longer[t - 70];
		int			stride = nbytes + t % 5;
		float	   *lut = malloc(sizeof(float) * 32 * nbytes);
		uint8_t    *codes = malloc(16 * stride);
		float		out[16];

		for (int i = 0; i < 32 * nbytes; i++)
			lut[i] = (float) (rng_unit() * 20.0 - 10.0);
		for (int i = 0; i < 16 * stride; i++)
			codes[i] = (uint8_t) rng_next();
		k->lut16(lut, codes, stride, nbytes, out);
		for (int i = 0; i < 16; i++)
		{
			double		ref = 0.0,
						mag = 0.0,
						tol,
						err;

			for (int b = 0; b < nbytes; b++)
			{
				uint8_t		c = codes[i * stride + b];
				double		x = lut[(2 * b) * 16 + (c & 15)];
				double		y = lut[(2 * b + 1) * 16 + (c >> 4)];

				ref += x + y;
				mag += fabs(x) + fabs(y);
			}
			tol = gamma_k(2.0 * nbytes + 2, 0x1.0p-24) * mag;
			err = fabs((double) out[i] - ref);
			if (err > tol)
				good = 0;
			if (tol > 0 && err / tol > worst)
			{
				worst = err / tol;
				worst_nbytes = nbytes;
			}
		}

		/* integers: exact */
		for (int i = 0; i < 32 * nbytes; i++)
			lut[i] = (float) rng_int(-50, 50);
		k->lut16(lut, codes, stride, nbytes, out);
		for (int i = 0; i < 16; i++)
		{
			long		ref = 0;

			for (int b = 0; b < nbytes; b++)
			{
				uint8_t		c = codes[i * stride + b];

				ref += (long) lut[(2 * b) * 16 + (c & 15)] +
					(long) lut[(2 * b + 1) * 16 + (c >> 4)];
			}
			if ((double) out[i] != (double) ref)
				exact = 0;
		}
		/* the bytes between codes are not read: change them */
		{
			float		again[16];

			for (int i = 0; i < 16; i++)
				for (int b = nbytes; b < stride; b++)
					codes[i * stride + b] ^= 0x5A;
			k->lut16(lut, codes, stride, nbytes, again);
			if (memcmp(out, again, sizeof(out)) != 0)
				exact = 0;
		}
		free(lut);
		free(codes);
	}
	ok(good, "%s: lut16 on random tables, 1..70 and up to 4000 code bytes, within the bound (worst %.3f of it, %d bytes)",
	   k->name, worst, worst_nbytes);
	ok(exact, "%s: lut16 on integer tables is exact, and ignores the bytes between codes", k->name);
	test_lut16_guard(k);
}

/* Tests of the detection and dispatch API */
/*
 * dot_u8 (omen_hnsw's sq8 traversal codes) against a double reference:
 * random queries in [-10, 10] and random code bytes, every test length,
 * within the same bound as the float kernels (the code bytes convert to
 * float exactly).  Integer queries give exact sums.  And it reads no byte
 * past the last code: the codes end at a guard page, lengths 1..200.
 */
static void
test_dot_u8(const OmenKernels *k)
{
	static uint8_t *region = NULL;
	static size_t region_bytes;
	float	   *q = malloc(sizeof(float) * MAX_LEN);
	uint8_t    *c = malloc(MAX_LEN);
	int			good = 1;
	int			exact = 1;
	int			guard = 1;
	double		worst = 0.0;
	struct sigaction old_segv,
				old_bus;

	for (int li = 0; li < nlengths; li++)
	{
		int			n = lengths[li];
		double		ref = 0.0,
					scale = 0.0,
					err;
		float		got;

		for (int i = 0; i < n; i++)
		{
			q[i] = (float) (rng_unit() * 20.0 - 10.0);
			c[i] = (uint8_t) rng_int(0, 255);
			ref += (double) q[i] * c[i];
			scale += fabs((double) q[i] * c[i]);
		}
		got = k->dot_u8(q, c, n);
		err = fabs((double) got - ref);
		if (err > tolerance(n, scale))
		{
			if (good)
				printf("# %s dot_u8 n=%d: got %.9g, reference %.9g\n",
					   k->name, n, got, ref);
			good = 0;
		}
		if (tolerance(n, scale) > 0 && err / tolerance(n, scale) > worst)
			worst = err / tolerance(n, scale);

		/* small integers: every partial sum is exact in float */
		{
			double		iref = 0.0;

			for (int i = 0; i < n; i++)
			{
				q[i] = (float) rng_int(-3, 3);
				iref += (double) q[i] * c[i];
			}
			if ((double) k->dot_u8(q, c, n) != iref)
				exact = 0;
		}
	}
	ok(good, "%s: dot_u8 on random queries and codes, every test length, within the bound (worst %.3f of it)",
	   k->name, worst);
	ok(exact, "%s: dot_u8 with small integer queries is exact", k->name);

	if (region == NULL)
	{
		size_t		pagesize = (size_t) sysconf(_SC_PAGESIZE);

		region_bytes = pagesize;
		region = (uint8_t *) map_guarded(1, pagesize);
	}
	for (int i = 0; i < 200; i++)
		q[i] = 1.0f;
	arm_faults(&old_segv, &old_bus);
	for (int n = 1; n <= 200 && guard; n++)
	{
		uint8_t    *codes = region + region_bytes - n;

		memset(codes, 2, n);
		if (sigsetjmp(fault_jump, 1) != 0)
		{
			printf("# %s dot_u8 n=%d: memory fault: read past the codes\n",
				   k->name, n);
			guard = 0;
			continue;
		}
		if (k->dot_u8(q, codes, n) != 2.0f * n)
			guard = 0;
	}
	disarm_faults(&old_segv, &old_bus);
	ok(guard, "%s: dot_u8 reads nothing past the last code (guard page), 1..200 codes",
	   k->name);
	free(q);
	free(c);
}

/*
 * axpy (the sketch basis fit) against a double reference, every test
 * length, each element within a few roundings of its own terms; integer
 * inputs give exact results.  And it writes nothing past y[n - 1] and reads
 * nothing past x[n - 1]: x ends at a guard page, a sentinel follows y.
 */
static void
test_axpy(const OmenKernels *k)
{
	static float *region = NULL;
	static size_t region_floats;
	float	   *x = malloc(sizeof(float) * MAX_LEN);
	float	   *y = malloc(sizeof(float) * (MAX_LEN + 1));
	double	   *ref = malloc(sizeof(double) * MAX_LEN);
	int			good = 1;
	int			exact = 1;
	int			guard = 1;
	struct sigaction old_segv,
				old_bus;

	for (int li = 0; li < nlengths && good; li++)
	{
		int			n = lengths[li];
		float		a = (float) (rng_unit() * 4.0 - 2.0);

		for (int i = 0; i < n; i++)
		{
			x[i] = (float) (rng_unit() * 20.0 - 10.0);
			y[i] = (float) (rng_unit() * 20.0 - 10.0);
			ref[i] = (double) y[i] + (double) a * x[i];
		}
		y[n] = 12345.0f;
		k->axpy(a, x, y, n);
		for (int i = 0; i < n; i++)
		{
			double		bound = 4.0 * FLT_EPSILON *
				(fabs((double) y[i]) + fabs((double) a * x[i]) + fabs(ref[i]));

			if (fabs((double) y[i] - ref[i]) > bound)
			{
				if (good)
					printf("# %s axpy n=%d i=%d: got %.9g, reference %.9g\n",
						   k->name, n, i, y[i], ref[i]);
				good = 0;
				break;
			}
		}
		if (y[n] != 12345.0f)
		{
			printf("# %s axpy n=%d: wrote past y[n - 1]\n", k->name, n);
			good = 0;
		}

		for (int i = 0; i < n; i++)
		{
			x[i] = (float) rng_int(-100, 100);
			y[i] = (float) rng_int(-100, 100);
			ref[i] = (double) y[i] - 3.0 * x[i];
		}
		k->axpy(-3.0f, x, y, n);
		for (int i = 0; i < n; i++)
			if ((double) y[i] != ref[i])
				exact = 0;
	}
	ok(good, "%s: axpy on random inputs, every test length, within a few roundings, nothing written past the end",
	   k->name);
	ok(exact, "%s: axpy on small integers is exact", k->name);

	if (region == NULL)
	{
		size_t		pagesize = (size_t) sysconf(_SC_PAGESIZE);

		region_floats = pagesize / sizeof(float);
		region = (float *) map_guarded(1, pagesize);
	}
	arm_faults(&old_segv, &old_bus);
	for (int n = 1; n <= 200 && guard; n++)
	{
		float	   *xs = region + region_floats - n;

		for (int i = 0; i < n; i++)
		{
			xs[i] = 1.0f;
			y[i] = 1.0f;
		}
		if (sigsetjmp(fault_jump, 1) != 0)
		{
			printf("# %s axpy n=%d: memory fault: read past x\n", k->name, n);
			guard = 0;
			continue;
		}
		k->axpy(2.0f, xs, y, n);
		for (int i = 0; i < n; i++)
			if (y[i] != 3.0f)
				guard = 0;
	}
	disarm_faults(&old_segv, &old_bus);
	ok(guard, "%s: axpy reads nothing past x[n - 1] (guard page), 1..200 elements",
	   k->name);
	free(x);
	free(y);
	free(ref);
}

/* A half's value, decoded independently of half.c (finite halves only) */
static float
half_value(uint16_t h)
{
	int			e = (h >> 10) & 0x1F;
	int			m = h & 0x3FF;
	double		v = e == 0 ? ldexp((double) m, -24) :
		ldexp((double) (m | 0x400), e - 25);

	return (float) ((h & 0x8000) ? -v : v);
}

/*
 * Half conversions at one level (omen_kernels chooses half.c's path):
 * every finite half decodes exactly; encoding rounds to nearest even at
 * every boundary between two neighbouring halves (the midpoint goes to the
 * even one, the floats either side of it to their own side), saturates at
 * +-65504 beyond the range and keeps the sign of zero.  Values go through
 * OmenFloatToHalf in runs of 13, so the vector loop and the tail both see
 * them.
 */
static void
test_half(const OmenKernels *k)
{
	const OmenKernels *saved = omen_kernels;
	int			decode = 1;
	int			encode = 1;
	float		in[13];
	uint16_t	want[13];
	uint16_t	got[13];
	int			nin = 0;
	int			bad = 0;

	omen_kernels = k;
	for (uint32_t h = 0; h < 0x10000 && decode; h += 13)
	{
		uint16_t	hs[13];
		float		fs[13];
		int			n = 0;

		for (uint32_t j = h; j < h + 13 && j < 0x10000; j++)
			if (((j >> 10) & 0x1F) != 0x1F)
				hs[n++] = (uint16_t) j;
		OmenHalfToFloat(hs, fs, n);
		for (int i = 0; i < n; i++)
			if (memcmp(&fs[i], &(float) {half_value(hs[i])}, sizeof(float)) != 0)
			{
				printf("# %s: half 0x%04x decodes to %.9g\n", k->name, hs[i], fs[i]);
				decode = 0;
				break;
			}
	}

#define ENCODE_CASE(x, h) \
	do { \
		in[nin] = (x); want[nin] = (h); \
		if (++nin == 13) { \
			OmenFloatToHalf(in, got, nin); \
			for (int i_ = 0; i_ < nin; i_++) \
				if (got[i_] != want[i_] && bad++ < 5) \
				{ \
					printf("# %s: %.9g encodes to 0x%04x, want 0x%04x\n", \
						   k->name, in[i_], got[i_], want[i_]); \
					encode = 0; \
				} \
			nin = 0; \
		} \
	} while (0)

	for (uint32_t h = 0; h < 0x7BFF; h++)
	{
		float		lo = half_value((uint16_t) h);
		float		hi = half_value((uint16_t) (h + 1));
		float		mid = (lo + hi) / 2;	/* exact: halves have 11 bits */
		uint16_t	even = (h & 1) ? (uint16_t) (h + 1) : (uint16_t) h;

		for (int sign = 0; sign < 2; sign++)
		{
			float		s = sign ? -1.0f : 1.0f;
			uint16_t	sb = sign ? 0x8000 : 0;

			ENCODE_CASE(s * lo, (uint16_t) (sb | h));
			ENCODE_CASE(s * mid, (uint16_t) (sb | even));
			ENCODE_CASE(s * nextafterf(mid, 0.0f), (uint16_t) (sb | h));
			ENCODE_CASE(s * nextafterf(mid, INFINITY), (uint16_t) (sb | (h + 1)));
		}
	}
	ENCODE_CASE(65504.0f, 0x7BFF);
	ENCODE_CASE(65519.0f, 0x7BFF);
	ENCODE_CASE(65520.0f, 0x7BFF);
	ENCODE_CASE(1.0e6f, 0x7BFF);
	ENCODE_CASE(-1.0e6f, 0xFBFF);
	ENCODE_CASE(3.0e38f, 0x7BFF);
	ENCODE_CASE(-0.0f, 0x8000);
	ENCODE_CASE(1.0e-30f, 0x0000);
	ENCODE_CASE(-1.0e-30f, 0x8000);
	while (nin != 0)
		ENCODE_CASE(0.0f, 0x0000);
#undef ENCODE_CASE

	omen_kernels = saved;
	ok(decode, "%s: every finite half decodes exactly", k->name);
	ok(encode, "%s: floats encode to the nearest half (ties to even) at every boundary, saturating at 65504",
	   k->name);
}

/*
 * l2sq_half and ip_half: bit for bit the float kernels' results on the
 * halves decoded, for random vectors at every test length; and they read
 * no half past the last: b ends at a guard page, lengths 1..200.
 */
static void
test_half_kernels(const OmenKernels *k)
{
	static uint16_t *region = NULL;
	static size_t region_halves;
	float	   *a = malloc(sizeof(float) * MAX_LEN);
	float	   *bf = malloc(sizeof(float) * MAX_LEN);
	uint16_t   *bh = malloc(sizeof(uint16_t) * MAX_LEN);
	int			same = 1;
	int			guard = 1;
	struct sigaction old_segv,
				old_bus;

	for (int li = 0; li < nlengths && same; li++)
	{
		int			n = lengths[li];

		for (int i = 0; i < n; i++)
		{
			a[i] = (float) (rng_unit() * 20.0 - 10.0);
			bf[i] = (float) (rng_unit() * 20.0 - 10.0);
		}
		OmenFloatToHalf(bf, bh, n);
		for (int i = 0; i < n; i++)
			bf[i] = half_value(bh[i]);
		if (k->l2sq_half(a, bh, n) != k->l2sq(a, bf, n) ||
			k->ip_half(a, bh, n) != k->ip(a, bf, n))
		{
			printf("# %s n=%d: l2sq_half %.9g / %.9g, ip_half %.9g / %.9g\n",
				   k->name, n, k->l2sq_half(a, bh, n), k->l2sq(a, bf, n),
				   k->ip_half(a, bh, n), k->ip(a, bf, n));
			same = 0;
		}
	}
	ok(same, "%s: l2sq_half and ip_half equal l2sq and ip on the decoded halves, every test length",
	   k->name);

	if (region == NULL)
	{
		size_t		pagesize = (size_t) sysconf(_SC_PAGESIZE);

		region_halves = pagesize / sizeof(uint16_t);
		region = (uint16_t *) map_guarded(1, pagesize);
	}
	for (int i = 0; i < 200; i++)
		a[i] = 3.0f;
	arm_faults(&old_segv, &old_bus);
	for (int n = 1; n <= 200 && guard; n++)
	{
		uint16_t   *b = region + region_halves - n;

		for (int i = 0; i < n; i++)
			b[i] = 0x3C00;		/* 1.0 */
		if (sigsetjmp(fault_jump, 1) != 0)
		{
			printf("# %s half kernels n=%d: memory fault: read past b\n",
				   k->name, n);
			guard = 0;
			continue;
		}
		if (k->l2sq_half(a, b, n) != 4.0f * n || k->ip_half(a, b, n) != 3.0f * n)
			guard = 0;
	}
	disarm_faults(&old_segv, &old_bus);
	ok(guard, "%s: l2sq_half and ip_half read nothing past the last half (guard page), 1..200",
	   k->name);
	free(a);
	free(bf);
	free(bh);
}

static void
test_detection(void)
{
	OmenSimdLevel best = OmenBestSimdLevel();
	int			highest = OMEN_SIMD_SCALAR;

	for (int level = 0; level < OMEN_SIMD_NLEVELS; level++)
	{
		const OmenKernels *k = OmenKernelsFor((OmenSimdLevel) level);
		int			has = OmenCpuSupports((OmenSimdLevel) level);

		if (has)
		{
			highest = level;
			ok(k != NULL && k->level == (OmenSimdLevel) level &&
			   strcmp(k->name, level_names[level]) == 0 &&
			   k->l2sq && k->ip && k->l1 && k->cosine_parts && k->lut16 &&
			   k->dot_u8 && k->axpy && k->l2sq_half && k->ip_half,
			   "%s: CPU supports it, OmenKernelsFor returns its complete kernel set",
			   level_names[level]);
		}
		else
			ok(k == NULL, "%s: CPU lacks it, OmenKernelsFor returns NULL",
			   level_names[level]);
		ok(has == compiler_says_supported((OmenSimdLevel) level),
		   "%s: OmenCpuSupports (%s) agrees with __builtin_cpu_supports",
		   level_names[level], has ? "yes" : "no");
	}
	ok(OmenCpuSupports(OMEN_SIMD_SCALAR), "scalar is always supported");
	ok(OmenKernelsFor((OmenSimdLevel) -1) == NULL &&
	   OmenKernelsFor(OMEN_SIMD_NLEVELS) == NULL &&
	   !OmenCpuSupports(OMEN_SIMD_NLEVELS),
	   "out-of-range levels are unsupported and have no kernels");
	ok(best == (OmenSimdLevel) highest,
	   "OmenBestSimdLevel is %s, the highest supported level", level_names[best]);
	OmenSimdInit();
	ok(omen_kernels != NULL && omen_kernels == OmenKernelsFor(best),
	   "after OmenSimdInit omen_kernels is the %s set", level_names[best]);
}

int
main(void)
{
	int			nsupported = 0;
	int			plan;

	make_lengths();
	for (int level = 0; level < OMEN_SIMD_NLEVELS; level++)
		nsupported += OmenCpuSupports((OmenSimdLevel) level);

	/*
	 * detection: 2 per level + 4; per level: 2 small + 1 integer + 2 * 4
	 * random + 1 guard + 3 lut16 + 3 dot_u8 + 3 axpy + 2 half + 2 half
	 * kernels
	 */
	plan = 2 * OMEN_SIMD_NLEVELS + 4 + nsupported * (2 + 1 + 2 * NKERNELS + 1 + 3 + 3 + 3 + 2 + 2);
	printf("1..%d\n", plan);
	printf("# %d lengths per random test; best level here: %s\n",
		   nlengths, level_names[OmenBestSimdLevel()]);

	test_detection();
	for (int level = 0; level < OMEN_SIMD_NLEVELS; level++)
	{
		const OmenKernels *k = OmenKernelsFor((OmenSimdLevel) level);

		if (k == NULL)
			continue;
		test_small_cases(k);
		test_exact_integers(k);
		for (int kernel = 0; kernel < NKERNELS; kernel++)
			test_random(k, kernel, fill_uniform, "uniform [-10,10]");
		for (int kernel = 0; kernel < NKERNELS; kernel++)
			test_random(k, kernel, fill_mixed, "mixed-magnitude (1e-6..1e6)");
		test_guard_pages(k);
		test_lut16(k);
		test_dot_u8(k);
		test_axpy(k);
		test_half(k);
		test_half_kernels(k);
	}

	if (test_number != plan)
	{
		printf("# planned %d tests but ran %d\n", plan, test_number);
		return 1;
	}
	return failures == 0 ? 0 : 1;
}

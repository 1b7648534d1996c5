/*
 * kernels_scalar.c
 *	  Portable distance kernels: plain C loops, one float accumulator each.
 *
 * These run on every CPU and are the reference the SIMD levels are tested
 * against (test/unit/test_kernels.c).  They accumulate in float, as the SIMD
 * kernels do, and are written plainly on purpose: no unrolling, no tricks.
 * No PostgreSQL header is included here (see omen_simd.h).
 */
#include "simd/omen_half.h"
#include "simd/omen_simd.h"

#include <stdbool.h>
#include <stdint.h>

#include <math.h>
#include <stddef.h>

/* Declared here rather than in omen_simd.h: only simd.c uses this table */
extern const OmenKernels omen_kernels_scalar;

/* b[i], b being float or (half) IEEE half */
static inline float
load_b(const void *b, int i, bool half)
{
	return half ? OmenHalfToFloat1(((const uint16_t *) b)[i]) :
		((const float *) b)[i];
}

/* Squared Euclidean distance: sum (a_i - b_i)^2 */
static inline float
l2sq_body(const float *a, const void *b, int n, bool half)
{
	float		sum = 0.0f;
	int			i;

	for (i = 0; i < n; i++)
	{
		float		d = a[i] - load_b(b, i, half);

		sum += d * d;
	}
	return sum;
}

static float
l2sq_scalar(const float *a, const float *b, int n)
{
	return l2sq_body(a, b, n, false);
}

static float
l2sq_half_scalar(const float *a, const uint16_t *b, int n)
{
	return l2sq_body(a, b, n, true);
}

/* Inner product: sum a_i * b_i */
static inline float
ip_body(const float *a, const void *b, int n, bool half)
{
	float		sum = 0.0f;
	int			i;

	for (i = 0; i < n; i++)
		sum += a[i] * load_b(b, i, half);
	return sum;
}

static float
ip_scalar(const float *a, const float *b, int n)
{
	return ip_body(a, b, n, false);
}

static float
ip_half_scalar(const float *a, const uint16_t *b, int n)
{
	return ip_body(a, b, n, true);
}

/* sum q_i * c_i over 8-bit codes */
static float
dot_u8_scalar(const float *q, const uint8_t *c, int n)
{
	float		sum = 0.0f;
	int			i;

	for (i = 0; i < n; i++)
		sum += q[i] * (float) c[i];
	return sum;
}

/* y_i += a * x_i */
static void
axpy_scalar(float a, const float *x, float *y, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		y[i] += a * x[i];
}

/* Manhattan distance: sum |a_i - b_i| */
static float
l1_scalar(const float *a, const float *b, int n)
{
	float		sum = 0.0f;
	int			i;

	for (i = 0; i < n; i++)
	{
		/* fabsf clears the sign bit; a compare would branch unpredictably */
		sum += fabsf(a[i] - b[i]);
	}
	return sum;
}

/* The three dot products cosine distance needs, in one pass */
static void
cosine_parts_scalar(const float *a, const float *b, int n,
					float *ab, float *aa, float *bb)
{
	float		sab = 0.0f;
	float		saa = 0.0f;
	float		sbb = 0.0f;
	int			i;

	for (i = 0; i < n; i++)
	{
		sab += a[i] * b[i];
		saa += a[i] * a[i];
		sbb += b[i] * b[i];
	}
	*ab = sab;
	*aa = saa;
	*bb = sbb;
}

/* Table distances of 16 codes (see OmenKernels.lut16) */
static void
lut16_scalar(const float *lut, const uint8_t *codes, int stride, int nbytes,
			 float *out)
{
	for (int i = 0; i < 16; i++)
	{
		const uint8_t *code = codes + (size_t) i * stride;
		float		s0 = 0.0f;
		float		s1 = 0.0f;

		for (int b = 0; b < nbytes; b++)
		{
			uint8_t		c = code[b];

			s0 += lut[(2 * b) * 16 + (c & 15)];
			s1 += lut[(2 * b + 1) * 16 + (c >> 4)];
		}
		out[i] = s0 + s1;
	}
}

const OmenKernels omen_kernels_scalar = {
	.level = OMEN_SIMD_SCALAR,
	.name = "scalar",
	.l2sq = l2sq_scalar,
	.ip = ip_scalar,
	.l1 = l1_scalar,
	.cosine_parts = cosine_parts_scalar,
	.lut16 = lut16_scalar,
	.dot_u8 = dot_u8_scalar,
	.axpy = axpy_scalar,
	.l2sq_half = l2sq_half_scalar,
	.ip_half = ip_half_scalar,
};

/*
 * half.c
 *	  float <-> IEEE 754 binary16 conversions.
 *
 * Decoding is on the hot path of searches over half-stored vectors, so it
 * uses the F16C instructions (8 values per instruction) whenever the
 * kernels in use are a SIMD level, every one of which includes F16C
 * (simd.c); the portable versions are the reference.  Encoding (every stored vector, and at a build every vector of
 * the graph in its serial write phase) uses them too.
 * Values beyond the half range saturate to +-65504 rather than becoming
 * infinities, which no distance could order.
 */
#include <string.h>

#include "simd/omen_half.h"
#include "simd/omen_simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Portable: one float to half, round to nearest even, saturating */
static inline uint16_t
FloatToHalfScalar(float f)
{
	uint32_t	bits;
	uint32_t	sign;
	int32_t		exp;
	uint32_t	mant;

	memcpy(&bits, &f, sizeof(bits));
	sign = (bits >> 16) & 0x8000;
	exp = (int32_t) ((bits >> 23) & 0xFF) - 127 + 15;
	mant = bits & 0x7FFFFF;

	if (((bits >> 23) & 0xFF) == 0xFF)	/* inf or NaN: not in vectors */
		return (uint16_t) (sign | 0x7BFF);
	if (exp >= 0x1F)
		return (uint16_t) (sign | 0x7BFF);	/* saturate at 65504 */
	if (exp <= 0)
	{
		/* subnormal half or zero */
		uint32_t	m;
		uint32_t	shift;
		uint32_t	half;
		uint32_t	rest;

		if (exp < -10)
			return (uint16_t) sign;
		m = mant | 0x800000;
		shift = (uint32_t) (14 - exp);
		half = m >> shift;
		rest = m & ((1u << shift) - 1);
		if (rest > (1u << (shift - 1)) ||
			(rest == (1u << (shift - 1)) && (half & 1)))
			half++;
		return (uint16_t) (sign | half);
	}
	else
	{
		uint32_t	h = sign | ((uint32_t) exp << 10) | (mant >> 13);
		uint32_t	rest = mant & 0x1FFF;

		if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
			h++;				/* may carry into the exponent: still right */
		if ((h & 0x7FFF) >= 0x7C00)
			h = sign | 0x7BFF;
		return (uint16_t) h;
	}
}

#if defined(__x86_64__)
__attribute__((target("avx,f16c")))
static void
HalfToFloatF16c(const uint16_t *in, float *out, int n)
{
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m128i		h = _mm_loadu_si128((const __m128i *) (in + i));

		_mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
	}
	for (; i < n; i++)
		out[i] = OmenHalfToFloat1(in[i]);
}

/*
 * The same rounding as FloatToHalfScalar, 8 values per instruction: round
 * to nearest even, with values beyond the half range first clamped to
 * +-65504, where the scalar version saturates (F16C would give infinity)
 */
__attribute__((target("avx,f16c")))
static void
FloatToHalfF16c(const float *in, uint16_t *out, int n)
{
	const __m256 hi = _mm256_set1_ps(65504.0f);
	const __m256 lo = _mm256_set1_ps(-65504.0f);
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		x = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(in + i), lo),
									  hi);

		_mm_storeu_si128((__m128i *) (out + i),
						 _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT |
										 _MM_FROUND_NO_EXC));
	}
	for (; i < n; i++)
		out[i] = FloatToHalfScalar(in[i]);
}
#endif

/* Convert n halves to floats */
void
OmenHalfToFloat(const uint16_t *in, float *out, int n)
{
#if defined(__x86_64__)
	/* every SIMD level includes F16C (simd.c) */
	if (omen_kernels->level != OMEN_SIMD_SCALAR)
	{
		HalfToFloatF16c(in, out, n);
		return;
	}
#endif
	for (int i = 0; i < n; i++)
		out[i] = OmenHalfToFloat1(in[i]);
}

/* Convert n floats to halves */
void
OmenFloatToHalf(const float *in, uint16_t *out, int n)
{
#if defined(__x86_64__)
	/* every SIMD level includes F16C (simd.c) */
	if (omen_kernels->level != OMEN_SIMD_SCALAR)
	{
		FloatToHalfF16c(in, out, n);
		return;
	}
#endif
	for (int i = 0; i < n; i++)
		out[i] = FloatToHalfScalar(in[i]);
}

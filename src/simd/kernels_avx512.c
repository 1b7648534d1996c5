/*
 * kernels_avx512.c
 *	  Distance kernels for x86-64 CPUs with AVX-512 F.
 *
 * Each function carries __attribute__((target("avx512f"))) instead of the
 * whole file being built with -mavx512f, so the module still loads on CPUs
 * without AVX-512; simd.c only hands these out after CPUID (and XGETBV, for
 * the OS's ZMM and opmask state) says they can run.  Only AVX-512 F
 * instructions are used (no DQ/BW/VL), so any AVX-512 CPU runs them.
 *
 * The main loops keep four accumulators of 16 floats (four independent FMA
 * chains); a single-vector loop handles what is left in steps of 16 and a
 * masked load (_mm512_maskz_loadu_ps, which zeroes the masked-out lanes and
 * never faults on them) handles the last 1..15 elements.  Zero lanes add
 * nothing to any of the sums.  Loads are unaligned: vectors come from
 * varlenas that are only 4-byte aligned.
 *
 * No PostgreSQL header is included here (see omen_simd.h).
 */
#include "simd/omen_simd.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define OMEN_TARGET_AVX512 __attribute__((target("avx512f")))

/* Declared here rather than in omen_simd.h: only simd.c uses this table */
extern const OmenKernels omen_kernels_avx512;

/* The mask that selects the first k (1..15) lanes */
static inline __mmask16
tail_mask(int k)
{
	return (__mmask16) ((1u << k) - 1);
}

/* 16 halves as floats (VCVTPH2PS is AVX-512 F) */
OMEN_TARGET_AVX512 static inline __m512
load_half16(const uint16_t *p)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) p));
}

/*
 * b[i .. i + 16) as floats, b being float or (half) IEEE half.  With
 * always_inline and a constant half the kernels below compile to two
 * versions, float and half, that do the same arithmetic step for step.
 */
#define OMEN_INLINE_AVX512 OMEN_TARGET_AVX512 static inline __attribute__((always_inline))

OMEN_INLINE_AVX512 __m512
load_b(const void *b, int i, bool half)
{
	if (half)
		return load_half16((const uint16_t *) b + i);
	return _mm512_loadu_ps((const float *) b + i);
}

/*
 * b[i .. i + k) for k in 1..15, the other lanes 0, reading nothing beyond
 * (for halves through a copy: a masked load of 16-bit lanes would need
 * AVX-512 BW)
 */
OMEN_INLINE_AVX512 __m512
load_b_tail(const void *b, int i, int k, bool half)
{
	if (half)
	{
		uint16_t	t[16] = {0};

		memcpy(t, (const uint16_t *) b + i, sizeof(uint16_t) * k);
		return load_half16(t);
	}
	return _mm512_maskz_loadu_ps(tail_mask(k), (const float *) b + i);
}

/* Squared Euclidean distance: sum (a_i - b_i)^2 */
OMEN_INLINE_AVX512 float
l2sq_body(const float *a, const void *b, int n, bool half)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	__m512		s2 = _mm512_setzero_ps();
	__m512		s3 = _mm512_setzero_ps();
	__m512		d0,
				d1,
				d2,
				d3;
	int			i = 0;

	for (; i + 64 <= n; i += 64)
	{
		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), load_b(b, i, half));
		d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), load_b(b, i + 16, half));
		d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), load_b(b, i + 32, half));
		d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), load_b(b, i + 48, half));
		s0 = _mm512_fmadd_ps(d0, d0, s0);
		s1 = _mm512_fmadd_ps(d1, d1, s1);
		s2 = _mm512_fmadd_ps(d2, d2, s2);
		s3 = _mm512_fmadd_ps(d3, d3, s3);
	}
	for (; i + 16 <= n; i += 16)
	{
		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), load_b(b, i, half));
		s0 = _mm512_fmadd_ps(d0, d0, s0);
	}
	if (i < n)
	{
		d1 = _mm512_sub_ps(_mm512_maskz_loadu_ps(tail_mask(n - i), a + i),
						   load_b_tail(b, i, n - i, half));
		s1 = _mm512_fmadd_ps(d1, d1, s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1),
											  _mm512_add_ps(s2, s3)));
}

OMEN_TARGET_AVX512 static float
l2sq_avx512(const float *a, const float *b, int n)
{
	return l2sq_body(a, b, n, false);
}

OMEN_TARGET_AVX512 static float
l2sq_half_avx512(const float *a, const uint16_t *b, int n)
{
	return l2sq_body(a, b, n, true);
}

/* Inner product: sum a_i * b_i */
OMEN_INLINE_AVX512 float
ip_body(const float *a, const void *b, int n, bool half)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	__m512		s2 = _mm512_setzero_ps();
	__m512		s3 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 64 <= n; i += 64)
	{
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), load_b(b, i, half), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), load_b(b, i + 16, half), s1);
		s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), load_b(b, i + 32, half), s2);
		s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), load_b(b, i + 48, half), s3);
	}
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), load_b(b, i, half), s0);
	if (i < n)
		s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail_mask(n - i), a + i),
							 load_b_tail(b, i, n - i, half), s1);
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1),
											  _mm512_add_ps(s2, s3)));
}

OMEN_TARGET_AVX512 static float
ip_avx512(const float *a, const float *b, int n)
{
	return ip_body(a, b, n, false);
}

OMEN_TARGET_AVX512 static float
ip_half_avx512(const float *a, const uint16_t *b, int n)
{
	return ip_body(a, b, n, true);
}

/*
 * sum q_i * c_i over 8-bit codes: 16 codes widened to floats per step.
 * Byte-masked loads need AVX-512 BW, so the last n % 16 go one by one.
 */
OMEN_TARGET_AVX512 static float
dot_u8_avx512(const float *q, const uint8_t *c, int n)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;
	float		sum;

	for (; i + 32 <= n; i += 32)
	{
		__m128i		b0 = _mm_loadu_si128((const __m128i *) (c + i));
		__m128i		b1 = _mm_loadu_si128((const __m128i *) (c + i + 16));

		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i),
							 _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b0)), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16),
							 _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b1)), s1);
	}
	for (; i + 16 <= n; i += 16)
	{
		__m128i		b = _mm_loadu_si128((const __m128i *) (c + i));

		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i),
							 _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)), s0);
	}
	sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
	for (; i < n; i++)
		sum += q[i] * (float) c[i];
	return sum;
}

/* Manhattan distance: sum |a_i - b_i| */
OMEN_TARGET_AVX512 static float
l1_avx512(const float *a, const float *b, int n)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	__m512		s2 = _mm512_setzero_ps();
	__m512		s3 = _mm512_setzero_ps();
	__m512		d0,
				d1,
				d2,
				d3;
	int			i = 0;

	/* _mm512_abs_ps is AVX-512 F (an integer AND); _mm512_and_ps needs DQ */
	for (; i + 64 <= n; i += 64)
	{
		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
		d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
		d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
		s0 = _mm512_add_ps(s0, _mm512_abs_ps(d0));
		s1 = _mm512_add_ps(s1, _mm512_abs_ps(d1));
		s2 = _mm512_add_ps(s2, _mm512_abs_ps(d2));
		s3 = _mm512_add_ps(s3, _mm512_abs_ps(d3));
	}
	for (; i + 16 <= n; i += 16)
	{
		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		s0 = _mm512_add_ps(s0, _mm512_abs_ps(d0));
	}
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);

		d1 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
						   _mm512_maskz_loadu_ps(m, b + i));
		s1 = _mm512_add_ps(s1, _mm512_abs_ps(d1));
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1),
											  _mm512_add_ps(s2, s3)));
}

/* The three dot products cosine distance needs, in one pass */
OMEN_TARGET_AVX512 static void
cosine_parts_avx512(const float *a, const float *b, int n,
					float *ab, float *aa, float *bb)
{
	__m512		sab0 = _mm512_setzero_ps();
	__m512		sab1 = _mm512_setzero_ps();
	__m512		sab2 = _mm512_setzero_ps();
	__m512		sab3 = _mm512_setzero_ps();
	__m512		saa0 = _mm512_setzero_ps();
	__m512		saa1 = _mm512_setzero_ps();
	__m512		saa2 = _mm512_setzero_ps();
	__m512		saa3 = _mm512_setzero_ps();
	__m512		sbb0 = _mm512_setzero_ps();
	__m512		sbb1 = _mm512_setzero_ps();
	__m512		sbb2 = _mm512_setzero_ps();
	__m512		sbb3 = _mm512_setzero_ps();
	__m512		va,
				vb;
	int			i = 0;

	/* four vectors per step: twelve independent FMA chains */
	for (; i + 64 <= n; i += 64)
	{
		va = _mm512_loadu_ps(a + i);
		vb = _mm512_loadu_ps(b + i);
		sab0 = _mm512_fmadd_ps(va, vb, sab0);
		saa0 = _mm512_fmadd_ps(va, va, saa0);
		sbb0 = _mm512_fmadd_ps(vb, vb, sbb0);
		va = _mm512_loadu_ps(a + i + 16);
		vb = _mm512_loadu_ps(b + i + 16);
		sab1 = _mm512_fmadd_ps(va, vb, sab1);
		saa1 = _mm512_fmadd_ps(va, va, saa1);
		sbb1 = _mm512_fmadd_ps(vb, vb, sbb1);
		va = _mm512_loadu_ps(a + i + 32);
		vb = _mm512_loadu_ps(b + i + 32);
		sab2 = _mm512_fmadd_ps(va, vb, sab2);
		saa2 = _mm512_fmadd_ps(va, va, saa2);
		sbb2 = _mm512_fmadd_ps(vb, vb, sbb2);
		va = _mm512_loadu_ps(a + i + 48);
		vb = _mm512_loadu_ps(b + i + 48);
		sab3 = _mm512_fmadd_ps(va, vb, sab3);
		saa3 = _mm512_fmadd_ps(va, va, saa3);
		sbb3 = _mm512_fmadd_ps(vb, vb, sbb3);
	}
	for (; i + 16 <= n; i += 16)
	{
		va = _mm512_loadu_ps(a + i);
		vb = _mm512_loadu_ps(b + i);
		sab0 = _mm512_fmadd_ps(va, vb, sab0);
		saa0 = _mm512_fmadd_ps(va, va, saa0);
		sbb0 = _mm512_fmadd_ps(vb, vb, sbb0);
	}
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);

		va = _mm512_maskz_loadu_ps(m, a + i);
		vb = _mm512_maskz_loadu_ps(m, b + i);
		sab1 = _mm512_fmadd_ps(va, vb, sab1);
		saa1 = _mm512_fmadd_ps(va, va, saa1);
		sbb1 = _mm512_fmadd_ps(vb, vb, sbb1);
	}
	*ab = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(sab0, sab1),
											 _mm512_add_ps(sab2, sab3)));
	*aa = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(saa0, saa1),
											 _mm512_add_ps(saa2, saa3)));
	*bb = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(sbb0, sbb1),
											 _mm512_add_ps(sbb2, sbb3)));
}

/*
 * Table distances of 16 codes (see OmenKernels.lut16).  One gather reads
 * four bytes of each of the 16 codes into the 16 lanes; a half byte's 16
 * table entries are exactly one register, and the permute uses only the
 * low four bits of each lane's index, so each half byte is one shift and
 * one permute for all 16 codes.  Four running sums.  The last nbytes % 4
 * bytes are read one at a time, so nothing past a code is touched.
 */
OMEN_TARGET_AVX512 static void
lut16_avx512(const float *lut, const uint8_t *codes, int stride, int nbytes,
			 float *out)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	__m512		s2 = _mm512_setzero_ps();
	__m512		s3 = _mm512_setzero_ps();
	const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7,
															  8, 9, 10, 11, 12, 13, 14, 15),
											_mm512_set1_epi32(stride));
	int			b = 0;

	for (; b + 4 <= nbytes; b += 4)
	{
		__m512i		w = _mm512_i32gather_epi32(rows, (const void *) (codes + b), 1);
		const float *t = lut + b * 32;

		s0 = _mm512_add_ps(s0, _mm512_permutexvar_ps(w, _mm512_loadu_ps(t)));
		s1 = _mm512_add_ps(s1, _mm512_permutexvar_ps(_mm512_srli_epi32(w, 4), _mm512_loadu_ps(t + 16)));
		s2 = _mm512_add_ps(s2, _mm512_permutexvar_ps(_mm512_srli_epi32(w, 8), _mm512_loadu_ps(t + 32)));
		s3 = _mm512_add_ps(s3, _mm512_permutexvar_ps(_mm512_srli_epi32(w, 12), _mm512_loadu_ps(t + 48)));
		s0 = _mm512_add_ps(s0, _mm512_permutexvar_ps(_mm512_srli_epi32(w, 16), _mm512_loadu_ps(t + 64)));
		s1 = _mm512_add_ps(s1, _mm512_permutexvar_ps(_mm512_srli_epi32(w, 20), _mm512_loadu_ps(t + 80)));
		s2 = _mm512_add_ps(s2, _mm512_permutexvar_ps(_mm512_srli_epi32(w, 24), _mm512_loadu_ps(t + 96)));
		s3 = _mm512_add_ps(s3, _mm512_permutexvar_ps(_mm512_srli_epi32(w, 28), _mm512_loadu_ps(t + 112)));
	}
	for (; b < nbytes; b++)
	{
		int32_t		c[16];
		__m512i		w;

		for (int i = 0; i < 16; i++)
			c[i] = codes[(size_t) i * stride + b];
		w = _mm512_loadu_si512((const void *) c);
		s0 = _mm512_add_ps(s0, _mm512_permutexvar_ps(w, _mm512_loadu_ps(lut + b * 32)));
		s1 = _mm512_add_ps(s1, _mm512_permutexvar_ps(_mm512_srli_epi32(w, 4),
													  _mm512_loadu_ps(lut + b * 32 + 16)));
	}
	_mm512_storeu_ps(out, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* y_i += a * x_i, 16 at a time; the tail through masked loads and a store */
OMEN_TARGET_AVX512 static void
axpy_avx512(float a, const float *x, float *y, int n)
{
	__m512		va = _mm512_set1_ps(a);
	int			i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i),
												_mm512_loadu_ps(y + i)));
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);

		_mm512_mask_storeu_ps(y + i, m,
							  _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i),
											  _mm512_maskz_loadu_ps(m, y + i)));
	}
}

const OmenKernels omen_kernels_avx512 = {
	.level = OMEN_SIMD_AVX512,
	.name = "avx512",
	.l2sq = l2sq_avx512,
	.ip = ip_avx512,
	.l1 = l1_avx512,
	.cosine_parts = cosine_parts_avx512,
	.lut16 = lut16_avx512,
	.dot_u8 = dot_u8_avx512,
	.axpy = axpy_avx512,
	.l2sq_half = l2sq_half_avx512,
	.ip_half = ip_half_avx512,
};

#else							/* !__x86_64__ */

/* Keep the translation unit non-empty on other architectures */
typedef int omen_kernels_avx512_not_built;

#endif							/* __x86_64__ */

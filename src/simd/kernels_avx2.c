/*
 * kernels_avx2.c
 *	  Distance kernels for x86-64 CPUs with AVX2, FMA and F16C.
 *
 * Each function carries __attribute__((target("avx2,fma,f16c"))) instead of the
 * whole file being built with -mavx2, so the module still loads on CPUs
 * without AVX2; simd.c only hands these out after CPUID (and XGETBV, for the
 * OS's YMM state) says they can run.
 *
 * The main loops keep four accumulators of 8 floats, so four independent FMA
 * chains hide the FMA latency; a single-vector loop handles what is left in
 * steps of 8 and a masked load (vmaskmovps, which never touches the masked-out
 * elements, so it cannot fault past the end of the array) handles the last
 * 1..7 elements.  Loads are unaligned: vectors come from varlenas that are
 * only 4-byte aligned.
 *
 * No PostgreSQL header is included here (see omen_simd.h).
 */
#include "simd/omen_simd.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define OMEN_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

/* Declared here rather than in omen_simd.h: only simd.c uses this table */
extern const OmenKernels omen_kernels_avx2;

/* Eight -1s then eight 0s: the mask for k tail elements starts at 8 - k */
static const int32_t tail_mask_table[16] = {
	-1, -1, -1, -1, -1, -1, -1, -1,
	0, 0, 0, 0, 0, 0, 0, 0
};

/* The vmaskmovps mask that selects the first k (0..8) lanes */
OMEN_TARGET_AVX2 static inline __m256i
tail_mask(int k)
{
	return _mm256_loadu_si256((const __m256i *) (tail_mask_table + 8 - k));
}

/* Sum of the 8 lanes of v */
OMEN_TARGET_AVX2 static inline float
hsum256(__m256 v)
{
	__m128		lo = _mm256_castps256_ps128(v);
	__m128		hi = _mm256_extractf128_ps(v, 1);
	__m128		shuf;

	lo = _mm_add_ps(lo, hi);			/* 4 lanes */
	shuf = _mm_movehdup_ps(lo);			/* (1,1,3,3) */
	lo = _mm_add_ps(lo, shuf);			/* lanes 0 and 2 hold pair sums */
	shuf = _mm_movehl_ps(shuf, lo);		/* lane 0 = old lane 2 */
	lo = _mm_add_ss(lo, shuf);
	return _mm_cvtss_f32(lo);
}

/* 8 halves as floats (F16C) */
OMEN_TARGET_AVX2 static inline __m256
load_half8(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p));
}

/*
 * b[i .. i + 8) as floats, b being float or (half) IEEE half.  With
 * always_inline and a constant half the kernels below compile to two
 * versions, float and half, that do the same arithmetic step for step.
 */
#define OMEN_INLINE_AVX2 OMEN_TARGET_AVX2 static inline __attribute__((always_inline))

OMEN_INLINE_AVX2 __m256
load_b(const void *b, int i, bool half)
{
	if (half)
		return load_half8((const uint16_t *) b + i);
	return _mm256_loadu_ps((const float *) b + i);
}

/* b[i .. i + k) for k in 1..7, the other lanes 0, reading nothing beyond */
OMEN_INLINE_AVX2 __m256
load_b_tail(const void *b, int i, int k, bool half)
{
	if (half)
	{
		uint16_t	t[8] = {0};

		memcpy(t, (const uint16_t *) b + i, sizeof(uint16_t) * k);
		return load_half8(t);
	}
	return _mm256_maskload_ps((const float *) b + i, tail_mask(k));
}

/* Squared Euclidean distance: sum (a_i - b_i)^2 */
OMEN_INLINE_AVX2 float
l2sq_body(const float *a, const void *b, int n, bool half)
{
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	__m256		s2 = _mm256_setzero_ps();
	__m256		s3 = _mm256_setzero_ps();
	__m256		d0,
				d1,
				d2,
				d3;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), load_b(b, i, half));
		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), load_b(b, i + 8, half));
		d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), load_b(b, i + 16, half));
		d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), load_b(b, i + 24, half));
		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
		s2 = _mm256_fmadd_ps(d2, d2, s2);
		s3 = _mm256_fmadd_ps(d3, d3, s3);
	}
	for (; i + 8 <= n; i += 8)
	{
		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), load_b(b, i, half));
		s0 = _mm256_fmadd_ps(d0, d0, s0);
	}
	if (i < n)
	{
		d1 = _mm256_sub_ps(_mm256_maskload_ps(a + i, tail_mask(n - i)),
						   load_b_tail(b, i, n - i, half));
		s1 = _mm256_fmadd_ps(d1, d1, s1);
	}
	return hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

OMEN_TARGET_AVX2 static float
l2sq_avx2(const float *a, const float *b, int n)
{
	return l2sq_body(a, b, n, false);
}

OMEN_TARGET_AVX2 static float
l2sq_half_avx2(const float *a, const uint16_t *b, int n)
{
	return l2sq_body(a, b, n, true);
}

/* Inner product: sum a_i * b_i */
OMEN_INLINE_AVX2 float
ip_body(const float *a, const void *b, int n, bool half)
{
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	__m256		s2 = _mm256_setzero_ps();
	__m256		s3 = _mm256_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_b(b, i, half), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load_b(b, i + 8, half), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), load_b(b, i + 16, half), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), load_b(b, i + 24, half), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_b(b, i, half), s0);
	if (i < n)
		s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, tail_mask(n - i)),
							 load_b_tail(b, i, n - i, half), s1);
	return hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

OMEN_TARGET_AVX2 static float
ip_avx2(const float *a, const float *b, int n)
{
	return ip_body(a, b, n, false);
}

OMEN_TARGET_AVX2 static float
ip_half_avx2(const float *a, const uint16_t *b, int n)
{
	return ip_body(a, b, n, true);
}

/* sum q_i * c_i over 8-bit codes: 8 codes widened to floats per step */
OMEN_TARGET_AVX2 static float
dot_u8_avx2(const float *q, const uint8_t *c, int n)
{
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m128i		b = _mm_loadu_si128((const __m128i *) (c + i));

		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i),
							 _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8),
							 _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8))),
							 s1);
	}
	for (; i + 8 <= n; i += 8)
	{
		__m128i		b = _mm_loadl_epi64((const __m128i *) (c + i));

		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i),
							 _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), s0);
	}
	{
		float		sum = hsum256(_mm256_add_ps(s0, s1));

		for (; i < n; i++)
			sum += q[i] * (float) c[i];
		return sum;
	}
}

/* Manhattan distance: sum |a_i - b_i| */
OMEN_TARGET_AVX2 static float
l1_avx2(const float *a, const float *b, int n)
{
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	__m256		s2 = _mm256_setzero_ps();
	__m256		s3 = _mm256_setzero_ps();
	__m256		d0,
				d1,
				d2,
				d3;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
		d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
		d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
		s0 = _mm256_add_ps(s0, _mm256_and_ps(d0, absmask));
		s1 = _mm256_add_ps(s1, _mm256_and_ps(d1, absmask));
		s2 = _mm256_add_ps(s2, _mm256_and_ps(d2, absmask));
		s3 = _mm256_add_ps(s3, _mm256_and_ps(d3, absmask));
	}
	for (; i + 8 <= n; i += 8)
	{
		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		s0 = _mm256_add_ps(s0, _mm256_and_ps(d0, absmask));
	}
	if (i < n)
	{
		__m256i		m = tail_mask(n - i);

		d1 = _mm256_sub_ps(_mm256_maskload_ps(a + i, m),
						   _mm256_maskload_ps(b + i, m));
		s1 = _mm256_add_ps(s1, _mm256_and_ps(d1, absmask));
	}
	return hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

/* The three dot products cosine distance needs, in one pass */
OMEN_TARGET_AVX2 static void
cosine_parts_avx2(const float *a, const float *b, int n,
				  float *ab, float *aa, float *bb)
{
	__m256		sab0 = _mm256_setzero_ps();
	__m256		sab1 = _mm256_setzero_ps();
	__m256		sab2 = _mm256_setzero_ps();
	__m256		sab3 = _mm256_setzero_ps();
	__m256		saa0 = _mm256_setzero_ps();
	__m256		saa1 = _mm256_setzero_ps();
	__m256		saa2 = _mm256_setzero_ps();
	__m256		saa3 = _mm256_setzero_ps();
	__m256		sbb0 = _mm256_setzero_ps();
	__m256		sbb1 = _mm256_setzero_ps();
	__m256		sbb2 = _mm256_setzero_ps();
	__m256		sbb3 = _mm256_setzero_ps();
	__m256		va,
				vb;
	int			i = 0;

	/* four vectors per step: twelve independent FMA chains */
	for (; i + 32 <= n; i += 32)
	{
		va = _mm256_loadu_ps(a + i);
		vb = _mm256_loadu_ps(b + i);
		sab0 = _mm256_fmadd_ps(va, vb, sab0);
		saa0 = _mm256_fmadd_ps(va, va, saa0);
		sbb0 = _mm256_fmadd_ps(vb, vb, sbb0);
		va = _mm256_loadu_ps(a + i + 8);
		vb = _mm256_loadu_ps(b + i + 8);
		sab1 = _mm256_fmadd_ps(va, vb, sab1);
		saa1 = _mm256_fmadd_ps(va, va, saa1);
		sbb1 = _mm256_fmadd_ps(vb, vb, sbb1);
		va = _mm256_loadu_ps(a + i + 16);
		vb = _mm256_loadu_ps(b + i + 16);
		sab2 = _mm256_fmadd_ps(va, vb, sab2);
		saa2 = _mm256_fmadd_ps(va, va, saa2);
		sbb2 = _mm256_fmadd_ps(vb, vb, sbb2);
		va = _mm256_loadu_ps(a + i + 24);
		vb = _mm256_loadu_ps(b + i + 24);
		sab3 = _mm256_fmadd_ps(va, vb, sab3);
		saa3 = _mm256_fmadd_ps(va, va, saa3);
		sbb3 = _mm256_fmadd_ps(vb, vb, sbb3);
	}
	for (; i + 8 <= n; i += 8)
	{
		va = _mm256_loadu_ps(a + i);
		vb = _mm256_loadu_ps(b + i);
		sab0 = _mm256_fmadd_ps(va, vb, sab0);
		saa0 = _mm256_fmadd_ps(va, va, saa0);
		sbb0 = _mm256_fmadd_ps(vb, vb, sbb0);
	}
	if (i < n)
	{
		__m256i		m = tail_mask(n - i);

		va = _mm256_maskload_ps(a + i, m);
		vb = _mm256_maskload_ps(b + i, m);
		sab1 = _mm256_fmadd_ps(va, vb, sab1);
		saa1 = _mm256_fmadd_ps(va, va, saa1);
		sbb1 = _mm256_fmadd_ps(vb, vb, sbb1);
	}
	*ab = hsum256(_mm256_add_ps(_mm256_add_ps(sab0, sab1),
								_mm256_add_ps(sab2, sab3)));
	*aa = hsum256(_mm256_add_ps(_mm256_add_ps(saa0, saa1),
								_mm256_add_ps(saa2, saa3)));
	*bb = hsum256(_mm256_add_ps(_mm256_add_ps(sbb0, sbb1),
								_mm256_add_ps(sbb2, sbb3)));
}

/*
 * One half byte of 8 codes: the low four bits of each lane of idx (higher
 * bits are ignored) look up t[0..15] with two 8-entry permutes, the second
 * chosen where bit 3 is set.
 */
OMEN_TARGET_AVX2 static inline __m256
lookup16_avx2(__m256i idx, const float *t)
{
	__m256		lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t), idx);
	__m256		hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 8), idx);

	return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

/*
 * Table distances of 16 codes (see OmenKernels.lut16), 8 at a time: one
 * gather reads four bytes of each of 8 codes; lookup16_avx2 uses only the
 * low four bits of each lane's index, so each half byte is one shift.  The
 * last nbytes % 4 bytes are read one at a time.
 */
OMEN_TARGET_AVX2 static void
lut16_avx2(const float *lut, const uint8_t *codes, int stride, int nbytes,
		   float *out)
{
	const __m256i rows = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
											_mm256_set1_epi32(stride));

	for (int half = 0; half < 2; half++)
	{
		const uint8_t *base = codes + (size_t) half * 8 * stride;
		__m256		s0 = _mm256_setzero_ps();
		__m256		s1 = _mm256_setzero_ps();
		int			b = 0;

		for (; b + 4 <= nbytes; b += 4)
		{
			__m256i		w = _mm256_i32gather_epi32((const int *) (base + b), rows, 1);
			const float *t = lut + b * 32;

			s0 = _mm256_add_ps(s0, lookup16_avx2(w, t));
			s1 = _mm256_add_ps(s1, lookup16_avx2(_mm256_srli_epi32(w, 4), t + 16));
			s0 = _mm256_add_ps(s0, lookup16_avx2(_mm256_srli_epi32(w, 8), t + 32));
			s1 = _mm256_add_ps(s1, lookup16_avx2(_mm256_srli_epi32(w, 12), t + 48));
			s0 = _mm256_add_ps(s0, lookup16_avx2(_mm256_srli_epi32(w, 16), t + 64));
			s1 = _mm256_add_ps(s1, lookup16_avx2(_mm256_srli_epi32(w, 20), t + 80));
			s0 = _mm256_add_ps(s0, lookup16_avx2(_mm256_srli_epi32(w, 24), t + 96));
			s1 = _mm256_add_ps(s1, lookup16_avx2(_mm256_srli_epi32(w, 28), t + 112));
		}
		for (; b < nbytes; b++)
		{
			int32_t		c[8];
			__m256i		w;

			for (int i = 0; i < 8; i++)
				c[i] = base[(size_t) i * stride + b];
			w = _mm256_loadu_si256((const __m256i *) c);
			s0 = _mm256_add_ps(s0, lookup16_avx2(w, lut + b * 32));
			s1 = _mm256_add_ps(s1, lookup16_avx2(_mm256_srli_epi32(w, 4), lut + b * 32 + 16));
		}
		_mm256_storeu_ps(out + half * 8, _mm256_add_ps(s0, s1));
	}
}

/* y_i += a * x_i, 8 at a time; the tail through masked loads and stores */
OMEN_TARGET_AVX2 static void
axpy_avx2(float a, const float *x, float *y, int n)
{
	__m256		va = _mm256_set1_ps(a);
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i),
												_mm256_loadu_ps(y + i)));
	if (i < n)
	{
		__m256i		m = tail_mask(n - i);

		_mm256_maskstore_ps(y + i, m,
							_mm256_fmadd_ps(va, _mm256_maskload_ps(x + i, m),
											_mm256_maskload_ps(y + i, m)));
	}
}

const OmenKernels omen_kernels_avx2 = {
	.level = OMEN_SIMD_AVX2,
	.name = "avx2",
	.l2sq = l2sq_avx2,
	.ip = ip_avx2,
	.l1 = l1_avx2,
	.cosine_parts = cosine_parts_avx2,
	.lut16 = lut16_avx2,
	.dot_u8 = dot_u8_avx2,
	.axpy = axpy_avx2,
	.l2sq_half = l2sq_half_avx2,
	.ip_half = ip_half_avx2,
};

#else							/* !__x86_64__ */

/* Keep the translation unit non-empty on other architectures */
typedef int omen_kernels_avx2_not_built;

#endif							/* __x86_64__ */

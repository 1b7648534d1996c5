/*
 * omen_simd.h
 *	  Distance kernels over float4 arrays, one set per SIMD level.
 *
 * This header and the kernel sources under src/simd/ do not include any
 * PostgreSQL header, so the unit tests and benchmarks in test/unit/ can build
 * them standalone.  The PostgreSQL side (the omen.simd setting and the SQL
 * function that reports the level) lives in src/simd/simd_guc.c.
 *
 * Every caller in the extension computes distances through omen_kernels, a
 * pointer chosen once at load time from the CPU's features (CPUID) and
 * changed only by the omen.simd setting.
 */
#ifndef OMEN_SIMD_H
#define OMEN_SIMD_H

#include <stdbool.h>
#include <stdint.h>

typedef enum OmenSimdLevel
{
	OMEN_SIMD_SCALAR = 0,
	OMEN_SIMD_AVX2,				/* AVX2 + FMA */
	OMEN_SIMD_AVX512,			/* AVX-512 F */
	OMEN_SIMD_NLEVELS
} OmenSimdLevel;

typedef float (*OmenDistanceFn) (const float *a, const float *b, int n);

typedef struct OmenKernels
{
	OmenSimdLevel level;
	const char *name;			/* "scalar", "avx2", "avx512" */
	OmenDistanceFn l2sq;		/* sum (a_i - b_i)^2 */
	OmenDistanceFn ip;			/* sum a_i * b_i */
	OmenDistanceFn l1;			/* sum |a_i - b_i| */
	/* one pass for cosine: *ab = a.b, *aa = a.a, *bb = b.b */
	void		(*cosine_parts) (const float *a, const float *b, int n,
								 float *ab, float *aa, float *bb);

	/*
	 * Table distances of 16 codes at once (omen_diskann's 1/2/4-bit codes).
	 * lut holds 16 floats for each half byte of a code: 2 * nbytes rows,
	 * the low half of byte b at row 2b, the high half at row 2b + 1.  Code
	 * i is the nbytes bytes at codes + i * stride (stride >= nbytes); no
	 * other byte is read.  out[i] = sum over b of lut[2b][c_i[b] & 15] +
	 * lut[2b + 1][c_i[b] >> 4], for i in 0..15.
	 */
	void		(*lut16) (const float *lut, const uint8_t *codes, int stride,
						  int nbytes, float *out);

	/*
	 * sum q_i * c_i over n 8-bit codes c (omen_hnsw's sq8 traversal codes);
	 * exactly n bytes of c are read.
	 */
	float		(*dot_u8) (const float *q, const uint8_t *c, int n);

	/*
	 * l2sq and ip with b in IEEE half precision (16 bits a value): the
	 * same result, bit for bit, as the float kernel on b decoded, without
	 * decoding it into memory first.  Exactly n halves of b are read.
	 */
	float		(*l2sq_half) (const float *a, const uint16_t *b, int n);
	float		(*ip_half) (const float *a, const uint16_t *b, int n);

	/* y_i += a * x_i for i < n (x and y do not overlap) */
	void		(*axpy) (float a, const float *x, float *y, int n);
} OmenKernels;

/* The kernel set in use; never NULL after OmenSimdInit() */
extern const OmenKernels *omen_kernels;

/* Detect the CPU and point omen_kernels at the best supported level */
extern void OmenSimdInit(void);

/* Whether this CPU (and OS) supports a level */
extern bool OmenCpuSupports(OmenSimdLevel level);

/* The kernel set for a level, or NULL if the CPU lacks it */
extern const OmenKernels *OmenKernelsFor(OmenSimdLevel level);

/* The best level this CPU supports */
extern OmenSimdLevel OmenBestSimdLevel(void);

#endif							/* OMEN_SIMD_H */

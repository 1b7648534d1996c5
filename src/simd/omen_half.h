/*
 * omen_half.h
 *	  IEEE 754 binary16 ("half") conversions for indexes that store vectors
 *	  at 2 bytes per dimension.  Standalone C, like the distance kernels.
 */
#ifndef OMEN_HALF_H
#define OMEN_HALF_H

#include <stdint.h>
#include <string.h>

/* One half to float, exactly (portable; the kernels' reference) */
static inline float
OmenHalfToFloat1(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exp = (h >> 10) & 0x1F;
	uint32_t	mant = h & 0x3FF;
	uint32_t	bits;
	float		f;

	if (exp == 0)
	{
		if (mant == 0)
			bits = sign;
		else
		{
			/* subnormal: normalise */
			int			e = -1;

			do
			{
				e++;
				mant <<= 1;
			} while ((mant & 0x400) == 0);
			mant &= 0x3FF;
			bits = sign | ((uint32_t) (127 - 15 - e) << 23) | (mant << 13);
		}
	}
	else if (exp == 0x1F)
		bits = sign | 0x7F800000 | (mant << 13);
	else
		bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/* Convert n halves to floats (exact) */
extern void OmenHalfToFloat(const uint16_t *in, float *out, int n);

/* Convert n floats to halves, rounding to nearest even; overflow saturates to +-65504 */
extern void OmenFloatToHalf(const float *in, uint16_t *out, int n);

#endif							/* OMEN_HALF_H */

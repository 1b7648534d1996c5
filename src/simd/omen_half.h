/*
 * omen_half.h
 *	  IEEE 754 binary16 ("half") conversions for indexes that store vectors
 *	  at 2 bytes per dimension.  Standalone C, like the distance kernels.
 */
#ifndef OMEN_HALF_H
#define OMEN_HALF_H

#include <stdint.h>

/* Convert n halves to floats (exact) */
extern void OmenHalfToFloat(const uint16_t *in, float *out, int n);

/* Convert n floats to halves, rounding to nearest even; overflow saturates to +-65504 */
extern void OmenFloatToHalf(const float *in, uint16_t *out, int n);

#endif							/* OMEN_HALF_H */

/*
 * vector.h
 *	  The omen vector datatype: a varlena of float4 elements.
 *
 * The on-disk and binary wire layouts match what pgvector users already have
 * (int16 dimension count, int16 reserved, then the elements), so COPY BINARY
 * files move between the two unchanged.
 */
#ifndef OMEN_VECTOR_H
#define OMEN_VECTOR_H

#include "postgres.h"

#include "fmgr.h"

#define VECTOR_MAX_DIM 16000

typedef struct Vector
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int16		dim;			/* number of elements */
	int16		unused;			/* reserved, always 0 */
	float		x[FLEXIBLE_ARRAY_MEMBER];
} Vector;

#define VECTOR_SIZE(_dim)		(offsetof(Vector, x) + sizeof(float) * (_dim))
#define DatumGetVector(x)		((Vector *) PG_DETOAST_DATUM(x))
#define PG_GETARG_VECTOR_P(x)	DatumGetVector(PG_GETARG_DATUM(x))
#define PG_RETURN_VECTOR_P(x)	PG_RETURN_POINTER(x)

extern Vector *InitVector(int dim);
extern void CheckVectorDim(int dim);
extern void CheckExpectedVectorDim(int32 typmod, int dim);
extern void CheckVectorElement(float value);

#endif							/* OMEN_VECTOR_H */

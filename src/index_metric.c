/*
 * index_metric.c
 *	  From an index's operator class to the distance kernel it walks with.
 *
 * Support function 1 of every omen operator class is an SQL distance
 * function.  When it is one of omen's own, the index computes the same
 * distance with the SIMD kernel directly (no fmgr call in the inner loop).
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "fmgr.h"
#include "omen_index.h"
#include "utils/float.h"
#include "utils/rel.h"

/* omen's SQL distance functions (vector.c) */
extern Datum vector_l2_squared_distance(PG_FUNCTION_ARGS);
extern Datum l2_distance(PG_FUNCTION_ARGS);
extern Datum vector_negative_inner_product(PG_FUNCTION_ARGS);
extern Datum cosine_distance(PG_FUNCTION_ARGS);
extern Datum l1_distance(PG_FUNCTION_ARGS);

/* Resolve the metric of the index's first (only) key column */
void
OmenDistanceInit(OmenDistance *dist, Relation index)
{
	FmgrInfo   *proc = index_getprocinfo(index, 1, OMEN_DISTANCE_PROC);
	PGFunction	fn = proc->fn_addr;

	memset(dist, 0, sizeof(*dist));
	dist->collation = index->rd_indcollation[0];
	dist->dim = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;

	if (fn == vector_l2_squared_distance || fn == l2_distance)
		dist->metric = OMEN_METRIC_L2;
	else if (fn == vector_negative_inner_product)
		dist->metric = OMEN_METRIC_IP;
	else if (fn == cosine_distance)
		dist->metric = OMEN_METRIC_COSINE;
	else if (fn == l1_distance)
		dist->metric = OMEN_METRIC_L1;
	else
	{
		dist->metric = OMEN_METRIC_FMGR;
		dist->fmgr = proc;
	}
}

/* A name for the metric, for inspection functions and messages */
const char *
OmenMetricName(OmenMetric metric)
{
	switch (metric)
	{
		case OMEN_METRIC_L2:
			return "l2";
		case OMEN_METRIC_IP:
			return "inner_product";
		case OMEN_METRIC_COSINE:
			return "cosine";
		case OMEN_METRIC_L1:
			return "l1";
		default:
			return "function";
	}
}

/* Distance through the operator class's function, for unknown functions */
float
OmenDistanceFmgr(const OmenDistance *dist, const float *a, const float *b)
{
	Vector	   *va = InitVector(dist->dim);
	Vector	   *vb = InitVector(dist->dim);
	double		d;

	memcpy(va->x, a, sizeof(float) * dist->dim);
	memcpy(vb->x, b, sizeof(float) * dist->dim);
	d = DatumGetFloat8(FunctionCall2Coll(dist->fmgr, dist->collation,
										 PointerGetDatum(va),
										 PointerGetDatum(vb)));
	pfree(va);
	pfree(vb);
	return (float) d;
}

/* The SQL operator's value for a distance the index ranks by */
double
OmenDistanceToSql(const OmenDistance *dist, float d)
{
	switch (dist->metric)
	{
		case OMEN_METRIC_L2:
			return sqrt((double) Max(d, 0.0f));
		case OMEN_METRIC_COSINE:
			/* |a-b|^2 = 2 - 2cos for unit vectors */
			return Min(Max((double) d / 2.0, 0.0), 2.0);
		default:
			return (double) d;
	}
}

/* Check a value's length, copy it to out, normalise it for cosine */
bool
OmenPrepareVector(const OmenDistance *dist, const Vector *v, float *out)
{
	if (v->dim != dist->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", dist->dim, v->dim),
				 errdetail("The index holds vectors of %d dimensions.",
						   dist->dim)));

	memcpy(out, v->x, sizeof(float) * v->dim);
	if (dist->metric == OMEN_METRIC_COSINE)
	{
		double		norm = 0.0;

		for (int i = 0; i < v->dim; i++)
			norm += (double) out[i] * out[i];
		if (norm == 0.0)
			return false;
		norm = sqrt(norm);
		for (int i = 0; i < v->dim; i++)
			out[i] = (float) (out[i] / norm);
	}
	return true;
}

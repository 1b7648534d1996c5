/*
 * index_scan.c
 *	  What the scans of both access methods share: the scan state's common
 *	  part, its memory context, rescans, and reading the query.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "omen_index.h"
#include "utils/memutils.h"

/* ambeginscan: size bytes of scan state, starting with an OmenScanBase */
IndexScanDesc
OmenBeginScan(Relation index, int nkeys, int norderbys, Size size,
			  const char *ctxname)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	OmenScanBase *so = palloc0(size);

	Assert(size >= sizeof(OmenScanBase));
	/* ctxname is the caller's string constant */
	so->ctx = AllocSetContextCreateInternal(CurrentMemoryContext, ctxname,
											ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

/* amrescan: take the new keys, forget everything the last scan built */
void
OmenRescan(IndexScanDesc scan, ScanKey keys, ScanKey orderbys, Size size)
{
	OmenScanBase *so = (OmenScanBase *) scan->opaque;
	MemoryContext ctx = so->ctx;

	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys,
				scan->numberOfOrderBys * sizeof(ScanKeyData));

	MemoryContextReset(ctx);
	memset(so, 0, size);
	so->ctx = ctx;
}

/* The first call of amgettuple: only ORDER BY distance scans exist */
void
OmenScanStart(IndexScanDesc scan, const char *amname)
{
	OmenScanBase *so = (OmenScanBase *) scan->opaque;

	if (scan->numberOfOrderBys == 0 || scan->orderByData == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an %s index can only be scanned in ORDER BY distance order",
						amname)));
	so->started = true;
}

/*
 * Read the query (dim dimensions) into so->query, in the scan's context,
 * normalised for cosine.  A NULL query, or a zero one under cosine, has no
 * order: the walk starts from zeros and returns rows in some order.
 */
void
OmenScanQuery(IndexScanDesc scan, const OmenDistance *dist, int dim)
{
	OmenScanBase *so = (OmenScanBase *) scan->opaque;

	so->query = palloc0(sizeof(float) * dim);
	if (!(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		Vector	   *q = DatumGetVector(scan->orderByData[0].sk_argument);

		if (!OmenPrepareVector(dist, q, so->query))
			memset(so->query, 0, sizeof(float) * dim);
	}
}

/* amendscan, after the method's own report */
void
OmenEndScan(IndexScanDesc scan)
{
	OmenScanBase *so = (OmenScanBase *) scan->opaque;

	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}

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

/*
 * Called as the scan returns row so->returned: prepare the executor's heap
 * fetches of the next rows.  Rows up to OMEN_HEAP_AHEAD ahead get their
 * block looked up (and read, if it is not in shared buffers) and the
 * buffer and page headers prefetched; the next row, looked up at least one
 * call ago, gets its tuple prefetched.  The executor fetches each row
 * right after we return it, so by the time it asks for a row its heap
 * page, or at least its read, is on the way.  Rows past the batch the
 * method holds are not peeked; the ring restarts with the next batch.
 */
void
OmenScanHeapAhead(IndexScanDesc scan, OmenPeekTidFn peek, void *arg)
{
	OmenScanBase *so = (OmenScanBase *) scan->opaque;
	int64		row = so->returned;
	int			slot;

	if (so->ahead_next <= row)
		so->ahead_next = row + 1;
	while (so->ahead_next <= row + OMEN_HEAP_AHEAD)
	{
		ItemPointerData tid;

		if (!peek(arg, (int) (so->ahead_next - row), &tid))
			break;
		slot = so->ahead_next % lengthof(so->ahead_buf);
		so->ahead_tid[slot] = tid;
		so->ahead_buf[slot] = OmenPrefetchHeap(scan->heapRelation, &tid);
		so->ahead_next++;
	}
	if (so->ahead_next > row + 1)
	{
		slot = (row + 1) % lengthof(so->ahead_buf);
		OmenPrefetchHeapTuple(so->ahead_buf[slot], &so->ahead_tid[slot]);
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

/*
 * hnswscan.c
 *	  omen_hnsw: ORDER BY v <op> q scans.
 *
 * The first call walks down the layers to layer 0 and runs the search with
 * omen.hnsw_ef_search; the rows come out in ascending distance (computed
 * from the vectors the index stores).  When the executor asks for more
 * (a WHERE clause rejected rows), the same search resumes for the next
 * ef_search rows not yet returned (OmenGraphSearchNextBatch), until the
 * graph is exhausted or omen.max_scan_tuples rows have been returned.
 * Order is exact within a batch; a later batch may hold a row nearer than
 * the last of the previous batch.
 *
 * Pruning can leave a live element that no other element links to (VACUUM
 * re-links such orphans, inserts make sure a new element has an in-edge,
 * but later prunes can orphan it again).  So when the graph search has
 * nothing left, the scan sweeps the index pages once for live elements it
 * never reached and returns them too, nearest first: a scan that runs to
 * the end returns every indexed row exactly once.
 *
 * No buffer lock or pin is held between calls: the search copies what it
 * needs, and MVCC makes a heap TID read before a concurrent VACUUM safe.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/rel.h"

typedef struct HnswScanOpaqueData
{
	MemoryContext ctx;			/* everything below lives here */
	bool		started;
	bool		done;
	bool		searching;		/* ds is set up */
	bool		swept;			/* the final sweep has been done */
	HnswShared	hs;
	float	   *query;
	HnswDiskSearch ds;
	OmenCand   *batch;
	int			nbatch;
	int			pos;			/* next candidate in batch */
	int			tidpos;			/* next heap TID of batch[pos] */
	int64		returned;
} HnswScanOpaqueData;

typedef HnswScanOpaqueData *HnswScanOpaque;

/* ambeginscan */
IndexScanDesc
hnswbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	HnswScanOpaque so = palloc0(sizeof(HnswScanOpaqueData));

	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "omen_hnsw scan",
									ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

/* amrescan */
void
hnswrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
		   int norderbys)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys,
				scan->numberOfOrderBys * sizeof(ScanKeyData));

	MemoryContextReset(so->ctx);
	so->started = false;
	so->done = false;
	so->searching = false;
	so->swept = false;
	so->batch = NULL;
	so->nbatch = 0;
	so->pos = 0;
	so->tidpos = 0;
	so->returned = 0;
}

/* First call: read the query, descend, run the first batch */
static void
StartScan(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	HnswShared *hs = &so->hs;

	if (scan->numberOfOrderBys == 0 || scan->orderByData == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an omen_hnsw index can only be scanned in ORDER BY distance order")));

	HnswInitShared(hs, scan->indexRelation);
	so->started = true;
	if (hs->entry_level < 0 || hs->dim == 0)
	{
		so->done = true;
		return;
	}

	so->query = palloc0(sizeof(float) * hs->dim);
	if (!(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		Vector	   *q = DatumGetVector(scan->orderByData[0].sk_argument);

		/* a zero query under cosine has no order: walk from zeros */
		if (!OmenPrepareVector(&hs->dist, q, so->query))
			memset(so->query, 0, sizeof(float) * hs->dim);
	}

	HnswDiskSearchInit(&so->ds, hs, so->query, hnsw_ef_search, true);
	so->searching = true;
	if (!HnswDiskDescend(&so->ds, 0, hnsw_ef_search))
	{
		so->done = true;
		return;
	}
	OmenGraphSearchRun(&so->ds.search, 0);
	so->nbatch = OmenGraphSearchTakeResults(&so->ds.search, &so->batch);
}

/*
 * The graph search is exhausted: collect the live elements it never
 * reached, with their distances, as one last batch sorted nearest first.
 */
static int
SweepUnreached(HnswScanOpaque so, Relation index, OmenCand **out)
{
	HnswShared *hs = &so->hs;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	int			n = 0;
	int			max = 64;
	OmenCand   *c = palloc(sizeof(OmenCand) * max);

	for (BlockNumber blkno = 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;

		CHECK_FOR_INTERRUPTS();
		buf = OmenReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber;
			 off <= PageGetMaxOffsetNumber(page); off++)
		{
			HnswElementTuple etup = (HnswElementTuple) OmenPageGetTuple(page, off);
			ItemPointerData tid;
			HnswNode	node;

			if (!etup || etup->type != HNSW_TUPLE_ELEMENT ||
				etup->state != HNSW_ELEMENT_LIVE)
				continue;
			ItemPointerSet(&tid, blkno, off);
			if (OmenVisitedContains(&so->ds.search.visited, OmenTidToId(&tid)))
				continue;
			if (n == max)
			{
				max *= 2;
				c = repalloc_huge(c, sizeof(OmenCand) * max);
			}
			node.tid = tid;
			node.neighbortid = etup->neighbortid;
			node.level = etup->level;
			node.state = etup->state;
			memcpy(node.heaptids, etup->heaptids, sizeof(node.heaptids));
			c[n].dist = HnswElementDistance(hs, etup, so->query);
			c[n].id = OmenTidToId(&tid);
			c[n].aux = HnswDiskSearchAddNode(&so->ds, &node);
			n++;
		}
		UnlockReleaseBuffer(buf);
	}
	OmenSortCands(c, n);
	*out = c;
	return n;
}

/* amgettuple */
bool
hnswgettuple(IndexScanDesc scan, ScanDirection dir)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(so->ctx);

	if (!so->started)
		StartScan(scan);

	while (!so->done)
	{
		while (so->pos < so->nbatch)
		{
			HnswNode   *node = &so->ds.nodes[so->batch[so->pos].aux];

			while (so->tidpos < HNSW_HEAPTIDS)
			{
				ItemPointer tid = &node->heaptids[so->tidpos++];

				if (!ItemPointerIsValid(tid))
					continue;
				if (omen_max_scan_tuples >= 0 &&
					so->returned >= omen_max_scan_tuples)
				{
					so->done = true;
					break;
				}
				so->returned++;
				scan->xs_heaptid = *tid;
				scan->xs_recheck = false;
				scan->xs_recheckorderby = false;
				MemoryContextSwitchTo(old);
				return true;
			}
			if (so->done)
				break;
			so->pos++;
			so->tidpos = 0;
		}
		if (so->done)
			break;

		/* the batch is used up: find the next one */
		if (so->batch)
			pfree(so->batch);
		so->batch = NULL;
		so->nbatch = 0;
		so->pos = 0;
		so->tidpos = 0;
		if (OmenGraphSearchNextBatch(&so->ds.search, 0))
			so->nbatch = OmenGraphSearchTakeResults(&so->ds.search, &so->batch);
		else if (!so->swept)
		{
			so->swept = true;
			so->nbatch = SweepUnreached(so, scan->indexRelation, &so->batch);
		}
		else
			so->done = true;
	}

	MemoryContextSwitchTo(old);
	return false;
}

/* amendscan */
void
hnswendscan(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	if (so->searching)
		ereport(DEBUG1,
				(errmsg_internal("omen_hnsw scan: %lld rows, %llu distances, %d elements read",
								 (long long) so->returned,
								 (unsigned long long) so->ds.search.ndistances,
								 so->ds.nnodes)));
	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}

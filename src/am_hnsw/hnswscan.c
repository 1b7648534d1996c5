/*
 * hnswscan.c
 *	  omen_hnsw: ORDER BY v <op> q scans.
 *
 * The first call walks down the layers to layer 0 and runs the search with
 * omen.hnsw_ef_search; the rows come out in ascending distance (computed
 * from the vectors the index stores).  With codes = sq8 the walk ranks by
 * the codes and each batch is re-scored with the stored vectors before it
 * is returned (HnswDiskRescore).  When the executor asks for more
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
	OmenScanBase base;
	HnswShared	hs;
	HnswDiskSearch ds;
	int			pos;			/* next candidate in batch */
	int			tidpos;			/* next heap TID of batch[pos] */
} HnswScanOpaqueData;

typedef HnswScanOpaqueData *HnswScanOpaque;

/* ambeginscan */
IndexScanDesc
hnswbeginscan(Relation index, int nkeys, int norderbys)
{
	return OmenBeginScan(index, nkeys, norderbys, sizeof(HnswScanOpaqueData),
						 "omen_hnsw scan");
}

/* amrescan */
void
hnswrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
		   int norderbys)
{
	OmenRescan(scan, keys, orderbys, sizeof(HnswScanOpaqueData));
}

/* First call: read the query, descend, run the first batch */
static void
StartScan(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	HnswShared *hs = &so->hs;

	OmenScanStart(scan, "omen_hnsw");

	HnswInitShared(hs, scan->indexRelation);
	if (hs->entry_level < 0 || hs->dim == 0)
	{
		so->base.done = true;
		return;
	}

	OmenScanQuery(scan, &hs->dist, hs->dim);

	HnswDiskSearchInit(&so->ds, hs, so->base.query, hnsw_ef_search, true);
	so->base.searching = true;
	if (!HnswDiskDescend(&so->ds, 0, hnsw_ef_search))
	{
		so->base.done = true;
		return;
	}
	OmenGraphSearchRun(&so->ds.search, 0);
	so->base.nbatch = OmenGraphSearchTakeResults(&so->ds.search, &so->base.batch);
	so->base.nbatch = HnswDiskRescore(&so->ds, so->base.batch, so->base.nbatch);
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
			c[n].dist = HnswElementDistance(hs, etup, so->base.query);
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

/* OmenPeekTidFn: the k-th valid heap TID after the one being returned */
static bool
PeekTid(void *arg, int k, ItemPointer out)
{
	HnswScanOpaque so = (HnswScanOpaque) arg;
	int			pos = so->pos;
	int			tidpos = so->tidpos;	/* already past the returned one */

	while (pos < so->base.nbatch)
	{
		HnswNode   *node = &so->ds.nodes[so->base.batch[pos].aux];

		for (; tidpos < HNSW_HEAPTIDS; tidpos++)
		{
			if (ItemPointerIsValid(&node->heaptids[tidpos]) && --k == 0)
			{
				*out = node->heaptids[tidpos];
				return true;
			}
		}
		pos++;
		tidpos = 0;
	}
	return false;
}

/* amgettuple */
bool
hnswgettuple(IndexScanDesc scan, ScanDirection dir)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(so->base.ctx);

	if (!so->base.started)
		StartScan(scan);

	while (!so->base.done)
	{
		while (so->pos < so->base.nbatch)
		{
			HnswNode   *node = &so->ds.nodes[so->base.batch[so->pos].aux];

			while (so->tidpos < HNSW_HEAPTIDS)
			{
				ItemPointer tid = &node->heaptids[so->tidpos++];

				if (!ItemPointerIsValid(tid))
					continue;
				if (omen_max_scan_tuples >= 0 &&
					so->base.returned >= omen_max_scan_tuples)
				{
					so->base.done = true;
					break;
				}
				OmenScanHeapAhead(scan, PeekTid, so);
				so->base.returned++;
				scan->xs_heaptid = *tid;
				scan->xs_recheck = false;
				scan->xs_recheckorderby = false;
				MemoryContextSwitchTo(old);
				return true;
			}
			if (so->base.done)
				break;
			so->pos++;
			so->tidpos = 0;
		}
		if (so->base.done)
			break;

		/* the batch is used up: find the next one */
		if (so->base.batch)
			pfree(so->base.batch);
		so->base.batch = NULL;
		so->base.nbatch = 0;
		so->pos = 0;
		so->tidpos = 0;
		if (OmenGraphSearchNextBatch(&so->ds.search, 0))
		{
			so->base.nbatch = OmenGraphSearchTakeResults(&so->ds.search, &so->base.batch);
			so->base.nbatch = HnswDiskRescore(&so->ds, so->base.batch, so->base.nbatch);
		}
		else if (!so->base.swept)
		{
			so->base.swept = true;
			so->base.nbatch = SweepUnreached(so, scan->indexRelation, &so->base.batch);
		}
		else
			so->base.done = true;
	}

	MemoryContextSwitchTo(old);
	return false;
}

/* amendscan */
void
hnswendscan(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	if (so->base.searching)
		ereport(DEBUG1,
				(errmsg_internal("omen_hnsw scan: %lld rows, %llu distances, %d elements read",
								 (long long) so->base.returned,
								 (unsigned long long) so->ds.search.ndistances,
								 so->ds.nnodes)));
	OmenEndScan(scan);
}

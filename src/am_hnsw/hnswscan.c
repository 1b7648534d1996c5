/*
 * hnswscan.c
 *	  omen_hnsw: ORDER BY v <op> q scans.
 *
 * The first call walks down the layers to layer 0 and runs the search with
 * omen.hnsw_ef_search; the rows come out in ascending distance (computed
 * from the vectors the index stores).  With codes = sq8 the walk ranks by
 * the codes, and a batch's members are re-scored with the stored vectors
 * before they are returned: lazily, in the order of a lower bound of
 * their exact distance, only as far as the rows taken need (NextCand).
 * When the executor asks for more
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
	bool		hascur;			/* cur is being returned */
	OmenCand	cur;
	int			tidpos;			/* next heap TID of cur */

	/*
	 * Lazy re-scoring (codes = sq8, L2, cosine, inner product): batch holds
	 * lower bounds of the exact distances, nearest first; batch[pos ..] are
	 * not re-scored yet, ready[readypos .. nready) are, nearest first.
	 */
	bool		lazy;
	OmenCand   *ready;
	int			nready;
	int			readypos;
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

/*
 * Get a new batch (walk distances, nearest first) ready to be returned in
 * exact order.  With codes = sq8 its members need exact distances: where
 * the metric gives a lower bound of the exact distance from the code's,
 * they are re-scored lazily (NextCand), only as far as the rows taken
 * need; else all at once.
 */
static void
SetupBatch(HnswScanOpaque so, bool exact)
{
	so->pos = 0;
	so->hascur = false;
	so->lazy = false;
	so->nready = 0;
	so->readypos = 0;
	if (exact || so->base.nbatch == 0 || !HnswStorageSq8(so->hs.storage))
		return;
	if (HnswDiskLowerBounds(&so->ds, so->base.batch, so->base.nbatch))
	{
		OmenSortCands(so->base.batch, so->base.nbatch);
		if (so->ready)
			pfree(so->ready);
		so->ready = palloc(sizeof(OmenCand) * so->base.nbatch);
		so->lazy = true;
	}
	else
		so->base.nbatch = HnswDiskRescore(&so->ds, so->base.batch,
										  so->base.nbatch);
}

/* Re-scored members taken a few at a time, so their reads overlap */
#define HNSW_RESCORE_GROUP	4

/*
 * The next member of the batch in exact order; false when it is used up.
 * Lazily: while the nearest member not yet re-scored could be nearer than
 * the nearest re-scored one (its lower bound is not above that exact
 * distance), re-score the next few by lower bound.
 */
static bool
NextCand(HnswScanOpaque so, OmenCand *out)
{
	if (!so->lazy)
	{
		if (so->pos >= so->base.nbatch)
			return false;
		*out = so->base.batch[so->pos++];
		return true;
	}
	while (so->pos < so->base.nbatch &&
		   (so->readypos >= so->nready ||
			so->base.batch[so->pos].dist <= so->ready[so->readypos].dist))
	{
		int			k = Min(HNSW_RESCORE_GROUP, so->base.nbatch - so->pos);
		OmenCand	group[HNSW_RESCORE_GROUP];
		int			kept;
		int			n;

		memcpy(group, &so->base.batch[so->pos], sizeof(OmenCand) * k);
		so->pos += k;
		kept = HnswDiskRescore(&so->ds, group, k);

		/* merge into ready[readypos ..), both nearest first */
		memmove(so->ready, &so->ready[so->readypos],
				sizeof(OmenCand) * (so->nready - so->readypos));
		so->nready -= so->readypos;
		so->readypos = 0;
		n = so->nready;
		for (int i = 0; i < kept; i++)
		{
			int			j = n++;

			while (j > 0 && so->ready[j - 1].dist > group[i].dist)
			{
				so->ready[j] = so->ready[j - 1];
				j--;
			}
			so->ready[j] = group[i];
		}
		so->nready = n;
	}
	if (so->readypos >= so->nready)
		return false;
	*out = so->ready[so->readypos++];
	return true;
}

/* The j-th member (from 0) NextCand would return after cur, as things are */
static OmenCand *
PeekCand(HnswScanOpaque so, int j)
{
	if (so->lazy)
	{
		if (j < so->nready - so->readypos)
			return &so->ready[so->readypos + j];
		j -= so->nready - so->readypos;
	}
	if (so->pos + j < so->base.nbatch)
		return &so->base.batch[so->pos + j];
	return NULL;
}

/* First call: read the query, descend, run the first batch */
static void
StartScan(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	HnswShared *hs = &so->hs;
	float		margin;

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

	/*
	 * The query's projection first: the pivots need it.  The descent reads
	 * every neighbour (skipping by sketches there strands searches in the
	 * wrong cluster of far-apart ones: see the README); the first batch on
	 * layer 0 skips.
	 */
	HnswDiskSearchUseSketches(&so->ds, (float) hnsw_sketch_margin);
	margin = so->ds.search.estimate_margin;
	so->ds.search.estimate_margin = -1.0f;

	/*
	 * Start from the pivots nearest the query, else walk down from the
	 * entry point.  The entry point can be freed between reading the meta
	 * page and reaching it (VACUUM replaced it meanwhile): read it again.
	 * If the walk still cannot start, the search stays empty and the sweep
	 * returns every live element, in exact order.
	 */
	for (int attempt = 0;
		 !HnswDiskDescendPivots(&so->ds, hnsw_ef_search, HNSW_SCAN_DESCEND) &&
		 !HnswDiskDescend(&so->ds, 0, hnsw_ef_search, HNSW_SCAN_DESCEND);
		 attempt++)
	{
		if (attempt == 3)
			return;
		HnswRefreshEntry(hs);
		if (hs->entry_level < 0)
		{
			so->base.done = true;
			return;
		}
	}
	so->ds.search.estimate_margin = margin;
	OmenGraphSearchRun(&so->ds.search, 0);
	so->base.nbatch = OmenGraphSearchTakeResults(&so->ds.search, &so->base.batch);
	SetupBatch(so, false);
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
			 !HnswPageIsBasis(page) && off <= PageGetMaxOffsetNumber(page); off++)
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

/*
 * OmenPeekTidFn: the k-th valid heap TID after the one being returned, as
 * far as the batch's order is known (a hint for prefetching)
 */
static bool
PeekTid(void *arg, int k, ItemPointer out)
{
	HnswScanOpaque so = (HnswScanOpaque) arg;
	OmenCand   *c = so->hascur ? &so->cur : PeekCand(so, 0);
	int			tidpos = so->hascur ? so->tidpos : 0;	/* past the returned one */
	int			j = so->hascur ? 0 : 1;

	while (c != NULL)
	{
		HnswNode   *node = &so->ds.nodes[c->aux];

		for (; tidpos < HNSW_HEAPTIDS; tidpos++)
		{
			if (ItemPointerIsValid(&node->heaptids[tidpos]) && --k == 0)
			{
				*out = node->heaptids[tidpos];
				return true;
			}
		}
		c = PeekCand(so, j++);
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
		if (so->hascur)
		{
			HnswNode   *node = &so->ds.nodes[so->cur.aux];

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
			so->hascur = false;
		}
		if (NextCand(so, &so->cur))
		{
			so->hascur = true;
			so->tidpos = 0;
			continue;
		}

		/* the batch is used up: find the next one */
		if (so->base.batch)
			pfree(so->base.batch);
		so->base.batch = NULL;
		so->base.nbatch = 0;
		if (OmenGraphSearchNextBatch(&so->ds.search, 0))
		{
			so->base.nbatch = OmenGraphSearchTakeResults(&so->ds.search, &so->base.batch);
			SetupBatch(so, false);
		}
		else if (!so->base.swept)
		{
			so->base.swept = true;
			so->base.nbatch = SweepUnreached(so, scan->indexRelation, &so->base.batch);
			SetupBatch(so, true);
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
				(errmsg_internal("omen_hnsw scan: %lld rows, %llu distances, %llu skipped by sketch, %d elements read",
								 (long long) so->base.returned,
								 (unsigned long long) so->ds.search.ndistances,
								 (unsigned long long) so->ds.search.nskipped,
								 so->ds.nnodes)));
	OmenEndScan(scan);
}

/*
 * diskannscan.c
 *	  omen_diskann: ORDER BY v <op> q scans.
 *
 * The first call runs the beam search on codes with
 * omen.diskann_search_list_size candidates.  The candidates come out in
 * groups of omen.diskann_rerank, best code distance first: each group's
 * full vectors are read (read-ahead issued for all of them first), and the
 * group's rows are returned in ascending full-precision distance (0, the
 * default, makes the whole list one group).  When the
 * executor asks for more, the next group follows; when the list is used
 * up, the same search resumes for the next list of candidates not yet
 * returned (OmenGraphSearchNextBatch), until the graph is exhausted or
 * omen.max_scan_tuples rows have been returned.
 *
 * Order: exact within a group.  Between groups the order is that of the
 * codes, so a later group may hold a row nearer than the last row of the
 * group before it.  With the defaults (list 100, rerank 100) the first
 * group is the whole first list.
 *
 * A live node that no list links to (an insert interrupted by a crash)
 * is still returned: once the graph search has nothing left, the scan
 * sweeps the node pages for live nodes it never reached.
 *
 * No buffer lock or pin is held between calls: the search copies what it
 * needs, a vector read checks that its slot still holds the same heap TID,
 * and MVCC makes a heap TID read before a concurrent VACUUM safe.
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "diskann.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/rel.h"

typedef struct DiskannScanOpaqueData
{
	MemoryContext ctx;			/* everything below lives here */
	bool		started;
	bool		done;
	bool		searching;		/* s is set up */
	bool		swept;			/* the final sweep has been done */
	DiskannShared ds;
	float	   *query;
	DiskannSearch s;
	OmenCand   *batch;			/* candidates, best code distance first */
	int			nbatch;
	int			bpos;			/* next candidate of batch not grouped */
	OmenCand   *group;			/* re-scored, nearest first */
	int			ngroup;
	int			gpos;
	int64		returned;
	int64		reranked;
} DiskannScanOpaqueData;

typedef DiskannScanOpaqueData *DiskannScanOpaque;

/* ambeginscan */
IndexScanDesc
diskannbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	DiskannScanOpaque so = palloc0(sizeof(DiskannScanOpaqueData));

	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "omen_diskann scan",
									ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

/* amrescan */
void
diskannrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
			  int norderbys)
{
	DiskannScanOpaque so = (DiskannScanOpaque) scan->opaque;

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
	so->bpos = 0;
	so->group = NULL;
	so->ngroup = 0;
	so->gpos = 0;
	so->returned = 0;
	so->reranked = 0;
}

/* First call: read the query and run the first list */
static void
StartScan(IndexScanDesc scan)
{
	DiskannScanOpaque so = (DiskannScanOpaque) scan->opaque;
	DiskannShared *ds = &so->ds;

	if (scan->numberOfOrderBys == 0 || scan->orderByData == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an omen_diskann index can only be scanned in ORDER BY distance order")));

	DiskannInitShared(ds, scan->indexRelation);
	so->started = true;
	if (!ItemPointerIsValid(&ds->entry) || ds->dim == 0)
	{
		so->done = true;
		return;
	}

	so->query = palloc0(sizeof(float) * ds->dim);
	if (!(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		Vector	   *q = DatumGetVector(scan->orderByData[0].sk_argument);

		/* a zero query under cosine has no order: walk from zeros */
		if (!OmenPrepareVector(&ds->dist, q, so->query))
			memset(so->query, 0, sizeof(float) * ds->dim);
	}

	DiskannSearchInit(&so->s, ds, so->query, diskann_search_list_size, true);
	so->searching = true;
	if (!DiskannSearchStart(&so->s))
	{
		so->done = true;
		return;
	}
	OmenGraphSearchRun(&so->s.search, 0);
	so->nbatch = OmenGraphSearchTakeResults(&so->s.search, &so->batch);
}

/*
 * The graph search is exhausted: collect the live nodes it never reached,
 * with their code distances, as one last batch sorted nearest first.
 */
static int
SweepUnreached(DiskannScanOpaque so, Relation index, OmenCand **out)
{
	DiskannShared *ds = &so->ds;
	DiskannSearch *s = &so->s;
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
		if (PageIsNew(page) || OmenPageGetOpaque(page)->kind != DISKANN_PAGE_NODE)
		{
			UnlockReleaseBuffer(buf);
			continue;
		}
		for (OffsetNumber off = FirstOffsetNumber;
			 off <= PageGetMaxOffsetNumber(page); off++)
		{
			DiskannNodeTuple ntup = (DiskannNodeTuple) OmenPageGetTuple(page, off);
			DiskannNode node;
			bool		exact;
			float		d;

			if (!ntup || ntup->state != DISKANN_NODE_LIVE)
				continue;
			ItemPointerSet(&node.tid, blkno, off);
			if (OmenVisitedTestAndSet(&s->search.visited, OmenTidToId(&node.tid)))
				continue;
			if (n == max)
			{
				max *= 2;
				c = repalloc_huge(c, sizeof(OmenCand) * max);
			}
			d = DiskannNodeDistance(ds, s, ntup, &exact);
			node.heaptid = ntup->heaptid;
			node.vectid = ntup->vectid;
			node.state = ntup->state;
			node.hasexact = exact;
			node.exact = exact ? d : 0;
			/* no code: order it last among the codes, re-scoring will tell */
			c[n].dist = d < 0 ? INFINITY : d;
			c[n].id = OmenTidToId(&node.tid);
			c[n].aux = DiskannSearchAddNode(s, &node);
			n++;
		}
		UnlockReleaseBuffer(buf);
	}
	OmenSortCands(c, n);
	*out = c;
	return n;
}

/* Re-score the next group of the batch */
static void
NextGroup(DiskannScanOpaque so)
{
	int			group = diskann_rerank > 0 ? diskann_rerank : so->nbatch;
	int			k = Min(group, so->nbatch - so->bpos);
	int			keep = 0;

	if (so->group)
		pfree(so->group);
	so->group = palloc(sizeof(OmenCand) * Max(k, 1));
	memcpy(so->group, so->batch + so->bpos, sizeof(OmenCand) * k);
	so->bpos += k;
	DiskannExactDistances(&so->s, so->group, k);
	so->reranked += k;
	for (int i = 0; i < k; i++)
		if (so->s.nodes[so->group[i].aux].state == DISKANN_NODE_LIVE)
			so->group[keep++] = so->group[i];
	OmenSortCands(so->group, keep);
	so->ngroup = keep;
	so->gpos = 0;
}

/* amgettuple */
bool
diskanngettuple(IndexScanDesc scan, ScanDirection dir)
{
	DiskannScanOpaque so = (DiskannScanOpaque) scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(so->ctx);

	if (!so->started)
		StartScan(scan);

	while (!so->done)
	{
		if (so->gpos < so->ngroup)
		{
			DiskannNode *node = &so->s.nodes[so->group[so->gpos++].aux];

			if (omen_max_scan_tuples >= 0 &&
				so->returned >= omen_max_scan_tuples)
			{
				so->done = true;
				break;
			}
			so->returned++;
			scan->xs_heaptid = node->heaptid;
			scan->xs_recheck = false;
			scan->xs_recheckorderby = false;
			MemoryContextSwitchTo(old);
			return true;
		}
		if (so->bpos < so->nbatch)
		{
			NextGroup(so);
			continue;
		}

		/* the list is used up: find the next one */
		if (so->batch)
			pfree(so->batch);
		so->batch = NULL;
		so->nbatch = 0;
		so->bpos = 0;
		if (OmenGraphSearchNextBatch(&so->s.search, 0))
			so->nbatch = OmenGraphSearchTakeResults(&so->s.search, &so->batch);
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
diskannendscan(IndexScanDesc scan)
{
	DiskannScanOpaque so = (DiskannScanOpaque) scan->opaque;

	if (so->searching)
		ereport(DEBUG1,
				(errmsg_internal("omen_diskann scan: %lld rows, %llu code distances, %lld re-scored, %d nodes read",
								 (long long) so->returned,
								 (unsigned long long) so->s.search.ndistances,
								 (long long) so->reranked,
								 so->s.nnodes)));
	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}

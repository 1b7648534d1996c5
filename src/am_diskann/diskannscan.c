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
	OmenScanBase base;			/* batch: best code distance first */
	DiskannShared ds;
	DiskannSearch s;
	int			bpos;			/* next candidate of batch not grouped */
	OmenCand   *group;			/* re-scored, nearest first */
	int			ngroup;
	int			gpos;
	int64		reranked;
} DiskannScanOpaqueData;

typedef DiskannScanOpaqueData *DiskannScanOpaque;

/* ambeginscan */
IndexScanDesc
diskannbeginscan(Relation index, int nkeys, int norderbys)
{
	return OmenBeginScan(index, nkeys, norderbys, sizeof(DiskannScanOpaqueData),
						 "omen_diskann scan");
}

/* amrescan */
void
diskannrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
			  int norderbys)
{
	OmenRescan(scan, keys, orderbys, sizeof(DiskannScanOpaqueData));
}

/* First call: read the query and run the first list */
static void
StartScan(IndexScanDesc scan)
{
	DiskannScanOpaque so = (DiskannScanOpaque) scan->opaque;
	DiskannShared *ds = &so->ds;

	OmenScanStart(scan, "omen_diskann");

	DiskannInitShared(ds, scan->indexRelation);
	if (!ItemPointerIsValid(&ds->entry) || ds->dim == 0)
	{
		so->base.done = true;
		return;
	}

	OmenScanQuery(scan, &ds->dist, ds->dim);

	DiskannSearchInit(&so->s, ds, so->base.query, diskann_search_list_size, true);
	so->base.searching = true;
	if (!DiskannSearchStart(&so->s))
	{
		so->base.done = true;
		return;
	}
	OmenGraphSearchRun(&so->s.search, 0);
	so->base.nbatch = OmenGraphSearchTakeResults(&so->s.search, &so->base.batch);
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
	int			group = diskann_rerank > 0 ? diskann_rerank : so->base.nbatch;
	int			k = Min(group, so->base.nbatch - so->bpos);
	int			keep = 0;

	if (so->group)
		pfree(so->group);
	so->group = palloc(sizeof(OmenCand) * Max(k, 1));
	memcpy(so->group, so->base.batch + so->bpos, sizeof(OmenCand) * k);
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

/* OmenPeekTidFn: the heap TID k rows after the one being returned */
static bool
PeekTid(void *arg, int k, ItemPointer out)
{
	DiskannScanOpaque so = (DiskannScanOpaque) arg;
	int			i = so->gpos + k - 1;	/* gpos is past the returned one */

	if (i >= so->ngroup)
		return false;
	*out = so->s.nodes[so->group[i].aux].heaptid;
	return true;
}

/* amgettuple */
bool
diskanngettuple(IndexScanDesc scan, ScanDirection dir)
{
	DiskannScanOpaque so = (DiskannScanOpaque) scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(so->base.ctx);

	if (!so->base.started)
		StartScan(scan);

	while (!so->base.done)
	{
		if (so->gpos < so->ngroup)
		{
			DiskannNode *node = &so->s.nodes[so->group[so->gpos++].aux];

			if (omen_max_scan_tuples >= 0 &&
				so->base.returned >= omen_max_scan_tuples)
			{
				so->base.done = true;
				break;
			}
			OmenScanHeapAhead(scan, PeekTid, so);
			so->base.returned++;
			scan->xs_heaptid = node->heaptid;
			scan->xs_recheck = false;
			scan->xs_recheckorderby = false;
			MemoryContextSwitchTo(old);
			return true;
		}
		if (so->bpos < so->base.nbatch)
		{
			NextGroup(so);
			continue;
		}

		/* the list is used up: find the next one */
		if (so->base.batch)
			pfree(so->base.batch);
		so->base.batch = NULL;
		so->base.nbatch = 0;
		so->bpos = 0;
		if (OmenGraphSearchNextBatch(&so->s.search, 0))
			so->base.nbatch = OmenGraphSearchTakeResults(&so->s.search, &so->base.batch);
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
diskannendscan(IndexScanDesc scan)
{
	DiskannScanOpaque so = (DiskannScanOpaque) scan->opaque;

	if (so->base.searching)
		ereport(DEBUG1,
				(errmsg_internal("omen_diskann scan: %lld rows, %llu code distances, %lld re-scored, %d nodes read",
								 (long long) so->base.returned,
								 (unsigned long long) so->s.search.ndistances,
								 (long long) so->reranked,
								 so->s.nnodes)));
	OmenEndScan(scan);
}

/*
 * diskannvacuum.c
 *	  omen_diskann: VACUUM, with the IP-DiskANN in-place delete
 *	  (ALGORITHMS.md section 3, Delete).
 *
 * Pass 1 reads every node page and collects the live nodes whose heap row
 * is dead, and deleted nodes whose repair an earlier VACUUM did not finish
 * (their list is not empty yet).  It also records which node pages hold
 * free slots in the free space map.
 *
 * Pass 2 deletes each collected node p in place: read its vector, mark it
 * deleted (searches walk through it, never return it), search the graph
 * with its vector (L_d = 128), take the live nodes that list p as the
 * approximate in-neighbours, the 50 nearest live nodes found as
 * candidates, and give each in-neighbour the 3 candidates nearest to it,
 * and each of p's out-neighbours an edge from the 3 candidates nearest to
 * it.  Lists that overflow are pruned.  Finally p's own list is emptied:
 * an empty list marks the repair as done.  If p was the entry point, the
 * nearest live candidate replaces it.  No lock is held between these
 * steps, so the pass can be cancelled at any point and run again.
 *
 * Pass 3, the sweep, runs when deleted nodes exceed 20% of all nodes: every
 * edge to a repaired deleted node (or to a free slot, left by a sweep that a
 * crash cut short) is removed from every list (no distance work), and those
 * nodes become free slots that inserts reuse, node and vector slot
 * together.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "commands/vacuum.h"
#include "diskann.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/indexfsm.h"
#include "utils/memutils.h"
#include "utils/rel.h"

typedef struct DiskannVacState
{
	Relation	index;
	DiskannShared ds;
	BufferAccessStrategy strategy;
	IndexBulkDeleteCallback callback;
	void	   *callback_state;
	IndexBulkDeleteResult *stats;
	ItemPointerData *todo;		/* nodes to delete or finish deleting */
	int			ntodo;
	int			maxtodo;
	int64		live;
	int64		deleted;		/* deleted, not yet swept */
	int64		uncoded;
	ItemPointerData anylive;	/* some live node, for a new entry point */
	MemoryContext tmpCtx;
} DiskannVacState;

/* Pass 1: count, collect dead nodes, record free slots */
static void
ScanNodes(DiskannVacState *vs)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(vs->index);

	ItemPointerSetInvalid(&vs->anylive);
	for (BlockNumber blkno = 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;
		int			nfree = 0;

		vacuum_delay_point();
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blkno, RBM_NORMAL,
								 vs->strategy);
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
			DiskannNodeTuple t = (DiskannNodeTuple) OmenPageGetTuple(page, off);
			bool		collect = false;

			if (!t)
				continue;
			if (t->state == DISKANN_NODE_FREE)
			{
				nfree++;
				continue;
			}
			if (t->state == DISKANN_NODE_LIVE)
			{
				if (vs->callback && vs->callback(&t->heaptid, vs->callback_state))
				{
					collect = true;
					vs->stats->tuples_removed++;
				}
				else
				{
					vs->live++;
					if (!ItemPointerIsValid(&vs->anylive))
						ItemPointerSet(&vs->anylive, blkno, off);
				}
			}
			else if (t->state == DISKANN_NODE_DELETED)
			{
				vs->deleted++;
				collect = t->count > 0;	/* an unfinished repair */
			}
			if (vs->ds.trained && vs->ds.bits > 0 && !(t->flags & DISKANN_NODE_CODED))
				vs->uncoded++;
			if (collect)
			{
				if (vs->ntodo == vs->maxtodo)
				{
					vs->maxtodo = Max(1024, vs->maxtodo * 2);
					vs->todo = vs->todo
						? repalloc_huge(vs->todo, sizeof(ItemPointerData) * vs->maxtodo)
						: palloc_extended(sizeof(ItemPointerData) * vs->maxtodo,
										  MCXT_ALLOC_HUGE);
				}
				ItemPointerSet(&vs->todo[vs->ntodo], blkno, off);
				vs->ntodo++;
			}
		}
		UnlockReleaseBuffer(buf);
		RecordPageWithFreeSpace(vs->index, blkno, nfree > 0 ? BLCKSZ / 2 : 0);
	}
}

/* Set a node's state and/or empty its list, WAL-logged */
static bool
SetNodeState(DiskannVacState *vs, ItemPointer tid, int state, bool clearlist)
{
	Buffer		buf = ReadBuffer(vs->index, ItemPointerGetBlockNumber(tid));
	OmenXLog	x;
	DiskannNodeTuple t;
	bool		ok;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	t = (DiskannNodeTuple) OmenPageGetTuple(BufferGetPage(buf),
											ItemPointerGetOffsetNumber(tid));
	ok = t != NULL && t->state != DISKANN_NODE_FREE;
	if (ok)
	{
		OmenXLogStart(&x, vs->index);
		t = (DiskannNodeTuple)
			OmenPageGetTuple(OmenXLogRegister(&x, buf, false),
							 ItemPointerGetOffsetNumber(tid));
		if (state >= 0)
			t->state = state;
		if (clearlist)
		{
			for (int i = 0; i < vs->ds.cap; i++)
				ItemPointerSetInvalid(&t->neighbors[i]);
			t->count = 0;
		}
		OmenXLogFinish(&x);
	}
	UnlockReleaseBuffer(buf);
	return ok;
}

/* Make tid the entry point if the entry point is old */
static void
ReplaceEntry(DiskannVacState *vs, ItemPointer old, ItemPointer tid)
{
	Buffer		buf = ReadBuffer(vs->index, DISKANN_METAPAGE_BLKNO);
	DiskannMetaPage meta;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	meta = DiskannPageGetMeta(BufferGetPage(buf));
	if (ItemPointerEquals(&meta->entry, old))
	{
		OmenXLog	x;

		OmenXLogStart(&x, vs->index);
		meta = DiskannPageGetMeta(OmenXLogRegister(&x, buf, false));
		if (tid)
			meta->entry = *tid;
		else
			ItemPointerSetInvalid(&meta->entry);
		OmenXLogFinish(&x);
	}
	UnlockReleaseBuffer(buf);
}

/* Additions planned for one node */
typedef struct Touched
{
	ItemPointerData tid;
	ItemPointerData add[DISKANN_DELETE_LINKS * 8];
	int			nadd;
} Touched;

static Touched *
Touch(Touched *t, int *n, ItemPointer tid)
{
	for (int i = 0; i < *n; i++)
		if (ItemPointerEquals(&t[i].tid, tid))
			return &t[i];
	t[*n].tid = *tid;
	t[*n].nadd = 0;
	return &t[(*n)++];
}

static void
AddEdge(Touched *t, ItemPointer to)
{
	for (int i = 0; i < t->nadd; i++)
		if (ItemPointerEquals(&t->add[i], to))
			return;
	if (t->nadd < (int) lengthof(t->add))
		t->add[t->nadd++] = *to;
}

/* The c candidates nearest to vec (skipping self); indexes into out */
static int
Nearest(DiskannShared *ds, const float *vec, ItemPointer self,
		ItemPointerData *ctid, float **cvec, int ncand, int c, int *out)
{
	OmenCand   *d = palloc(sizeof(OmenCand) * Max(ncand, 1));
	int			m = 0;

	for (int i = 0; i < ncand; i++)
	{
		if (ItemPointerEquals(&ctid[i], self))
			continue;
		d[m].dist = OmenDistanceCalc(&ds->dist, vec, cvec[i]);
		d[m].id = i;
		d[m].aux = 0;
		m++;
	}
	OmenSortCands(d, m);
	m = Min(m, c);
	for (int i = 0; i < m; i++)
		out[i] = (int) d[i].id;
	pfree(d);
	return m;
}

/* Pass 2 for one node: the IP-DiskANN delete */
static void
DeleteNode(DiskannVacState *vs, ItemPointer p)
{
	DiskannShared *ds = &vs->ds;
	float	   *pvec = palloc(sizeof(float) * ds->dim);
	ItemPointerData *out = palloc(sizeof(ItemPointerData) * ds->cap);
	int			nout;
	uint8		state;
	DiskannSearch s;
	uint64		pid = OmenTidToId(p);
	OmenCand   *pool;
	int			npool = 0;
	int			ncand = 0;
	ItemPointerData *ctid;
	float	  **cvec;
	Touched    *touched;
	int			ntouched = 0;
	int			maxtouched;
	float	   *zvec = palloc(sizeof(float) * ds->dim);
	int			near[DISKANN_DELETE_LINKS];
	DiskannMetaPageData meta;

	/* the vector and out-list, before anything changes */
	if (!DiskannReadNodeVector(ds, p, pvec, &state))
		return;
	nout = DiskannReadNeighbors(ds, p, out, &state);
	if (state == DISKANN_NODE_FREE)
		return;
	if (state == DISKANN_NODE_LIVE)
	{
		if (!SetNodeState(vs, p, DISKANN_NODE_DELETED, false))
			return;
		vs->deleted++;			/* an unfinished repair was counted by pass 1 */
	}

	/* search with p's vector, remembering every expanded node's list */
	DiskannSearchInit(&s, ds, pvec, DISKANN_DELETE_LIST, false);
	s.record_lists = true;
	s.search.record_expanded = true;
	if (DiskannSearchStart(&s))
		OmenGraphSearchRun(&s.search, 0);

	maxtouched = s.search.nexpanded + nout * DISKANN_DELETE_LINKS + 1;
	touched = palloc(sizeof(Touched) * maxtouched);

	/* in-neighbours: live expanded nodes whose list holds p */
	for (int i = 0; i < s.search.nexpanded; i++)
	{
		uint32		aux = s.search.expanded[i].aux;
		DiskannNode *z = &s.nodes[aux];

		if (z->state != DISKANN_NODE_LIVE || (int) aux >= s.maxlists)
			continue;
		for (int k = 0; k < s.listcounts[aux]; k++)
			if (s.lists[(Size) aux * ds->cap + k] == pid)
			{
				Touch(touched, &ntouched, &z->tid);
				break;
			}
	}

	/* candidates: the nearest live nodes found, re-scored exactly */
	pool = palloc(sizeof(OmenCand) * (s.search.nexpanded + s.search.result.count + 1));
	for (int i = 0; i < s.search.nexpanded; i++)
		pool[npool++] = s.search.expanded[i];
	for (int i = 0; i < s.search.result.count; i++)
		pool[npool++] = s.search.result.items[i];
	for (int i = 0; i < npool; i++)
		pool[i].id &= ~OMEN_CAND_FLAGS;
	{
		int			keep = 0;

		OmenSortCands(pool, npool);
		for (int i = 0; i < npool; i++)
		{
			bool		dup = false;

			if (s.nodes[pool[i].aux].state != DISKANN_NODE_LIVE || pool[i].id == pid)
				continue;
			for (int k = 0; k < keep && !dup; k++)
				dup = pool[k].id == pool[i].id;
			if (!dup)
				pool[keep++] = pool[i];
		}
		npool = Min(keep, 2 * DISKANN_DELETE_CANDS);
	}
	DiskannExactDistances(&s, pool, npool);
	OmenSortCands(pool, npool);

	ctid = palloc(sizeof(ItemPointerData) * DISKANN_DELETE_CANDS);
	cvec = palloc(sizeof(float *) * DISKANN_DELETE_CANDS);
	for (int i = 0; i < npool && ncand < DISKANN_DELETE_CANDS; i++)
	{
		DiskannNode *node = &s.nodes[pool[i].aux];
		float	   *v;

		if (node->state != DISKANN_NODE_LIVE || isinf(pool[i].dist))
			continue;
		v = palloc(sizeof(float) * ds->dim);
		if (!DiskannReadNodeVector(ds, &node->tid, v, &state) ||
			state != DISKANN_NODE_LIVE)
		{
			pfree(v);
			continue;
		}
		ctid[ncand] = node->tid;
		cvec[ncand] = v;
		ncand++;
	}

	/* each in-neighbour gets the c candidates nearest to it */
	{
		int			nin = ntouched;

		for (int i = 0; i < nin; i++)
		{
			int			m;

			if (!DiskannReadNodeVector(ds, &touched[i].tid, zvec, &state))
				continue;
			m = Nearest(ds, zvec, &touched[i].tid, ctid, cvec, ncand,
						DISKANN_DELETE_LINKS, near);
			for (int k = 0; k < m; k++)
				AddEdge(&touched[i], &ctid[near[k]]);
		}
	}

	/* each out-neighbour gets edges from the c candidates nearest to it */
	for (int i = 0; i < nout; i++)
	{
		int			m;

		if (!DiskannReadNodeVector(ds, &out[i], zvec, &state) ||
			state != DISKANN_NODE_LIVE)
			continue;
		m = Nearest(ds, zvec, &out[i], ctid, cvec, ncand,
					DISKANN_DELETE_LINKS, near);
		for (int k = 0; k < m; k++)
			AddEdge(Touch(touched, &ntouched, &ctid[near[k]]), &out[i]);
	}

	/* apply, one node at a time; p leaves every touched list */
	for (int i = 0; i < ntouched; i++)
	{
		CHECK_FOR_INTERRUPTS();
		DiskannAddNeighbors(ds, &touched[i].tid, touched[i].add,
							touched[i].nadd, p);
	}

	/* the entry point must stay live */
	DiskannReadMeta(vs->index, &meta);
	if (ItemPointerEquals(&meta.entry, p))
	{
		if (ncand > 0)
			ReplaceEntry(vs, p, &ctid[0]);
		else if (ItemPointerIsValid(&vs->anylive))
			ReplaceEntry(vs, p, &vs->anylive);
		else
			ReplaceEntry(vs, p, NULL);
		DiskannReadMeta(vs->index, &meta);
		ds->entry = meta.entry;
	}

	/* done: an empty list says so */
	SetNodeState(vs, p, -1, true);
	DiskannSearchFree(&s);
}

/* Pass 3: remove edges to repaired deleted nodes and free their slots */
static void
Sweep(DiskannVacState *vs)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(vs->index);
	OmenVisited gone;
	int64		nfreed = 0;

	OmenVisitedInit(&gone, (int) Min(vs->deleted + 16, INT_MAX / 4));
	for (BlockNumber blkno = 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;

		vacuum_delay_point();
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blkno, RBM_NORMAL,
								 vs->strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (!PageIsNew(page) && OmenPageGetOpaque(page)->kind == DISKANN_PAGE_NODE)
		{
			for (OffsetNumber off = FirstOffsetNumber;
				 off <= PageGetMaxOffsetNumber(page); off++)
			{
				DiskannNodeTuple t = (DiskannNodeTuple) OmenPageGetTuple(page, off);
				ItemPointerData tid;

				/*
				 * Repaired deleted nodes, and free slots: an edge to a free
				 * slot is left from a sweep cut short (a crash), and was
				 * meant for the deleted node that slot held.
				 */
				if (t && ((t->state == DISKANN_NODE_DELETED && t->count == 0) ||
						  t->state == DISKANN_NODE_FREE))
				{
					ItemPointerSet(&tid, blkno, off);
					OmenVisitedTestAndSet(&gone, OmenTidToId(&tid));
				}
			}
		}
		UnlockReleaseBuffer(buf);
	}
	if (gone.count == 0)
	{
		OmenVisitedFree(&gone);
		return;
	}

	for (BlockNumber blkno = 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;
		OmenXLog	x;
		bool		started = false;
		int			nfree = 0;

		vacuum_delay_point();
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blkno, RBM_NORMAL,
								 vs->strategy);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		if (PageIsNew(page) || OmenPageGetOpaque(page)->kind != DISKANN_PAGE_NODE)
		{
			UnlockReleaseBuffer(buf);
			continue;
		}
		for (OffsetNumber off = FirstOffsetNumber;
			 off <= PageGetMaxOffsetNumber(page); off++)
		{
			DiskannNodeTuple t = (DiskannNodeTuple) OmenPageGetTuple(page, off);
			ItemPointerData tid;
			bool		freeit;
			int			keep = 0;
			bool		drop = false;

			if (!t || t->state == DISKANN_NODE_FREE)
			{
				if (t)
					nfree++;
				continue;
			}
			ItemPointerSet(&tid, blkno, off);
			freeit = t->state == DISKANN_NODE_DELETED && t->count == 0 &&
				OmenVisitedContains(&gone, OmenTidToId(&tid));
			for (int i = 0; i < t->count && !drop; i++)
				drop = OmenVisitedContains(&gone, OmenTidToId(&t->neighbors[i]));
			if (!freeit && !drop)
				continue;
			if (!started)
			{
				OmenXLogStart(&x, vs->index);
				page = OmenXLogRegister(&x, buf, false);
				started = true;
				t = (DiskannNodeTuple) OmenPageGetTuple(page, off);
			}
			if (freeit)
			{
				t->state = DISKANN_NODE_FREE;
				t->flags = 0;
				ItemPointerSetInvalid(&t->heaptid);
				nfree++;
				nfreed++;
				continue;
			}
			for (int i = 0; i < t->count; i++)
				if (!OmenVisitedContains(&gone, OmenTidToId(&t->neighbors[i])))
					t->neighbors[keep++] = t->neighbors[i];
			for (int i = keep; i < vs->ds.cap; i++)
				ItemPointerSetInvalid(&t->neighbors[i]);
			t->count = keep;
		}
		if (started)
			OmenXLogFinish(&x);
		UnlockReleaseBuffer(buf);
		RecordPageWithFreeSpace(vs->index, blkno, nfree > 0 ? BLCKSZ / 2 : 0);
	}
	OmenVisitedFree(&gone);
	vs->deleted -= nfreed;
}

/* Write the counts to the meta page */
static void
UpdateCounts(DiskannVacState *vs)
{
	Buffer		buf = ReadBuffer(vs->index, DISKANN_METAPAGE_BLKNO);
	OmenXLog	x;
	DiskannMetaPage meta;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	OmenXLogStart(&x, vs->index);
	meta = DiskannPageGetMeta(OmenXLogRegister(&x, buf, false));
	meta->nodes = vs->live + vs->deleted;
	meta->deleted = vs->deleted;
	if (meta->trained)
		meta->uncoded = 0;
	OmenXLogFinish(&x);
	UnlockReleaseBuffer(buf);
}

static void
InitVacState(DiskannVacState *vs, IndexVacuumInfo *info,
			 IndexBulkDeleteResult *stats, IndexBulkDeleteCallback callback,
			 void *callback_state)
{
	memset(vs, 0, sizeof(*vs));
	vs->index = info->index;
	vs->strategy = info->strategy;
	vs->callback = callback;
	vs->callback_state = callback_state;
	vs->stats = stats;
	DiskannInitShared(&vs->ds, info->index);
}

/* Passes 1 to 3; callback NULL for a VACUUM with nothing to delete */
static void
VacuumIndex(DiskannVacState *vs)
{
	ScanNodes(vs);

	for (int i = 0; i < vs->ntodo; i++)
	{
		MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext,
												  "omen_diskann delete",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(ctx);

		vacuum_delay_point();
		DeleteNode(vs, &vs->todo[i]);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(ctx);
	}

	if (vs->deleted > 0 &&
		vs->deleted > DISKANN_SWEEP_FRACTION * (vs->live + vs->deleted))
		Sweep(vs);
	if (vs->uncoded > 0)
		DiskannCodeUncoded(&vs->ds);
	UpdateCounts(vs);
	IndexFreeSpaceMapVacuum(vs->index);
}

/* ambulkdelete */
IndexBulkDeleteResult *
diskannbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
				  IndexBulkDeleteCallback callback, void *callback_state)
{
	DiskannVacState vs;

	if (stats == NULL)
		stats = (IndexBulkDeleteResult *) palloc0(sizeof(IndexBulkDeleteResult));
	InitVacState(&vs, info, stats, callback, callback_state);
	VacuumIndex(&vs);
	stats->num_pages = RelationGetNumberOfBlocks(info->index);
	stats->num_index_tuples = vs.live;
	stats->estimated_count = false;
	return stats;
}

/* amvacuumcleanup */
IndexBulkDeleteResult *
diskannvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	if (info->analyze_only)
		return stats;

	if (stats == NULL)
	{
		DiskannVacState vs;

		/* no bulkdelete ran: count, record free slots, sweep if due */
		stats = (IndexBulkDeleteResult *) palloc0(sizeof(IndexBulkDeleteResult));
		InitVacState(&vs, info, stats, NULL, NULL);
		VacuumIndex(&vs);
		stats->num_index_tuples = vs.live;
	}
	DiskannMaybeTrain(info->index);
	stats->num_pages = RelationGetNumberOfBlocks(info->index);
	stats->estimated_count = false;
	return stats;
}

/*
 * hnswvacuum.c
 *	  omen_hnsw: VACUUM removes dead heap TIDs and repairs the graph.
 *
 * Pass 1 drops dead heap TIDs from every element; an element left with none
 *        becomes DELETED: searches still walk through it but never return
 *        it, and its vector and neighbour lists stay for the repair.
 * Pass 2 repairs each live element whose list points at a DELETED one: the
 *        new list is RobustPrune over its live neighbours, the live
 *        neighbours of the deleted ones (the nodes a search would have
 *        reached through them) and what a search of that layer from the
 *        element finds (ef_construction), followed by the live neighbours
 *        it had while there is room, so a repair replaces what was
 *        deleted without thinning the list.  An entry point that is
 *        deleted, or links to nothing live, is replaced by a linked live
 *        element of the highest level.
 * Pass 2b finds live elements that no live element links to any more on
 *        layer 0 (their in-edges went through deleted nodes and the repair
 *        pruned them away) and links each into the lists of its three
 *        nearest live neighbours, as IP-DiskANN does for the out-neighbours
 *        of a deleted node; without this they could never be found again.
 *        A live element that links to nothing live first gets a list from
 *        a search of layer 0.
 * Pass 3 frees the DELETED elements: both tuples are removed from their
 *        pages (line pointers stay, so no other TID moves) and the space is
 *        recorded in the free space map, where inserts look first.
 *
 * Every pass works from page contents alone, so an interrupted VACUUM
 * leaves DELETED elements that the next one repairs and frees.  Each page
 * change is its own generic WAL record, with one page locked at a time.
 */
#include "postgres.h"

#include "access/genam.h"
#include "commands/vacuum.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/indexfsm.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* how many live elements of the highest levels pass 1 keeps as entry points */
#define HNSW_ENTRY_CANDIDATES	32

typedef struct VacuumState
{
	IndexVacuumInfo *info;
	IndexBulkDeleteResult *stats;
	HnswShared	hs;
	OmenVisited deleted;		/* ids of DELETED elements */
	ItemPointerData *deltids;	/* the same, as a list */
	int			ndeleted;
	int			maxdeleted;
	/* live elements with the highest levels: entry point candidates */
	ItemPointerData ecand[HNSW_ENTRY_CANDIDATES];
	int			eclevel[HNSW_ENTRY_CANDIDATES];
	int			necand;
	MemoryContext tmpCtx;
} VacuumState;

/* Remember a live element as an entry point candidate if its level is high */
static void
NoteEntryCandidate(VacuumState *vs, ItemPointer tid, int level)
{
	int			low = 0;

	if (vs->necand < HNSW_ENTRY_CANDIDATES)
	{
		vs->ecand[vs->necand] = *tid;
		vs->eclevel[vs->necand++] = level;
		return;
	}
	for (int i = 1; i < vs->necand; i++)
		if (vs->eclevel[i] < vs->eclevel[low])
			low = i;
	if (level > vs->eclevel[low])
	{
		/* keep page order among the rest: shift the later ones down */
		memmove(&vs->ecand[low], &vs->ecand[low + 1],
				sizeof(ItemPointerData) * (vs->necand - low - 1));
		memmove(&vs->eclevel[low], &vs->eclevel[low + 1],
				sizeof(int) * (vs->necand - low - 1));
		vs->ecand[vs->necand - 1] = *tid;
		vs->eclevel[vs->necand - 1] = level;
	}
}

/* Pass 1 on one page: drop dead heap TIDs, mark emptied elements DELETED */
static void
RemoveDeadTids(VacuumState *vs, BlockNumber blkno,
			   IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation	index = vs->hs.index;
	Buffer		buf;
	Page		page;
	OmenXLog	x;
	Page		wpage = NULL;

	buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL,
							 vs->info->strategy);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	if (PageIsNew(page) ||
		OmenPageGetOpaque(page)->kind == HNSW_PAGE_BASIS)
	{
		/*
		 * New: being added by an insert right now, or left by a crash, and
		 * empty.  Basis: the edge sketches' basis, no tuples.
		 */
		UnlockReleaseBuffer(buf);
		return;
	}
	OmenCheckPage(index, buf, page, HNSW_PAGE_DATA);

	for (OffsetNumber off = FirstOffsetNumber;
		 off <= PageGetMaxOffsetNumber(page); off++)
	{
		ItemId		iid = PageGetItemId(page, off);
		HnswElementTuple etup;
		ItemPointerData tid;
		int			nlive = 0;
		bool		anydead = false;

		if (!ItemIdIsNormal(iid))
			continue;
		etup = (HnswElementTuple) PageGetItem(page, iid);
		if (etup->type != HNSW_TUPLE_ELEMENT ||
			etup->state == HNSW_ELEMENT_FREE)
			continue;
		ItemPointerSet(&tid, blkno, off);

		if (etup->state == HNSW_ELEMENT_LIVE)
		{
			for (int i = 0; i < HNSW_HEAPTIDS; i++)
			{
				if (!ItemPointerIsValid(&etup->heaptids[i]))
					continue;
				if (callback(&etup->heaptids[i], callback_state))
					anydead = true;
				else
					nlive++;
			}
		}

		if (anydead)
		{
			HnswElementTuple wtup;
			int			k = 0;
			ItemPointerData keep[HNSW_HEAPTIDS];

			if (wpage == NULL)
			{
				OmenXLogStart(&x, index);
				wpage = OmenXLogRegister(&x, buf, false);
			}
			wtup = (HnswElementTuple) PageGetItem(wpage, PageGetItemId(wpage, off));
			for (int i = 0; i < HNSW_HEAPTIDS; i++)
			{
				if (!ItemPointerIsValid(&wtup->heaptids[i]))
					continue;
				if (callback(&wtup->heaptids[i], callback_state))
					vs->stats->tuples_removed++;
				else
					keep[k++] = wtup->heaptids[i];
			}
			for (int i = 0; i < HNSW_HEAPTIDS; i++)
			{
				if (i < k)
					wtup->heaptids[i] = keep[i];
				else
					ItemPointerSetInvalid(&wtup->heaptids[i]);
			}
			if (k == 0)
				wtup->state = HNSW_ELEMENT_DELETED;
			nlive = k;
		}

		vs->stats->num_index_tuples += nlive;
		if (nlive == 0)
		{
			/* DELETED now or from an earlier, interrupted VACUUM */
			if (vs->ndeleted == vs->maxdeleted)
			{
				vs->maxdeleted *= 2;
				vs->deltids = repalloc_huge(vs->deltids,
											sizeof(ItemPointerData) * vs->maxdeleted);
			}
			vs->deltids[vs->ndeleted++] = tid;
			OmenVisitedTestAndSet(&vs->deleted, OmenTidToId(&tid));
		}
		else
			NoteEntryCandidate(vs, &tid, etup->level);
	}

	if (wpage)
		OmenXLogFinish(&x);

	/*
	 * The free space map is not WAL-logged: record every page's free space
	 * each VACUUM, not just where this one freed tuples, so space freed
	 * before a crash is found again (nbtree does the same).
	 */
	RecordPageWithFreeSpace(index, blkno, PageGetFreeSpace(page));
	UnlockReleaseBuffer(buf);
}

/* Whether the element at tid is DELETED (as found by pass 1) */
static inline bool
IsDeleted(VacuumState *vs, ItemPointer tid)
{
	return OmenVisitedContains(&vs->deleted, OmenTidToId(tid));
}

/*
 * Append to cand what a search of `layer` for evec finds: live elements
 * other than etid, as many as a list holds.  Returns the new count.
 */
static int
SearchLayerCands(VacuumState *vs, ItemPointer etid, const float *evec,
				 int layer, ItemPointerData *cand, int ncand)
{
	HnswShared *hs = &vs->hs;
	int			cap = HnswLayerCapacity(layer, hs->m);
	HnswDiskSearch ds;
	OmenCand   *found;
	int			nfound;

	HnswDiskSearchInit(&ds, hs, evec, cap, false);
	if (HnswDiskDescend(&ds, layer, cap, HNSW_INSERT_DESCEND))
	{
		OmenGraphSearchRun(&ds.search, layer);
		nfound = OmenGraphSearchTakeResults(&ds.search, &found);
		for (int i = 0; i < nfound; i++)
		{
			ItemPointer t = &ds.nodes[found[i].aux].tid;

			if (!ItemPointerEquals(t, etid) && !IsDeleted(vs, t))
				cand[ncand++] = *t;
		}
	}
	HnswDiskSearchFree(&ds);
	return ncand;
}

/*
 * Choose up to cap neighbours for the element with vector evec among
 * cand[0..ncand) (duplicates and elements no longer live are skipped):
 * RobustPrune over their exact distances, nearest first.  Writes the
 * chosen TIDs to list and their distances to dists (if not NULL);
 * returns how many.
 */
static int
PruneCands(VacuumState *vs, const float *evec, ItemPointerData *cand,
		   int ncand, int cap, ItemPointerData *list, float *dists)
{
	HnswShared *hs = &vs->hs;
	OmenCand   *cands = palloc(sizeof(OmenCand) * Max(ncand, 1));
	float	  **vecs = palloc(sizeof(float *) * Max(ncand, 1));
	ItemPointerData *tids = palloc(sizeof(ItemPointerData) * Max(ncand, 1));
	int		   *chosen = palloc(sizeof(int) * Max(cap, 1));
	int			n = 0;
	int			nchosen;
	OmenVisited seen;

	OmenVisitedInit(&seen, ncand + 1);
	for (int i = 0; i < ncand; i++)
	{
		if (OmenVisitedTestAndSet(&seen, OmenTidToId(&cand[i])))
			continue;
		vecs[n] = palloc(sizeof(float) * hs->dim);
		if (!HnswReadElementVector(hs, &cand[i], vecs[n], NULL))
			continue;
		tids[n] = cand[i];
		cands[n].dist = OmenDistanceCalc(&hs->dist, evec, vecs[n]);
		cands[n].id = n;
		cands[n].aux = n;
		n++;
	}
	OmenVisitedFree(&seen);
	nchosen = OmenRobustPruneVectors(cands, n, vecs, &hs->dist, hs->alpha, cap,
									 chosen);
	for (int i = 0; i < nchosen; i++)
	{
		list[i] = tids[cands[chosen[i]].id];
		if (dists)
			dists[i] = cands[chosen[i]].dist;
	}
	return nchosen;
}

/* Pass 2 for one live element: rebuild each layer list that names a deleted node */
static void
RepairElement(VacuumState *vs, ItemPointer etid, HnswNode *node,
			  const float *evec)
{
	HnswShared *hs = &vs->hs;

	for (int layer = 0; layer <= node->level; layer++)
	{
		int			cap = HnswLayerCapacity(layer, hs->m);
		ItemPointerData slots[HNSW_MAX_M * 2];
		ItemPointerData list[HNSW_MAX_M * 2];
		ItemPointerData *cand;
		int			ncand = 0;
		int			nchosen;
		bool		touched = false;

		/* the whole slot range, as the write will check it */
		if (!HnswReadLayerSlots(hs, node, layer, slots))
			return;

		/*
		 * at most the list itself, each deleted member's list, and what a
		 * search from this element finds
		 */
		cand = palloc(sizeof(ItemPointerData) *
					  (cap * (cap + 1) + cap));

		for (int i = 0; i < cap; i++)
		{
			if (!ItemPointerIsValid(&slots[i]))
				continue;
			if (IsDeleted(vs, &slots[i]))
			{
				HnswNode	dnode;
				ItemPointerData two[HNSW_MAX_M * 2];
				int			n2;

				touched = true;
				if (!HnswReadElementNode(hs, &slots[i], &dnode) ||
					layer > dnode.level)
					continue;
				n2 = HnswReadNeighborLayer(hs, &dnode, layer, two);
				for (int j = 0; j < n2; j++)
				{
					if (ItemPointerEquals(&two[j], etid) || IsDeleted(vs, &two[j]))
						continue;
					cand[ncand++] = two[j];
				}
			}
			else
				cand[ncand++] = slots[i];
		}
		if (!touched)
			continue;

		/*
		 * The deleted members' own lists are a small pool, and pruning it
		 * again and again thins the graph (a Fashion-MNIST stream of ten
		 * rounds of 10% left layer 0 at 6.9 neighbours against 11.3 for a
		 * fresh build).  So also search this layer from the element, as an
		 * insert does, and offer what the search finds.  The search is as
		 * wide as the list (2m at layer 0): with the list's live members and
		 * the deleted members' lists also offered, a search of width
		 * ef_construction kept the same recall over ten rounds of 10% churn
		 * on Fashion-MNIST (0.993-0.995 against 0.991-0.994, each at its
		 * fresh build's level) for 60% more VACUUM time (14-18 s a round
		 * against 8-10 s).
		 */
		ncand = SearchLayerCands(vs, etid, evec, layer, cand, ncand);
		nchosen = PruneCands(vs, evec, cand, ncand, cap, list, NULL);

		/*
		 * Keep the live neighbours the list had, after the new choice, while
		 * there is room: the repair replaces what was deleted, it does not
		 * thin what was there (inserts add back-links the same way, without
		 * pruning a list that is not full).
		 */
		for (int i = 0; i < cap && nchosen < cap; i++)
		{
			bool		have = false;

			if (!ItemPointerIsValid(&slots[i]) || IsDeleted(vs, &slots[i]))
				continue;
			for (int k = 0; k < nchosen && !have; k++)
				have = ItemPointerEquals(&list[k], &slots[i]);
			if (!have)
				list[nchosen++] = slots[i];
		}
		/* a concurrent insert changed the list: leave it to next time */
		(void) HnswWriteNeighborLayer(hs, node, layer, slots,
									  list, nchosen, evec, NULL, NULL);
	}
}

typedef void (*LiveElementFn) (VacuumState *vs, ItemPointer etid,
							   HnswNode *node, void *arg);

/*
 * Call fn for every live element of the index, reading each page's line
 * pointer count under a share lock and each element with its own (fn may
 * lock other pages).  fn runs in tmpCtx, reset after each element.
 */
static void
ForEachLiveElement(VacuumState *vs, LiveElementFn fn, void *arg)
{
	HnswShared *hs = &vs->hs;
	BlockNumber nblocks = RelationGetNumberOfBlocks(hs->index);

	for (BlockNumber blkno = 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		OffsetNumber maxoff;

		vacuum_delay_point();
		buf = ReadBufferExtended(hs->index, MAIN_FORKNUM, blkno, RBM_NORMAL,
								 vs->info->strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		maxoff = HnswPageIsBasis(BufferGetPage(buf)) ? InvalidOffsetNumber :
			PageGetMaxOffsetNumber(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);

		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		{
			ItemPointerData etid;
			HnswNode	node;
			MemoryContext old;

			ItemPointerSet(&etid, blkno, off);
			if (!HnswReadElementNode(hs, &etid, &node) ||
				node.state != HNSW_ELEMENT_LIVE)
				continue;
			old = MemoryContextSwitchTo(vs->tmpCtx);
			fn(vs, &etid, &node, arg);
			MemoryContextSwitchTo(old);
			MemoryContextReset(vs->tmpCtx);
		}
	}
}

/* Pass 2: repair every live element that points at a deleted one */
static void
RepairOne(VacuumState *vs, ItemPointer etid, HnswNode *node, void *arg)
{
	float	   *evec = (float *) arg;

	if (HnswReadElementVector(&vs->hs, etid, evec, NULL))
		RepairElement(vs, etid, node, evec);
}

static void
RepairGraph(VacuumState *vs)
{
	float	   *evec = palloc(sizeof(float) * Max(vs->hs.dim, 1));

	ForEachLiveElement(vs, RepairOne, evec);
	pfree(evec);
}

#define HNSW_ORPHAN_LINKS	3

typedef struct OrphanScan
{
	OmenVisited *linked;		/* ids some live element links to */
	OmenVisited *hasout;		/* ids with an out-edge not to a deleted one */
	OmenVisited *live;			/* ids of live elements */
	ItemPointerData *lives;
	int			nlive;
	int			maxlive;
} OrphanScan;

/* Note a live element and its layer-0 out-edges */
static void
NoteLinks(VacuumState *vs, ItemPointer etid, HnswNode *node, void *arg)
{
	OrphanScan *ol = (OrphanScan *) arg;
	ItemPointerData tids[HNSW_MAX_M * 2];
	int			n;

	if (ol->nlive == ol->maxlive)
	{
		ol->maxlive *= 2;
		ol->lives = repalloc_huge(ol->lives, sizeof(ItemPointerData) * ol->maxlive);
	}
	ol->lives[ol->nlive++] = *etid;
	OmenVisitedTestAndSet(ol->live, OmenTidToId(etid));
	n = HnswReadNeighborLayer(&vs->hs, node, 0, tids);
	for (int i = 0; i < n; i++)
	{
		OmenVisitedTestAndSet(ol->linked, OmenTidToId(&tids[i]));
		if (!IsDeleted(vs, &tids[i]))
			OmenVisitedTestAndSet(ol->hasout, OmenTidToId(etid));
	}
}

/*
 * Pass 2b: give every live element that nothing links to on layer 0 (an
 * orphan) in-edges again, and every live element that links to nothing
 * live (a dead end) out-edges.
 *
 * An orphan is linked from the nearest live members of its own list.  A
 * dead end gets a list first, from a search of layer 0 as an insert would
 * do: an element written while everything its insert could reach was
 * deleted has no neighbours at all, and is then an orphan as well.
 */
static void
LinkOrphans(VacuumState *vs)
{
	HnswShared *hs = &vs->hs;
	OrphanScan	ol;
	OmenVisited linked;
	OmenVisited hasout;
	OmenVisited live;
	ItemPointerData *lives;
	int			nlive;
	float	   *wvec = palloc(sizeof(float) * Max(hs->dim, 1));
	float	   *evec = palloc(sizeof(float) * Max(hs->dim, 1));

	OmenVisitedInit(&linked, 1024);
	OmenVisitedInit(&hasout, 1024);
	OmenVisitedInit(&live, 1024);

	ol.linked = &linked;
	ol.hasout = &hasout;
	ol.live = &live;
	ol.maxlive = 1024;
	ol.lives = palloc(sizeof(ItemPointerData) * ol.maxlive);
	ol.nlive = 0;
	ForEachLiveElement(vs, NoteLinks, &ol);
	lives = ol.lives;
	nlive = ol.nlive;

	for (int i = 0; i < nlive; i++)
	{
		uint64		id = OmenTidToId(&lives[i]);
		bool		orphan;
		bool		deadend;
		HnswNode	w;
		ItemPointerData tids[HNSW_MAX_M * 2];
		float		dists[HNSW_MAX_M * 2];
		int			n;
		int			done = 0;
		MemoryContext old;

		orphan = !OmenVisitedContains(&linked, id) &&
			!(hs->entry_level >= 0 && ItemPointerEquals(&lives[i], &hs->entry));
		deadend = !OmenVisitedContains(&hasout, id);
		if (!orphan && !deadend)
			continue;
		vacuum_delay_point();
		if (!HnswReadElementNode(hs, &lives[i], &w) ||
			!HnswReadElementVector(hs, &lives[i], wvec, NULL))
			continue;

		old = MemoryContextSwitchTo(vs->tmpCtx);
		if (deadend)
		{
			ItemPointerData *cand = palloc(sizeof(ItemPointerData) * 2 * hs->m);
			int			ncand = SearchLayerCands(vs, &lives[i], wvec, 0, cand, 0);

			n = PruneCands(vs, wvec, cand, ncand, 2 * hs->m, tids, dists);
			for (int j = 0; j < n; j++)
				HnswAddNeighbor(hs, &w, wvec, 0, &tids[j], dists[j], NULL,
								NULL, false);
		}
		else
			n = HnswReadNeighborLayer(hs, &w, 0, tids);

		/* its list is nearest first: link it from those neighbours */
		for (int j = 0; orphan && j < n && done < HNSW_ORPHAN_LINKS; j++)
		{
			HnswNode	e;

			if (!OmenVisitedContains(&live, OmenTidToId(&tids[j])) ||
				!HnswReadElementNode(hs, &tids[j], &e) ||
				!HnswReadElementVector(hs, &tids[j], evec, NULL))
				continue;
			HnswAddNeighbor(hs, &e, evec, 0, &lives[i],
							OmenDistanceCalc(&hs->dist, evec, wvec), wvec,
							NULL, true);
			done++;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(vs->tmpCtx);
	}

	OmenVisitedFree(&linked);
	OmenVisitedFree(&hasout);
	OmenVisitedFree(&live);
	pfree(lives);
	pfree(wvec);
	pfree(evec);
}

/* Whether the element at tid links to a live element on layer 0 */
static bool
HasLiveNeighbor(VacuumState *vs, ItemPointer tid)
{
	HnswShared *hs = &vs->hs;
	HnswNode	node;
	HnswNode	nb;
	ItemPointerData tids[HNSW_MAX_M * 2];
	int			n;

	if (!HnswReadElementNode(hs, tid, &node) || node.state != HNSW_ELEMENT_LIVE)
		return false;
	n = HnswReadNeighborLayer(hs, &node, 0, tids);
	for (int i = 0; i < n; i++)
		if (!IsDeleted(vs, &tids[i]) && HnswReadElementNode(hs, &tids[i], &nb) &&
			nb.state == HNSW_ELEMENT_LIVE)
			return true;
	return false;
}

/*
 * Replace the entry point if it is deleted, or if it links to nothing live
 * on layer 0 (searches would start from a node with no way out).  The new
 * one is the first element of the highest level among pass 1's candidates
 * that links to a live element (after pass 2's repairs), else the first of
 * the highest level.  The choice is made with no lock held, and written
 * only if the entry point is still the one it replaces.
 */
static void
ReplaceEntryPoint(VacuumState *vs)
{
	Relation	index = vs->hs.index;
	HnswMetaPageData meta;
	ItemPointerData newentry;
	int			newlevel = -1;
	int			order[HNSW_ENTRY_CANDIDATES];
	Buffer		buf;
	HnswMetaPage wmeta;

	HnswReadMeta(index, &meta);
	if (meta.entry_level < 0 ||
		(!IsDeleted(vs, &meta.entry) && HasLiveNeighbor(vs, &meta.entry)))
		return;

	/* candidates by level, highest first, in page order within a level */
	for (int i = 0; i < vs->necand; i++)
	{
		int			j = i;

		while (j > 0 && vs->eclevel[order[j - 1]] < vs->eclevel[i])
		{
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	ItemPointerSetInvalid(&newentry);
	for (int i = 0; i < vs->necand; i++)
	{
		int			c = order[i];

		if (HasLiveNeighbor(vs, &vs->ecand[c]))
		{
			newentry = vs->ecand[c];
			newlevel = vs->eclevel[c];
			break;
		}
	}
	if (newlevel < 0)
	{
		/* none is linked: keep a live entry point, replace a deleted one */
		if (!IsDeleted(vs, &meta.entry))
			return;
		if (vs->necand > 0)
		{
			newentry = vs->ecand[order[0]];
			newlevel = vs->eclevel[order[0]];
		}
		/* else no element is live: the index is empty */
	}
	if (newlevel >= 0 && ItemPointerEquals(&newentry, &meta.entry))
		return;

	buf = ReadBuffer(index, HNSW_METAPAGE_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	wmeta = HnswPageGetMeta(BufferGetPage(buf));
	if (wmeta->entry_level == meta.entry_level &&
		ItemPointerEquals(&wmeta->entry, &meta.entry))
	{
		OmenXLog	x;

		OmenXLogStart(&x, index);
		wmeta = HnswPageGetMeta(OmenXLogRegister(&x, buf, false));
		if (newlevel >= 0)
		{
			wmeta->entry = newentry;
			wmeta->entry_level = newlevel;
		}
		else
		{
			ItemPointerSetInvalid(&wmeta->entry);
			wmeta->entry_level = -1;
		}
		OmenXLogFinish(&x);
	}
	UnlockReleaseBuffer(buf);
}

/* Remove one tuple from its page, keeping other line pointers in place */
static void
DeleteTuple(VacuumState *vs, ItemPointer tid, uint8 type)
{
	Relation	index = vs->hs.index;
	Buffer		buf;
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);

	buf = ReadBufferExtended(index, MAIN_FORKNUM, ItemPointerGetBlockNumber(tid),
							 RBM_NORMAL, vs->info->strategy);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	if (OmenPageGetTuple(page, off) &&
		*(uint8 *) OmenPageGetTuple(page, off) == type)
	{
		OmenXLog	x;
		Page		wpage;

		OmenXLogStart(&x, index);
		wpage = OmenXLogRegister(&x, buf, false);
		PageIndexTupleDeleteNoCompact(wpage, off);
		OmenXLogFinish(&x);
		RecordPageWithFreeSpace(index, ItemPointerGetBlockNumber(tid),
								PageGetFreeSpace(page));
	}
	UnlockReleaseBuffer(buf);
}

/* Pass 3: free the deleted elements' tuples */
static void
FreeDeleted(VacuumState *vs)
{
	for (int i = 0; i < vs->ndeleted; i++)
	{
		HnswNode	node;

		vacuum_delay_point();
		if (!HnswReadElementNode(&vs->hs, &vs->deltids[i], &node) ||
			node.state != HNSW_ELEMENT_DELETED)
			continue;
		DeleteTuple(vs, &node.neighbortid, HNSW_TUPLE_NEIGHBORS);
		DeleteTuple(vs, &vs->deltids[i], HNSW_TUPLE_ELEMENT);
	}
}

/* ambulkdelete */
IndexBulkDeleteResult *
hnswbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
			   IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation	index = info->index;
	VacuumState vs;
	BlockNumber nblocks;
	MemoryContext ctx;
	MemoryContext old;

	if (stats == NULL)
		stats = (IndexBulkDeleteResult *) palloc0(sizeof(IndexBulkDeleteResult));

	ctx = AllocSetContextCreate(CurrentMemoryContext, "omen_hnsw vacuum",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);

	memset(&vs, 0, sizeof(vs));
	vs.info = info;
	vs.stats = stats;
	HnswInitShared(&vs.hs, index);
	OmenVisitedInit(&vs.deleted, 1024);
	vs.maxdeleted = 1024;
	vs.deltids = palloc(sizeof(ItemPointerData) * vs.maxdeleted);
	vs.tmpCtx = AllocSetContextCreate(ctx, "omen_hnsw vacuum element",
									  ALLOCSET_DEFAULT_SIZES);

	stats->num_index_tuples = 0;
	nblocks = RelationGetNumberOfBlocks(index);
	for (BlockNumber blkno = 1; blkno < nblocks; blkno++)
	{
		vacuum_delay_point();
		RemoveDeadTids(&vs, blkno, callback, callback_state);
	}

	if (vs.ndeleted > 0)
	{
		RepairGraph(&vs);
		ReplaceEntryPoint(&vs);
		HnswFreeShared(&vs.hs);
		HnswInitShared(&vs.hs, index);	/* the entry point may have moved */
		LinkOrphans(&vs);
		FreeDeleted(&vs);
	}
	/* the upper levels of the map only learn of new free space here */
	IndexFreeSpaceMapVacuum(index);
	stats->num_pages = RelationGetNumberOfBlocks(index);

	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	return stats;
}

/*
 * Record every data page's free space and count the heap TIDs: a VACUUM
 * with no dead rows calls no bulk delete, and the free space map is not
 * crash-safe, so this is where space freed before a crash is found again.
 */
static void
ScanFreeSpace(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	Relation	index = info->index;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);

	for (BlockNumber blkno = 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;

		vacuum_delay_point();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL,
								 info->strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (!PageIsNew(page) && OmenPageGetOpaque(page)->kind == HNSW_PAGE_DATA)
		{
			for (OffsetNumber off = FirstOffsetNumber;
				 off <= PageGetMaxOffsetNumber(page); off++)
			{
				HnswElementTuple etup = (HnswElementTuple) OmenPageGetTuple(page, off);

				if (etup && etup->type == HNSW_TUPLE_ELEMENT &&
					etup->state == HNSW_ELEMENT_LIVE)
					for (int i = 0; i < HNSW_HEAPTIDS; i++)
						if (ItemPointerIsValid(&etup->heaptids[i]))
							stats->num_index_tuples++;
			}
			RecordPageWithFreeSpace(index, blkno, PageGetFreeSpace(page));
		}
		UnlockReleaseBuffer(buf);
	}
	IndexFreeSpaceMapVacuum(index);
	stats->num_pages = nblocks;
}

/* amvacuumcleanup */
IndexBulkDeleteResult *
hnswvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	if (info->analyze_only)
		return stats;
	if (stats == NULL)
	{
		/* no bulk delete ran: find the free space and count the tuples */
		stats = (IndexBulkDeleteResult *) palloc0(sizeof(IndexBulkDeleteResult));
		ScanFreeSpace(info, stats);
	}
	return stats;
}

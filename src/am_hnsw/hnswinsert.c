/*
 * hnswinsert.c
 *	  omen_hnsw: inserting one vector into the graph on pages.
 *
 * An insert holds at most one buffer lock at a time, and never waits for a
 * lock while holding one, so inserters, scans and VACUUM cannot deadlock:
 *
 * 1. Search the graph (share locks, one page at a time) for the new
 *    vector's neighbours on each of its layers, and choose them with
 *    RobustPrune (alpha = 1).
 * 2. Write the element and neighbour tuples on one page (exclusive lock on
 *    that page only), in one generic WAL record.
 * 3. Link back: for each chosen neighbour, read its list, decide its new
 *    list (pruning when full) with no lock held, then lock its page,
 *    re-check that the list is unchanged, and write it; on a change, start
 *    that neighbour again.
 * 4. If the new element's level is above the entry point's, lock the meta
 *    page and make it the entry point (re-checked under the lock).
 *
 * A vector identical to one already in the graph adds its heap TID to that
 * element instead of making a new node (while the element has room).
 */
#include "postgres.h"

#include <math.h>

#include "access/generic_xlog.h"
#include "common/pg_prng.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* Neighbour candidates of the new element on one layer, with vectors */
typedef struct LayerCands
{
	OmenCand   *cands;			/* sorted by distance to the new vector */
	HnswNode   *nodes;			/* per candidate */
	float	  **vecs;			/* per candidate, or NULL if unreadable */
	int			n;
	int		   *chosen;			/* indexes into cands */
	int			nchosen;
} LayerCands;

/* Read the vector (as float4) and level of the element at tid */
bool
HnswReadElementVector(HnswShared *hs, ItemPointer tid, float *out, int *level)
{
	Buffer		buf;
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	bool		ok = false;

	buf = ReadBuffer(hs->index, ItemPointerGetBlockNumber(tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	{
		HnswElementTuple etup = (HnswElementTuple) OmenPageGetTuple(page, off);

		if (etup && etup->type == HNSW_TUPLE_ELEMENT &&
			etup->state == HNSW_ELEMENT_LIVE)
		{
			HnswElementGetVector(hs, etup, out);
			if (level)
				*level = etup->level;
			ok = true;
		}
	}
	UnlockReleaseBuffer(buf);
	return ok;
}

/* Add a tuple to the last data page if it fits, else to a new page */
static void
PlaceTuples(HnswShared *hs, HnswElementTuple etup, Size esize,
			HnswNeighborTuple ntup, Size nsize, ItemPointer etid)
{
	Relation	index = hs->index;
	Size		needed = MAXALIGN(esize) + MAXALIGN(nsize) + sizeof(ItemIdData);
	bool		together = needed + sizeof(ItemIdData) <= HNSW_PAGE_CAPACITY;
	ItemPointerData ntid;

	/* tuples too big to share a page: the neighbour tuple goes first */
	for (int pass = together ? 1 : 0; pass < 2; pass++)
	{
		Size		want = together ? needed :
			(pass == 0 ? MAXALIGN(nsize) : MAXALIGN(esize));
		BlockNumber nblocks = RelationGetNumberOfBlocks(index);
		Buffer		buf = InvalidBuffer;
		bool		newpage = false;
		OmenXLog	x;
		Page		page;
		OffsetNumber eoff = InvalidOffsetNumber;
		OffsetNumber noff = InvalidOffsetNumber;

		/*
		 * Space VACUUM freed first, then the last page, then a new one.  The
		 * free space map is a hint: concurrent inserters are sent to the
		 * same page, and all but the first find it full.  Each miss corrects
		 * the map and asks again, a few times, before the index is extended.
		 */
		for (int tries = 0; tries < 8 && !BufferIsValid(buf); tries++)
		{
			BlockNumber fsmblk = GetPageWithFreeSpace(index, want);

			if (fsmblk == InvalidBlockNumber)
				break;
			if (fsmblk == HNSW_METAPAGE_BLKNO || fsmblk >= nblocks)
			{
				RecordPageWithFreeSpace(index, fsmblk, 0);
				continue;
			}
			{
				bool		unusable;

				buf = ReadBuffer(index, fsmblk);
				LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
				page = BufferGetPage(buf);
				unusable = PageIsNew(page) || HnswPageIsBasis(page);
				if (unusable || PageGetFreeSpace(page) < want)
				{
					RecordPageWithFreeSpace(index, fsmblk,
											unusable ? 0 : PageGetFreeSpace(page));
					UnlockReleaseBuffer(buf);
					buf = InvalidBuffer;
				}
				else
					OmenCheckPage(index, buf, page, HNSW_PAGE_DATA);
			}
		}
		if (!BufferIsValid(buf) && nblocks > 1)
		{
			buf = ReadBuffer(index, nblocks - 1);
			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			page = BufferGetPage(buf);

			/*
			 * A new page here was just added by another backend, which has
			 * yet to lock and initialise it (or it crashed before it could):
			 * leave it alone, it is not ours to initialise.  After a build
			 * the last page can be a pivot page, which holds no tuples.
			 */
			if (PageIsNew(page) || HnswPageIsBasis(page) ||
				PageGetFreeSpace(page) < want)
			{
				UnlockReleaseBuffer(buf);
				buf = InvalidBuffer;
			}
			else
				OmenCheckPage(index, buf, page, HNSW_PAGE_DATA);
		}
		if (!BufferIsValid(buf))
		{
			buf = OmenNewBuffer(index, MAIN_FORKNUM);
			newpage = true;
		}

		OmenXLogStart(&x, index);
		page = OmenXLogRegister(&x, buf, newpage);
		if (newpage)
			OmenInitPage(page, HNSW_PAGE_DATA);

		if (together || pass == 1)
		{
			eoff = PageAddItem(page, (Item) etup, esize, InvalidOffsetNumber,
							   false, false);
			if (eoff == InvalidOffsetNumber)
				elog(ERROR, "failed to add element tuple to index \"%s\"",
					 RelationGetRelationName(index));
			ItemPointerSet(etid, BufferGetBlockNumber(buf), eoff);
		}
		if (together || pass == 0)
		{
			noff = PageAddItem(page, (Item) ntup, nsize, InvalidOffsetNumber,
							   false, false);
			if (noff == InvalidOffsetNumber)
				elog(ERROR, "failed to add neighbour tuple to index \"%s\"",
					 RelationGetRelationName(index));
			ItemPointerSet(&ntid, BufferGetBlockNumber(buf), noff);
		}
		if (eoff != InvalidOffsetNumber)
		{
			HnswElementTuple placed = (HnswElementTuple)
				PageGetItem(page, PageGetItemId(page, eoff));

			placed->neighbortid = ntid;
		}
		OmenXLogFinish(&x);

		/*
		 * Tell the free space map what is left.  Otherwise it keeps sending
		 * inserters to pages filled since VACUUM: each finds one full, and
		 * after a few misses extends the index while pages with room remain
		 * (Fashion-MNIST, 10% churn a round: 1.9 MB of growth a round).
		 */
		{
			BlockNumber blkno = BufferGetBlockNumber(buf);
			Size		left = PageGetFreeSpace(BufferGetPage(buf));

			UnlockReleaseBuffer(buf);
			RecordPageWithFreeSpace(index, blkno, left);
		}
	}
}

/*
 * Build and write a new element with the chosen neighbours per layer; proj
 * is vec's projection on the sketch basis (with edge sketches)
 */
static void
WriteNewElement(HnswShared *hs, const float *vec, const float *proj,
				ItemPointer heaptid, int level, LayerCands *layers,
				ItemPointer etid)
{
	Size		esize = HNSW_ELEMENT_SIZE(hs->dim, hs->storage);
	Size		nsize = HnswNeighborSize(hs, level);
	HnswElementTuple etup = palloc0(esize);
	HnswNeighborTuple ntup = palloc0(nsize);
	ItemPointerData *tids;

	etup->type = HNSW_TUPLE_ELEMENT;
	etup->level = level;
	etup->state = HNSW_ELEMENT_LIVE;

	/*
	 * The stamp both tuples carry.  Once VACUUM frees an element, a new one
	 * can take its two slots while another backend still holds their TIDs
	 * from a search; that backend must not read or rewrite the new list as
	 * the old element's (its back-link would prune the new element's list
	 * by the old vector's distances).  A random stamp that is never 0 (the
	 * build's) tells them apart, except with 1 chance in 255 between two
	 * inserted elements.
	 */
	etup->version = (uint8) (1 + pg_prng_uint32(&pg_global_prng_state) % 255);
	for (int i = 0; i < HNSW_HEAPTIDS; i++)
		ItemPointerSetInvalid(&etup->heaptids[i]);
	etup->heaptids[0] = *heaptid;
	ItemPointerSetInvalid(&etup->neighbortid);
	HnswElementSetVector(hs, etup, vec, NULL);

	ntup->type = HNSW_TUPLE_NEIGHBORS;
	ntup->version = etup->version;
	ntup->count = HNSW_NEIGHBOR_SLOTS(level, hs->m);
	tids = HnswNeighborTids(ntup, hs->m, hs->sketch_bits);
	for (int i = 0; i < ntup->count; i++)
		ItemPointerSetInvalid(&tids[i]);
	if (layers)
	{
		for (int l = 0; l <= level; l++)
		{
			int			start = HnswLayerStart(l, hs->m);

			for (int i = 0; i < layers[l].nchosen; i++)
				tids[start + i] = layers[l].nodes[layers[l].chosen[i]].tid;
		}
	}
	if (hs->sketch_bits > 0)
	{
		HnswSketchSetProj(hs, ntup, proj);
		for (int i = 0; i < 2 * hs->m; i++)
		{
			const float *v = NULL;

			if (layers && i < layers[0].nchosen)
				v = layers[0].vecs[layers[0].chosen[i]];
			if (v)
				HnswSketchFill(hs, ntup, i, vec, v);
			else
				HnswSketchClear(hs, ntup, i);
		}
	}

	PlaceTuples(hs, etup, esize, ntup, nsize, etid);
	pfree(etup);
	pfree(ntup);
}

/*
 * Make tid the entry point: when the index is empty (onlyifempty) or when
 * level is above the current entry's.  Returns true if it did; either way
 * hs->entry is refreshed.
 */
static bool
TrySetEntry(HnswShared *hs, ItemPointer tid, int level, bool onlyifempty)
{
	Buffer		buf = ReadBuffer(hs->index, HNSW_METAPAGE_BLKNO);
	HnswMetaPage meta;
	bool		set;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	meta = HnswPageGetMeta(BufferGetPage(buf));
	set = onlyifempty ? meta->entry_level < 0 : level > meta->entry_level;
	if (set)
	{
		OmenXLog	x;
		HnswMetaPage wmeta;

		OmenXLogStart(&x, hs->index);
		wmeta = HnswPageGetMeta(OmenXLogRegister(&x, buf, false));
		wmeta->entry = *tid;
		wmeta->entry_level = level;
		OmenXLogFinish(&x);
		meta = wmeta;
	}
	hs->entry = meta->entry;
	hs->entry_level = meta->entry_level;
	UnlockReleaseBuffer(buf);
	return set;
}

/* Sort a layer's candidates (with their nodes and vectors) nearest first */
static void
SortLayerCands(LayerCands *lc)
{
	HnswNode   *nodes = palloc(sizeof(HnswNode) * Max(lc->n, 1));
	float	  **vecs = palloc(sizeof(float *) * Max(lc->n, 1));

	/* aux is free here: carry each candidate's place before the sort */
	for (int i = 0; i < lc->n; i++)
		lc->cands[i].aux = i;
	OmenSortCands(lc->cands, lc->n);
	for (int i = 0; i < lc->n; i++)
	{
		nodes[i] = lc->nodes[lc->cands[i].aux];
		vecs[i] = lc->vecs[lc->cands[i].aux];
	}
	pfree(lc->nodes);
	pfree(lc->vecs);
	lc->nodes = nodes;
	lc->vecs = vecs;
}

/*
 * Search each layer from the top for candidate neighbours of vec, filling
 * layers[0 .. min(level, entry level)], each with its candidates' vectors.
 * Returns false if the search could not start: the entry point is gone.
 */
static bool
FindCandidates(HnswShared *hs, const float *vec, int level, LayerCands *layers,
			   ItemPointer self)
{
	HnswDiskSearch ds;
	int			top = Min(level, hs->entry_level);

	HnswDiskSearchInit(&ds, hs, vec, hs->ef_construction, false);
	if (!HnswDiskDescend(&ds, top, hs->ef_construction, HNSW_INSERT_DESCEND))
	{
		HnswDiskSearchFree(&ds);
		return false;
	}

	for (int l = top; l >= 0; l--)
	{
		OmenCand   *r;
		int			n;
		LayerCands *lc = &layers[l];

		n = OmenGraphSearchLayer(&ds.search, l, hs->ef_construction, &r);
		lc->cands = palloc(sizeof(OmenCand) * Max(n, 1));
		lc->nodes = palloc(sizeof(HnswNode) * Max(n, 1));
		lc->vecs = palloc(sizeof(float *) * Max(n, 1));
		lc->n = 0;
		for (int i = 0; i < n; i++)
		{
			HnswNode   *node = &ds.nodes[r[i].aux];

			if (self && ItemPointerEquals(&node->tid, self))
				continue;
			lc->cands[lc->n] = r[i];
			lc->nodes[lc->n] = *node;
			lc->vecs[lc->n] = palloc(sizeof(float) * hs->dim);
			if (!HnswReadElementVector(hs, &node->tid, lc->vecs[lc->n], NULL))
			{
				pfree(lc->vecs[lc->n]);
				continue;		/* deleted meanwhile */
			}
			/* the search may have ranked by sq8 codes: use exact distances */
			if (HnswStorageSq8(hs->storage))
				lc->cands[lc->n].dist = OmenDistanceCalc(&hs->dist, vec,
														 lc->vecs[lc->n]);
			lc->n++;
		}
		if (r)
			pfree(r);
		if (HnswStorageSq8(hs->storage))
			SortLayerCands(lc);
	}
	HnswDiskSearchFree(&ds);
	return true;
}

/* Choose the new element's neighbours on each layer */
static void
ChooseNeighbors(HnswShared *hs, LayerCands *layers, int top)
{
	for (int l = 0; l <= top; l++)
	{
		LayerCands *lc = &layers[l];
		OmenVecPairArg pa = {&hs->dist, lc->vecs};
		int			cap = HnswLayerCapacity(l, hs->m);

		lc->chosen = palloc(sizeof(int) * Max(cap, 1));
		lc->nchosen = OmenRobustPrune(lc->cands, lc->n, hs->alpha, cap,
									  OmenVecPairDist, &pa, lc->chosen);
	}
}

/*
 * If the nearest candidate holds exactly this vector, add heaptid to it.
 * Returns true if it did.
 */
static bool
TryAddDuplicate(HnswShared *hs, const float *vec, LayerCands *layer0,
				ItemPointer heaptid)
{
	HnswNode   *node;
	Buffer		buf;
	Page		page;
	HnswElementTuple etup;
	bool		added = false;
	if (layer0->n == 0 || layer0->cands[0].dist != 0.0f ||
		memcmp(layer0->vecs[0], vec, sizeof(float) * hs->dim) != 0)
		return false;

	node = &layer0->nodes[0];
	buf = ReadBuffer(hs->index, ItemPointerGetBlockNumber(&node->tid));
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	etup = (HnswElementTuple)
		OmenPageGetTuple(page, ItemPointerGetOffsetNumber(&node->tid));
	if (etup && etup->type == HNSW_TUPLE_ELEMENT &&
		etup->state == HNSW_ELEMENT_LIVE)
	{
		for (int i = 0; i < HNSW_HEAPTIDS; i++)
		{
			if (!ItemPointerIsValid(&etup->heaptids[i]))
			{
				OmenXLog	x;
				Page		wpage;

				OmenXLogStart(&x, hs->index);
				wpage = OmenXLogRegister(&x, buf, false);
				etup = (HnswElementTuple) PageGetItem(wpage, PageGetItemId(wpage, ItemPointerGetOffsetNumber(&node->tid)));
				etup->heaptids[i] = *heaptid;
				OmenXLogFinish(&x);
				added = true;
				break;
			}
		}
	}
	UnlockReleaseBuffer(buf);
	return added;
}

/*
 * Write list[0..n) (padded with invalid tids) into layer `layer` of node's
 * neighbour tuple, if that layer still holds exactly expect[0..cap) and the
 * tuple is still node's (its stamp matches: VACUUM can free an element and
 * a new one reuse its slots between a read and this write).  Returns false
 * if it changed meanwhile.
 *
 * With edge sketches, layer 0's sketches follow the list: a neighbour
 * that was in expect keeps its sketch; a new one gets one from its vector
 * (vecs[i], else read from its page) and node's vector nodevec, computed
 * before the page is locked; projs[i], if given, is its projection.
 * Without nodevec, new neighbours' sketches are marked unknown.
 */
bool
HnswWriteNeighborLayer(HnswShared *hs, const HnswNode *node, int layer,
					   const ItemPointerData *expect, const ItemPointerData *list,
					   int n, const float *nodevec, const float *const *vecs,
					   const float *const *projs)
{
	Buffer		buf;
	Page		page;
	const ItemPointerData *ntid = &node->neighbortid;
	OffsetNumber off = ItemPointerGetOffsetNumber(ntid);
	int			start = HnswLayerStart(layer, hs->m);
	int			cap = HnswLayerCapacity(layer, hs->m);
	HnswNeighborTuple ntup;
	bool		ok = false;
	bool		sketch = (layer == 0 && hs->sketch_bits > 0);
	float	   *nproj = NULL;	/* n x sketch_bits, for new neighbours */
	float	   *nnorm = NULL;	/* NaN: keep the old sketch or unknown */

	if (sketch)
	{
		float	   *tmp = NULL;

		nproj = palloc(sizeof(float) * hs->sketch_bits * Max(n, 1));
		nnorm = palloc(sizeof(float) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			const float *v = vecs ? vecs[i] : NULL;
			bool		old = false;

			nnorm[i] = NAN;
			for (int j = 0; expect && j < cap && !old; j++)
				old = ItemPointerEquals((ItemPointer) &expect[j], (ItemPointer) &list[i]);
			if (old || !nodevec)
				continue;
			if (!v)
			{
				if (!tmp)
					tmp = palloc(sizeof(float) * hs->dim);
				if (!HnswReadElementVector(hs, (ItemPointer) &list[i], tmp, NULL))
					continue;
				v = tmp;
			}
			if (projs && projs[i])
				memcpy(nproj + (Size) i * hs->sketch_bits, projs[i],
					   sizeof(float) * hs->sketch_bits);
			else
				OmenSketchProject(HnswGetBasis(hs), hs->sketch_bits, hs->dim, v,
								  nproj + (Size) i * hs->sketch_bits);
			nnorm[i] = sqrtf(omen_kernels->l2sq(nodevec, v, hs->dim));
		}
		if (tmp)
			pfree(tmp);
	}

	buf = ReadBuffer(hs->index, ItemPointerGetBlockNumber(ntid));
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	ntup = (HnswNeighborTuple) OmenPageGetTuple(page, off);
	if (ntup)
	{
		if (ntup->type == HNSW_TUPLE_NEIGHBORS && start + cap <= ntup->count &&
			ntup->version == node->version &&
			(expect == NULL ||
			 memcmp(&HnswNeighborTids(ntup, hs->m, hs->sketch_bits)[start], expect,
					sizeof(ItemPointerData) * cap) == 0))
		{
			OmenXLog	x;
			Page		wpage;
			ItemPointerData *tids;
			uint64		oldsigns[HNSW_MAX_M * 2];
			float		oldnorms[HNSW_MAX_M * 2];
			ItemPointerData oldtids[HNSW_MAX_M * 2];

			OmenXLogStart(&x, hs->index);
			wpage = OmenXLogRegister(&x, buf, false);
			ntup = (HnswNeighborTuple) PageGetItem(wpage, PageGetItemId(wpage, off));
			tids = HnswNeighborTids(ntup, hs->m, hs->sketch_bits);
			if (sketch)
			{
				memcpy(oldtids, tids, sizeof(ItemPointerData) * cap);
				memcpy(oldsigns, HnswSketchSigns(ntup, hs->m), sizeof(uint64) * cap);
				memcpy(oldnorms, HnswSketchNorms(ntup, hs->m), sizeof(float) * cap);
			}
			for (int i = 0; i < cap; i++)
			{
				if (i < n)
					tids[start + i] = list[i];
				else
					ItemPointerSetInvalid(&tids[start + i]);
			}
			for (int i = 0; sketch && i < cap; i++)
			{
				int			was = -1;

				if (i >= n)
				{
					HnswSketchClear(hs, ntup, i);
					continue;
				}
				if (!isnan(nnorm[i]))
				{
					HnswSketchFillProj(hs, ntup, i, nnorm[i],
									   nproj + (Size) i * hs->sketch_bits,
									   NULL);
					continue;
				}
				for (int j = 0; j < cap && was < 0; j++)
					if (ItemPointerEquals(&oldtids[j], (ItemPointer) &list[i]))
						was = j;
				if (was >= 0)
				{
					HnswSketchSigns(ntup, hs->m)[i] = oldsigns[was];
					HnswSketchNorms(ntup, hs->m)[i] = oldnorms[was];
				}
				else
					HnswSketchClear(hs, ntup, i);
			}
			OmenXLogFinish(&x);
			ok = true;
		}
	}
	UnlockReleaseBuffer(buf);
	if (nproj)
		pfree(nproj);
	if (nnorm)
		pfree(nnorm);
	return ok;
}

/*
 * Read the whole slot range of one layer of node's list (valid or not);
 * false if the tuple is gone, lower than layer, or now another element's
 */
bool
HnswReadLayerSlots(HnswShared *hs, const HnswNode *node, int layer,
				   ItemPointerData *slots)
{
	Buffer		buf;
	Page		page;
	const ItemPointerData *ntid = &node->neighbortid;
	OffsetNumber off = ItemPointerGetOffsetNumber(ntid);
	int			start = HnswLayerStart(layer, hs->m);
	int			cap = HnswLayerCapacity(layer, hs->m);
	bool		ok = false;

	buf = ReadBuffer(hs->index, ItemPointerGetBlockNumber(ntid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	{
		HnswNeighborTuple ntup = (HnswNeighborTuple) OmenPageGetTuple(page, off);

		if (ntup && ntup->type == HNSW_TUPLE_NEIGHBORS &&
			start + cap <= ntup->count && ntup->version == node->version)
		{
			memcpy(slots, &HnswNeighborTids(ntup, hs->m, hs->sketch_bits)[start],
				   sizeof(ItemPointerData) * cap);
			ok = true;
		}
	}
	UnlockReleaseBuffer(buf);
	return ok;
}

/*
 * Give element e (with vector evec) the neighbour newtid on layer, pruning
 * its list when full; dnew = d(e, new).  With force, newtid goes in even
 * if RobustPrune would leave it out (replacing the furthest neighbour kept).
 * Returns whether e's list now holds newtid.
 */
bool
HnswAddNeighbor(HnswShared *hs, HnswNode *e, const float *evec, int layer,
				ItemPointer newtid, float dnew, const float *newvec,
				const float *newproj, bool force)
{
	int			cap = HnswLayerCapacity(layer, hs->m);
	ItemPointerData slots[HNSW_MAX_M * 2];

	for (int attempt = 0; attempt < 10; attempt++)
	{
		int			nvalid = 0;
		int			free_slot = -1;
		bool		present = false;

		if (!HnswReadLayerSlots(hs, e, layer, slots))
			return false;		/* the element went away */
		for (int i = 0; i < cap; i++)
		{
			if (!ItemPointerIsValid(&slots[i]))
			{
				if (free_slot < 0)
					free_slot = i;
				continue;
			}
			nvalid++;
			if (ItemPointerEquals(&slots[i], newtid))
				present = true;
		}
		if (present)
			return true;

		if (free_slot >= 0)
		{
			ItemPointerData list[HNSW_MAX_M * 2];
			const float *lvecs[HNSW_MAX_M * 2] = {0};
			const float *lprojs[HNSW_MAX_M * 2] = {0};
			int			n = 0;

			for (int i = 0; i < cap; i++)
				if (ItemPointerIsValid(&slots[i]))
					list[n++] = slots[i];
			lvecs[n] = newvec;
			lprojs[n] = newproj;
			list[n++] = *newtid;
			if (HnswWriteNeighborLayer(hs, e, layer, slots, list, n, evec,
									   lvecs, lprojs))
				return true;
			continue;
		}

		/* full: prune e's neighbours plus the new one, with no lock held */
		{
			OmenCand	cands[HNSW_MAX_M * 2 + 1];
			float	   *vecs[HNSW_MAX_M * 2 + 1];
			ItemPointerData tids[HNSW_MAX_M * 2 + 1];
			int			chosen[HNSW_MAX_M * 2 + 1];
			int			n = 0;
			int			nchosen;
			ItemPointerData list[HNSW_MAX_M * 2];
			const float *lvecs[HNSW_MAX_M * 2];
			bool		keepsnew = false;
			float	   *readvec = NULL;
			bool		written;

			for (int i = 0; i < cap; i++)
			{
				vecs[n] = palloc(sizeof(float) * hs->dim);
				if (!HnswReadElementVector(hs, &slots[i], vecs[n], NULL))
				{
					pfree(vecs[n]);
					continue;	/* deleted: drop the edge */
				}
				tids[n] = slots[i];
				cands[n].dist = OmenDistanceCalc(&hs->dist, evec, vecs[n]);
				cands[n].id = n;
				cands[n].aux = n;
				n++;
			}
			readvec = palloc(sizeof(float) * hs->dim);
			if (!HnswReadElementVector(hs, newtid, readvec, NULL))
			{
				pfree(readvec);
				for (int i = 0; i < n; i++)
					pfree(vecs[i]);
				return false;
			}
			vecs[n] = readvec;
			tids[n] = *newtid;
			cands[n].dist = dnew;
			cands[n].id = n;
			cands[n].aux = n;
			n++;

			nchosen = OmenRobustPruneVectors(cands, n, vecs, &hs->dist, hs->alpha,
											 cap, chosen);
			for (int i = 0; i < nchosen; i++)
			{
				list[i] = tids[cands[chosen[i]].aux];
				lvecs[i] = vecs[cands[chosen[i]].aux];
				if (ItemPointerEquals(&list[i], newtid))
					keepsnew = true;
			}
			if (!keepsnew && force)
			{
				/* the caller needs the edge: it replaces the furthest kept */
				if (nchosen == cap)
					nchosen--;
				lvecs[nchosen] = readvec;
				list[nchosen++] = *newtid;
				keepsnew = true;
			}
			written = (keepsnew || nchosen != nvalid) &&
				HnswWriteNeighborLayer(hs, e, layer, slots, list, nchosen,
									   evec, lvecs, NULL);
			for (int i = 0; i < n; i++)
				pfree(vecs[i]);
			if (!keepsnew && nchosen == nvalid)
				return false;	/* nothing would change */
			if (written)
				return keepsnew;
		}
	}
	return false;
}

/* Overwrite the new element's own neighbour lists (layers 0 .. top) */
static void
WriteOwnNeighbors(HnswShared *hs, ItemPointer etid, const float *vec,
				  LayerCands *layers, int top)
{
	HnswNode	self;

	if (!HnswReadElementNode(hs, etid, &self))
		return;
	for (int l = 0; l <= top; l++)
	{
		ItemPointerData list[HNSW_MAX_M * 2];
		const float *lvecs[HNSW_MAX_M * 2];

		for (int i = 0; i < layers[l].nchosen; i++)
		{
			list[i] = layers[l].nodes[layers[l].chosen[i]].tid;
			lvecs[i] = layers[l].vecs[layers[l].chosen[i]];
		}
		HnswWriteNeighborLayer(hs, &self, l, NULL, list,
							   layers[l].nchosen, vec, lvecs, NULL);
	}
}

/* Insert one (prepared) vector with its heap TID */
void
HnswInsertVector(HnswShared *hs, const float *vec, ItemPointer heaptid)
{
	int			level = HnswRandomLevel(&pg_global_prng_state, hs->ml,
									HnswMaxLevel(hs->m));
	LayerCands	layers[HNSW_MAX_LEVEL + 1];
	ItemPointerData newtid;
	int			top;
	int			attempts = 0;
	float	   *newproj = NULL;
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext,
											  "omen_hnsw insert",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);

	/* the new element's own sketch projection, for its list and back-links */
	if (hs->sketch_bits > 0)
	{
		newproj = palloc(sizeof(float) * hs->sketch_bits);
		OmenSketchProject(HnswGetBasis(hs), hs->sketch_bits, hs->dim, vec,
						  newproj);
	}

retry:
	memset(layers, 0, sizeof(layers));

	if (hs->entry_level < 0)
	{
		/* empty index: this element becomes the entry point */
		WriteNewElement(hs, vec, newproj, heaptid, level, NULL, &newtid);
		if (!TrySetEntry(hs, &newtid, level, true))
		{
			/* another insert got there first: link to it like any other */
			top = Min(level, hs->entry_level);
			(void) FindCandidates(hs, vec, level, layers, &newtid);
			ChooseNeighbors(hs, layers, top);
			WriteOwnNeighbors(hs, &newtid, vec, layers, top);
			goto link_back;
		}
		goto done;
	}

	top = Min(level, hs->entry_level);
	if (!FindCandidates(hs, vec, level, layers, NULL) && attempts++ < 3)
	{
		/*
		 * The entry point read at the start was replaced by VACUUM and
		 * freed before the search reached it: read it again.
		 */
		HnswRefreshEntry(hs);
		goto retry;
	}
	if (TryAddDuplicate(hs, vec, &layers[0], heaptid))
		goto done;
	ChooseNeighbors(hs, layers, top);
	WriteNewElement(hs, vec, newproj, heaptid, level, layers, &newtid);

link_back:
	for (int l = 0; l <= top; l++)
	{
		LayerCands *lc = &layers[l];
		bool		linked = false;

		for (int i = 0; i < lc->nchosen; i++)
		{
			int			c = lc->chosen[i];

			CHECK_FOR_INTERRUPTS();
			if (HnswAddNeighbor(hs, &lc->nodes[c], lc->vecs[c], l, &newtid,
								lc->cands[c].dist, vec, newproj, false))
				linked = true;
		}

		/* every neighbour pruned it away: it must be reachable from one */
		if (!linked && lc->nchosen > 0)
		{
			int			c = lc->chosen[0];

			HnswAddNeighbor(hs, &lc->nodes[c], lc->vecs[c], l, &newtid,
							lc->cands[c].dist, vec, newproj, true);
		}
	}

	/*
	 * An element that found no neighbours (the whole graph it could reach
	 * was deleted) must not become the entry point of a graph that has
	 * other elements: searches would start from a node with no edges, and
	 * every later insert would link only to it, growing a second graph
	 * that queries never leave.  VACUUM links it in later.
	 */
	if (level > hs->entry_level && layers[0].nchosen > 0)
		TrySetEntry(hs, &newtid, level, false);

done:
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
}

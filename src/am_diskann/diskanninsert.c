/*
 * diskanninsert.c
 *	  omen_diskann: inserts in place (ALGORITHMS.md section 3, Insert).
 *
 * An insert searches the graph from the entry point with the new vector
 * (build_list_size), chooses its neighbours with RobustPrune on full
 * vectors, writes its node and vector tuples, then adds itself to each
 * neighbour's list.  A list that has no free slot left is pruned back to
 * max_neighbors: its vectors are read with no lock held, and the result is
 * written only if the list did not change meanwhile (else it retries).
 * No lock is held across the search, and at most one node page (with one
 * vector page and the meta page after it) is locked at a time, so inserts
 * from many sessions proceed side by side.
 *
 * An index created empty has no quantiser: its first nodes are written
 * without codes and scored with their full vectors, until it holds
 * DISKANN_TRAIN_MIN nodes; the insert that gets there trains the quantiser
 * on them and codes every node.
 */
#include "postgres.h"

#include "diskann.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/*
 * Change the list of the node at target: drop `remove` (if valid) and
 * add[0..nadd) (skipping the node itself and ids already there).  When the
 * result overflows the node's slots it is pruned to max_neighbors.
 * Returns false if the node is gone or the list kept changing under us.
 */
bool
DiskannAddNeighbors(DiskannShared *ds, ItemPointer target,
					const ItemPointerData *add, int nadd, ItemPointer remove)
{
	ItemPointerData *list = palloc(sizeof(ItemPointerData) * (ds->cap + nadd));
	ItemPointerData *before = palloc(sizeof(ItemPointerData) * ds->cap);
	ItemPointerData *pruned = palloc(sizeof(ItemPointerData) * ds->cap);
	float	   *tvec = palloc(sizeof(float) * ds->dim);
	bool		done = false;

	for (int attempt = 0; attempt < 4 && !done; attempt++)
	{
		Buffer		buf;
		Page		page;
		DiskannNodeTuple ntup;
		int			nbefore;
		int			n = 0;
		bool		changed = false;
		int			npruned = -1;

		buf = ReadBuffer(ds->index, ItemPointerGetBlockNumber(target));
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		ntup = (DiskannNodeTuple) OmenPageGetTuple(page, ItemPointerGetOffsetNumber(target));
		if (ntup == NULL || ntup->state == DISKANN_NODE_FREE)
		{
			UnlockReleaseBuffer(buf);
			break;
		}
		nbefore = Min(ntup->count, ds->cap);
		memcpy(before, ntup->neighbors, sizeof(ItemPointerData) * nbefore);

		/* the new list */
		for (int i = 0; i < nbefore; i++)
		{
			if (remove && ItemPointerEquals(&before[i], remove))
			{
				changed = true;
				continue;
			}
			list[n++] = before[i];
		}
		for (int i = 0; i < nadd; i++)
		{
			bool		dup = ItemPointerEquals((ItemPointer) &add[i], target);

			for (int k = 0; k < n && !dup; k++)
				dup = ItemPointerEquals(&list[k], (ItemPointer) &add[i]);
			if (dup)
				continue;
			list[n++] = add[i];
			changed = true;
		}
		if (!changed)
		{
			UnlockReleaseBuffer(buf);
			done = true;
			break;
		}

		if (n > ds->cap)
		{
			uint8		state;

			/* prune with no lock held, then write if nothing changed */
			UnlockReleaseBuffer(buf);
			if (!DiskannReadNodeVector(ds, target, tvec, &state))
				break;
			npruned = DiskannPruneTids(ds, tvec, list, n, ds->r, pruned);
			CHECK_FOR_INTERRUPTS();

			buf = ReadBuffer(ds->index, ItemPointerGetBlockNumber(target));
			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			page = BufferGetPage(buf);
			ntup = (DiskannNodeTuple) OmenPageGetTuple(page, ItemPointerGetOffsetNumber(target));
			if (ntup == NULL || ntup->state == DISKANN_NODE_FREE)
			{
				UnlockReleaseBuffer(buf);
				break;
			}
			if (ntup->count != nbefore ||
				memcmp(ntup->neighbors, before, sizeof(ItemPointerData) * nbefore) != 0)
			{
				UnlockReleaseBuffer(buf);
				continue;		/* someone else changed it: start over */
			}
		}

		/* write the list */
		{
			OmenXLog	x;
			DiskannNodeTuple wtup;
			const ItemPointerData *src = npruned >= 0 ? pruned : list;
			int			cnt = npruned >= 0 ? npruned : n;

			OmenXLogStart(&x, ds->index);
			page = OmenXLogRegister(&x, buf, false);
			wtup = (DiskannNodeTuple) OmenPageGetTuple(page, ItemPointerGetOffsetNumber(target));
			memcpy(wtup->neighbors, src, sizeof(ItemPointerData) * cnt);
			for (int i = cnt; i < ds->cap; i++)
				ItemPointerSetInvalid(&wtup->neighbors[i]);
			wtup->count = cnt;
			OmenXLogFinish(&x);
			UnlockReleaseBuffer(buf);
			done = true;
		}
	}
	pfree(list);
	pfree(before);
	pfree(pruned);
	pfree(tvec);
	return done;
}

/*
 * Reuse a free node slot on node page blkno (and its vector slot) for the
 * new node.  Returns false, and clears the page's free-space entry, if the
 * page has no free slot.
 */
static bool
ReuseSlot(DiskannShared *ds, BlockNumber blkno, DiskannNodeTuple ntup,
		  DiskannVectorTuple vtup, ItemPointer nodetid)
{
	Buffer		buf;
	Buffer		vbuf = InvalidBuffer;
	Page		page;
	OffsetNumber found = InvalidOffsetNumber;
	int			nfree = 0;
	ItemPointerData vectid;
	OmenXLog	x;

	if (blkno >= RelationGetNumberOfBlocks(ds->index))
		return false;
	buf = ReadBuffer(ds->index, blkno);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	if (!PageIsNew(page) &&
		OmenPageGetOpaque(page)->page_id == OMEN_PAGE_ID &&
		OmenPageGetOpaque(page)->kind == DISKANN_PAGE_NODE)
	{
		for (OffsetNumber off = FirstOffsetNumber;
			 off <= PageGetMaxOffsetNumber(page); off++)
		{
			DiskannNodeTuple t = (DiskannNodeTuple) OmenPageGetTuple(page, off);

			if (t && t->state == DISKANN_NODE_FREE)
			{
				if (found == InvalidOffsetNumber)
				{
					found = off;
					vectid = t->vectid;
				}
				nfree++;
			}
		}
	}
	if (found == InvalidOffsetNumber)
	{
		UnlockReleaseBuffer(buf);
		RecordPageWithFreeSpace(ds->index, blkno, 0);
		return false;
	}

	OmenXLogStart(&x, ds->index);
	page = OmenXLogRegister(&x, buf, false);
	if (ds->bits != 0)
	{
		Page		vpage;
		DiskannVectorTuple old;

		vbuf = ReadBuffer(ds->index, ItemPointerGetBlockNumber(&vectid));
		LockBuffer(vbuf, BUFFER_LOCK_EXCLUSIVE);
		vpage = OmenXLogRegister(&x, vbuf, false);
		old = (DiskannVectorTuple) OmenPageGetTuple(vpage, ItemPointerGetOffsetNumber(&vectid));
		if (old == NULL)
			elog(ERROR, "omen_diskann index \"%s\": free node at (%u,%u) has no vector slot",
				 RelationGetRelationName(ds->index), blkno, found);
		memcpy(old, vtup, ds->vecsize);
	}
	else
		ItemPointerSetInvalid(&vectid);
	ntup->vectid = vectid;
	memcpy(OmenPageGetTuple(page, found), ntup, ds->nodesize);
	OmenXLogFinish(&x);
	if (BufferIsValid(vbuf))
		UnlockReleaseBuffer(vbuf);
	UnlockReleaseBuffer(buf);
	if (nfree == 1)
		RecordPageWithFreeSpace(ds->index, blkno, 0);
	ItemPointerSet(nodetid, blkno, found);
	return true;
}

/* Lock the hinted page of a kind if it has room for sz bytes, else extend */
static Buffer
PageWithRoom(DiskannShared *ds, BlockNumber hint, uint16 kind, Size sz,
			 bool *isnew)
{
	*isnew = false;
	if (hint != InvalidBlockNumber &&
		hint < RelationGetNumberOfBlocks(ds->index))
	{
		Buffer		buf = ReadBuffer(ds->index, hint);
		Page		page;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		if (!PageIsNew(page) &&
			OmenPageGetOpaque(page)->page_id == OMEN_PAGE_ID &&
			OmenPageGetOpaque(page)->kind == kind &&
			PageGetFreeSpace(page) >= MAXALIGN(sz))
			return buf;
		UnlockReleaseBuffer(buf);
	}
	*isnew = true;
	return OmenNewBuffer(ds->index, MAIN_FORKNUM);
}

/* Append the node (and vector) tuple to the insert pages */
static void
AppendNode(DiskannShared *ds, DiskannNodeTuple ntup, DiskannVectorTuple vtup,
		   ItemPointer nodetid)
{
	DiskannMetaPageData meta;
	Buffer		nbuf,
				vbuf = InvalidBuffer,
				mbuf = InvalidBuffer;
	bool		nnew,
				vnew = false;
	Page		npage;
	OffsetNumber off;
	OmenXLog	x;

	DiskannReadMeta(ds->index, &meta);
	nbuf = PageWithRoom(ds, meta.node_insert, DISKANN_PAGE_NODE,
						ds->nodesize, &nnew);
	if (ds->bits != 0)
		vbuf = PageWithRoom(ds, meta.vector_insert, DISKANN_PAGE_VECTOR,
							ds->vecsize, &vnew);

	OmenXLogStart(&x, ds->index);
	npage = OmenXLogRegister(&x, nbuf, nnew);
	if (nnew)
		OmenInitPage(npage, DISKANN_PAGE_NODE);
	if (BufferIsValid(vbuf))
	{
		Page		vpage = OmenXLogRegister(&x, vbuf, vnew);

		if (vnew)
			OmenInitPage(vpage, DISKANN_PAGE_VECTOR);
		off = PageAddItem(vpage, (Item) vtup, ds->vecsize, InvalidOffsetNumber,
						  false, false);
		if (off == InvalidOffsetNumber)
			elog(ERROR, "omen_diskann could not add a vector tuple");
		ItemPointerSet(&ntup->vectid, BufferGetBlockNumber(vbuf), off);
	}
	else
		ItemPointerSetInvalid(&ntup->vectid);
	off = PageAddItem(npage, (Item) ntup, ds->nodesize, InvalidOffsetNumber,
					  false, false);
	if (off == InvalidOffsetNumber)
		elog(ERROR, "omen_diskann could not add a node tuple");
	ItemPointerSet(nodetid, BufferGetBlockNumber(nbuf), off);

	if (nnew || vnew)
	{
		DiskannMetaPage m;

		mbuf = ReadBuffer(ds->index, DISKANN_METAPAGE_BLKNO);
		LockBuffer(mbuf, BUFFER_LOCK_EXCLUSIVE);
		m = DiskannPageGetMeta(OmenXLogRegister(&x, mbuf, false));
		if (nnew)
			m->node_insert = BufferGetBlockNumber(nbuf);
		if (vnew)
			m->vector_insert = BufferGetBlockNumber(vbuf);
	}
	OmenXLogFinish(&x);
	if (BufferIsValid(mbuf))
		UnlockReleaseBuffer(mbuf);
	if (BufferIsValid(vbuf))
		UnlockReleaseBuffer(vbuf);
	UnlockReleaseBuffer(nbuf);
}

/* Put a new node somewhere: a freed slot if the free space map knows one */
static void
PlaceNode(DiskannShared *ds, DiskannNodeTuple ntup, DiskannVectorTuple vtup,
		  ItemPointer nodetid)
{
	for (int tries = 0; tries < 8; tries++)
	{
		BlockNumber blkno = GetPageWithFreeSpace(ds->index, BLCKSZ / 4);

		if (blkno == InvalidBlockNumber)
			break;
		if (ReuseSlot(ds, blkno, ntup, vtup, nodetid))
			return;
	}
	AppendNode(ds, ntup, vtup, nodetid);
}

/* Count an insert into an index without a quantiser; train when enough */
static void
CountUntrained(DiskannShared *ds)
{
	Buffer		buf = ReadBuffer(ds->index, DISKANN_METAPAGE_BLKNO);
	OmenXLog	x;
	DiskannMetaPage meta;
	bool		train;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	OmenXLogStart(&x, ds->index);
	meta = DiskannPageGetMeta(OmenXLogRegister(&x, buf, false));
	meta->nodes++;
	meta->uncoded++;
	train = !meta->trained && meta->nodes >= DISKANN_TRAIN_MIN;
	OmenXLogFinish(&x);
	UnlockReleaseBuffer(buf);
	if (train)
		DiskannMaybeTrain(ds->index);
}

/* Insert one prepared vector (dim floats) for heap row heaptid */
void
DiskannInsertVector(DiskannShared *ds, const float *vec, ItemPointer heaptid)
{
	DiskannNodeTuple ntup = palloc0(ds->nodesize);
	DiskannVectorTuple vtup = palloc0(ds->vecsize);
	ItemPointerData tid;
	int			n = 0;

	ntup->state = DISKANN_NODE_LIVE;
	ntup->heaptid = *heaptid;
	if (ds->bits == 0)
	{
		memcpy(DiskannNodeCode(ntup, ds->cap), vec, sizeof(float) * ds->dim);
		ntup->flags = DISKANN_NODE_CODED;
	}
	else if (ds->quant)
	{
		DiskannQuantEncode(ds->quant, vec, DiskannNodeCode(ntup, ds->cap));
		ntup->flags = DISKANN_NODE_CODED;
	}
	vtup->heaptid = *heaptid;
	memcpy(vtup->data, vec, sizeof(float) * ds->dim);
	for (int i = 0; i < ds->cap; i++)
		ItemPointerSetInvalid(&ntup->neighbors[i]);

	/* neighbours: RobustPrune over what a search with the vector meets */
	if (ItemPointerIsValid(&ds->entry))
	{
		DiskannSearch s;
		ItemPointerData *cands;
		int			ncands = 0;

		DiskannSearchInit(&s, ds, vec, ds->l, false);
		s.search.record_expanded = true;
		if (DiskannSearchStart(&s))
			OmenGraphSearchRun(&s.search, 0);
		cands = palloc(sizeof(ItemPointerData) *
					   (s.search.nexpanded + s.search.result.count + 1));
		for (int i = 0; i < s.search.nexpanded; i++)
			cands[ncands++] = s.nodes[s.search.expanded[i].aux].tid;
		for (int i = 0; i < s.search.result.count; i++)
			cands[ncands++] = s.nodes[s.search.result.items[i].aux].tid;
		n = DiskannPruneTids(ds, vec, cands, ncands, ds->r, ntup->neighbors);
		DiskannSearchFree(&s);
		pfree(cands);
	}
	ntup->count = n;

	PlaceNode(ds, ntup, vtup, &tid);

	if (n == 0)
	{
		/* the first node, or a race with it: become or join the entry */
		Buffer		buf = ReadBuffer(ds->index, DISKANN_METAPAGE_BLKNO);
		DiskannMetaPage meta;
		ItemPointerData entry;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		meta = DiskannPageGetMeta(BufferGetPage(buf));
		entry = meta->entry;
		if (!ItemPointerIsValid(&entry))
		{
			OmenXLog	x;

			OmenXLogStart(&x, ds->index);
			meta = DiskannPageGetMeta(OmenXLogRegister(&x, buf, false));
			meta->entry = tid;
			OmenXLogFinish(&x);
		}
		UnlockReleaseBuffer(buf);
		if (ItemPointerIsValid(&entry) && !ItemPointerEquals(&entry, &tid))
		{
			DiskannAddNeighbors(ds, &tid, &entry, 1, NULL);
			DiskannAddNeighbors(ds, &entry, &tid, 1, NULL);
		}
		ds->entry = ItemPointerIsValid(&entry) ? entry : tid;
	}

	/* backlinks */
	for (int i = 0; i < n; i++)
	{
		ItemPointerData nb = ntup->neighbors[i];

		DiskannAddNeighbors(ds, &nb, &tid, 1, NULL);
	}

	if (!ds->trained)
		CountUntrained(ds);

	pfree(ntup);
	pfree(vtup);
}

/*
 * Give every live or deleted node without a code its code.  Each node page
 * is changed under its exclusive lock, reading vectors under share locks
 * (node page, then vector page: the usual order).
 */
static void
CodeAllNodes(DiskannShared *ds)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(ds->index);
	uint8	   *code = palloc(ds->codebytes);

	for (BlockNumber blkno = 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;
		OmenXLog	x;
		bool		started = false;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(ds->index, blkno);
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
			float	   *vec;

			if (!t || t->state == DISKANN_NODE_FREE ||
				(t->flags & DISKANN_NODE_CODED))
				continue;
			vec = palloc(sizeof(float) * ds->dim);
			if (DiskannReadVector(ds, &t->vectid, &t->heaptid, vec))
			{
				DiskannQuantEncode(ds->quant, vec, code);
				if (!started)
				{
					OmenXLogStart(&x, ds->index);
					page = OmenXLogRegister(&x, buf, false);
					started = true;
					t = (DiskannNodeTuple) OmenPageGetTuple(page, off);
				}
				memcpy(DiskannNodeCode(t, ds->cap), code, ds->codebytes);
				t->flags |= DISKANN_NODE_CODED;
			}
			pfree(vec);
		}
		if (started)
			OmenXLogFinish(&x);
		UnlockReleaseBuffer(buf);
	}
	pfree(code);
}

/*
 * Train the quantiser of an index that has none, once it holds enough
 * nodes, and code its nodes.  One session trains; the others go on.
 */
void
DiskannMaybeTrain(Relation index)
{
	DiskannMetaPageData meta;
	BlockNumber nblocks;
	float	   *vecs;
	int			n = 0;
	int			max;
	DiskannQuant *q;
	BlockNumber start;
	uint32		npages;
	DiskannShared ds;

	DiskannReadMeta(index, &meta);
	if (meta.trained || meta.bits == 0 || meta.nodes < DISKANN_TRAIN_MIN)
		return;
	if (!ConditionalLockPage(index, DISKANN_METAPAGE_BLKNO, ExclusiveLock))
		return;
	DiskannReadMeta(index, &meta);
	if (meta.trained)
	{
		UnlockPage(index, DISKANN_METAPAGE_BLKNO, ExclusiveLock);
		return;
	}

	/* the sample: the vectors on the vector pages */
	max = DISKANN_TRAIN_SAMPLE;
	vecs = palloc_extended(sizeof(float) * meta.dim * max, MCXT_ALLOC_HUGE);
	nblocks = RelationGetNumberOfBlocks(index);
	for (BlockNumber blkno = 1; blkno < nblocks && n < max; blkno++)
	{
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;

		CHECK_FOR_INTERRUPTS();
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (!PageIsNew(page) && OmenPageGetOpaque(page)->kind == DISKANN_PAGE_VECTOR)
		{
			for (OffsetNumber off = FirstOffsetNumber;
				 off <= PageGetMaxOffsetNumber(page) && n < max; off++)
			{
				DiskannVectorTuple v = (DiskannVectorTuple) OmenPageGetTuple(page, off);

				if (v)
					memcpy(&vecs[(Size) n++ * meta.dim], v->data,
						   sizeof(float) * meta.dim);
			}
		}
		UnlockReleaseBuffer(buf);
	}

	q = DiskannQuantTrain(vecs, n, meta.dim, meta.bits,
						  (OmenMetric) meta.metric);
	DiskannWriteQuant(index, q, &start, &npages, true);
	{
		Buffer		buf = ReadBuffer(index, DISKANN_METAPAGE_BLKNO);
		OmenXLog	x;
		DiskannMetaPage m;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		OmenXLogStart(&x, index);
		m = DiskannPageGetMeta(OmenXLogRegister(&x, buf, false));
		m->trained = true;
		m->quant_start = start;
		m->quant_pages = npages;
		m->ncoarse = q->ncoarse;
		m->uncoded = 0;
		OmenXLogFinish(&x);
		UnlockReleaseBuffer(buf);
	}
	UnlockPage(index, DISKANN_METAPAGE_BLKNO, ExclusiveLock);

	DiskannInitShared(&ds, index);
	CodeAllNodes(&ds);
	pfree(vecs);
}

/* Code nodes written without one (VACUUM calls this after training) */
void
DiskannCodeUncoded(DiskannShared *ds)
{
	if (ds->quant)
		CodeAllNodes(ds);
}

/* Set the dimension of an index built empty on a column without typmod */
static void
SetIndexDim(Relation index, int dim)
{
	Buffer		buf = ReadBuffer(index, DISKANN_METAPAGE_BLKNO);
	DiskannMetaPage meta;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	meta = DiskannPageGetMeta(BufferGetPage(buf));
	if (meta->dim == 0)
	{
		OmenXLog	x;

		OmenXLogStart(&x, index);
		meta = DiskannPageGetMeta(OmenXLogRegister(&x, buf, false));
		meta->dim = dim;
		OmenXLogFinish(&x);
	}
	UnlockReleaseBuffer(buf);
}

/* aminsert */
bool
diskanninsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
			  Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
			  IndexInfo *indexInfo)
{
	MemoryContext ctx;
	MemoryContext old;
	DiskannShared ds;
	Vector	   *v;
	float	   *vec;

	if (isnull[0])
		return false;

	ctx = AllocSetContextCreate(CurrentMemoryContext, "omen_diskann aminsert",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);

	v = DatumGetVector(values[0]);
	DiskannInitShared(&ds, index);
	if (ds.dim == 0)
	{
		DiskannCheckDim(index, v->dim, ds.bits, ds.cap, ds.dist.metric);
		SetIndexDim(index, v->dim);
		DiskannInitShared(&ds, index);
	}
	vec = palloc(sizeof(float) * ds.dim);
	if (OmenPrepareVector(&ds.dist, v, vec))
		DiskannInsertVector(&ds, vec, heap_tid);

	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	return false;
}

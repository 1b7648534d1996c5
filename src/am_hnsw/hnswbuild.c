/*
 * hnswbuild.c
 *	  omen_hnsw: CREATE INDEX.
 *
 * The graph is built in memory, within maintenance_work_mem, by inserting
 * every heap tuple in scan order (ALGORITHMS.md section 2), then written
 * out page by page with no WAL and logged once (log_newpage_range).  When
 * memory runs out the graph built so far is written and logged, and the
 * remaining tuples go through the ordinary page insert path, with a NOTICE
 * saying how much memory would have been enough.
 *
 * Page layout written here is the same the insert path maintains: block 0
 * the meta page, then data pages each holding element tuples and their
 * neighbour tuples (an element's neighbour tuple on the same page when both
 * fit).
 */
#include "postgres.h"

#include <math.h>

#include "access/tableam.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* Progress phases (pg_stat_progress_create_index.phase) */
#define PROGRESS_HNSW_PHASE_BUILD		2
#define PROGRESS_HNSW_PHASE_WRITE		3

/* One vector of the in-memory graph */
typedef struct BuildNode
{
	ItemPointerData heaptids[HNSW_HEAPTIDS];
	uint8		nheaptids;
	uint8		level;
	float	   *vec;
	int32	   *neighbors;		/* (level + 2) * m slots, layer 0 first */
	uint8	   *counts;			/* used slots per layer */
	ItemPointerData tid;		/* where the element is written */
	ItemPointerData ntid;		/* where its neighbour tuple is written */
	bool		apart;			/* too big to share a page: ntid first */
} BuildNode;

typedef struct HnswBuildState
{
	Relation	heap;
	Relation	index;
	IndexInfo  *indexInfo;
	HnswShared	hs;
	int			maxlevel;

	BuildNode  *nodes;
	int			nnodes;
	int			maxnodes;
	int			entry;			/* node index, -1 if none */
	int			entry_level;

	MemoryContext graphCtx;		/* vectors and neighbour lists */
	MemoryContext tmpCtx;		/* per-tuple work */
	Size		memlimit;
	bool		ondisk;			/* graph flushed: inserting into pages */
	double		indtuples;
	double		reltuples;

	float	   *query;			/* the vector being inserted */
	OmenGraphSearch search;
} HnswBuildState;

/* OmenGraphOps.visit over the in-memory graph */
static void
MemVisit(void *arg, const uint64 *ids, int n, OmenVisit *out)
{
	HnswBuildState *bs = (HnswBuildState *) arg;

	for (int i = 0; i < n; i++)
	{
		out[i].dist = OmenDistanceCalc(&bs->hs.dist, bs->query,
									   bs->nodes[ids[i]].vec);
		out[i].isresult = true;
		out[i].ok = true;
		out[i].aux = 0;
	}
}

/* OmenGraphOps.neighbors over the in-memory graph */
static int
MemNeighbors(void *arg, uint64 id, uint32 aux, int layer, uint64 *out, int max)
{
	HnswBuildState *bs = (HnswBuildState *) arg;
	BuildNode  *node = &bs->nodes[id];
	int			start;
	int			n;

	if (layer > node->level)
		return 0;
	start = HnswLayerStart(layer, bs->hs.m);
	n = Min(node->counts[layer], max);
	for (int i = 0; i < n; i++)
		out[i] = (uint64) node->neighbors[start + i];
	return n;
}

static const OmenGraphOps hnsw_mem_ops = {MemVisit, MemNeighbors};

typedef struct MemPairArg
{
	HnswBuildState *bs;
	const OmenCand *cands;
} MemPairArg;

/* RobustPrune's pairwise distance over in-memory nodes */
static float
MemPairDist(void *arg, int i, int j)
{
	MemPairArg *pa = (MemPairArg *) arg;
	HnswBuildState *bs = pa->bs;

	return OmenDistanceCalc(&bs->hs.dist, bs->nodes[pa->cands[i].id].vec,
							bs->nodes[pa->cands[j].id].vec);
}

/* Add p to e's list on layer, pruning e's list when it is full */
static void
MemLinkBack(HnswBuildState *bs, int e, int p, int layer, float dist)
{
	BuildNode  *node = &bs->nodes[e];
	int			cap = HnswLayerCapacity(layer, bs->hs.m);
	int			start = HnswLayerStart(layer, bs->hs.m);
	int			n = node->counts[layer];
	OmenCand	cands[HNSW_MAX_M * 2 + 1];
	int			chosen[HNSW_MAX_M * 2 + 1];
	MemPairArg	pa;
	int			nchosen;

	if (n < cap)
	{
		node->neighbors[start + n] = p;
		node->counts[layer]++;
		return;
	}

	for (int i = 0; i < n; i++)
	{
		int			x = node->neighbors[start + i];

		cands[i].id = x;
		cands[i].aux = 0;
		cands[i].dist = OmenDistanceCalc(&bs->hs.dist, node->vec,
										 bs->nodes[x].vec);
	}
	cands[n].id = p;
	cands[n].aux = 0;
	cands[n].dist = dist;
	OmenSortCands(cands, n + 1);
	pa.bs = bs;
	pa.cands = cands;
	nchosen = OmenRobustPrune(cands, n + 1, 1.0f, cap, MemPairDist, &pa,
							  chosen);
	for (int i = 0; i < nchosen; i++)
		node->neighbors[start + i] = (int32) cands[chosen[i]].id;
	node->counts[layer] = nchosen;
}

/* Insert one prepared vector into the in-memory graph */
static void
MemInsert(HnswBuildState *bs, const float *vec, ItemPointer heaptid)
{
	HnswShared *hs = &bs->hs;
	OmenGraphSearch *s = &bs->search;
	int			level = HnswRandomLevel(hs->ml, bs->maxlevel);
	int			p;
	BuildNode  *node;
	int			nslots = HNSW_NEIGHBOR_SLOTS(level, hs->m);
	int			top;
	OmenCand   *results[HNSW_MAX_LEVEL + 1];
	int			nresults[HNSW_MAX_LEVEL + 1];
	MemoryContext old;

	bs->query = (float *) vec;

	/* search first: a duplicate vector only adds its heap TID */
	top = Min(level, bs->entry_level);
	memset(nresults, 0, sizeof(nresults));
	if (bs->entry >= 0)
	{
		OmenCand	best;

		OmenGraphSearchReset(s, 1);
		OmenGraphSearchAddEntry(s, (uint64) bs->entry);
		for (int l = bs->entry_level; l > top; l--)
		{
			OmenCand   *r;

			OmenGraphSearchRun(s, l);
			OmenGraphSearchTakeResults(s, &r);
			best = r[0];
			pfree(r);
			OmenGraphSearchReset(s, 1);
			OmenGraphSearchAddCand(s, best);
		}
		for (int l = top; l >= 0; l--)
		{
			s->ef = hs->ef_construction;
			OmenGraphSearchRun(s, l);
			nresults[l] = OmenGraphSearchTakeResults(s, &results[l]);
			OmenGraphSearchReset(s, hs->ef_construction);
			for (int i = 0; i < nresults[l]; i++)
				OmenGraphSearchAddCand(s, results[l][i]);
		}

		if (nresults[0] > 0 && results[0][0].dist == 0.0f)
		{
			BuildNode  *dup = &bs->nodes[results[0][0].id];

			if (dup->nheaptids < HNSW_HEAPTIDS &&
				memcmp(dup->vec, vec, sizeof(float) * hs->dim) == 0)
			{
				dup->heaptids[dup->nheaptids++] = *heaptid;
				return;
			}
		}
	}

	/* a new node */
	if (bs->nnodes == bs->maxnodes)
	{
		bs->maxnodes *= 2;
		bs->nodes = repalloc_huge(bs->nodes, sizeof(BuildNode) * bs->maxnodes);
	}
	p = bs->nnodes++;
	node = &bs->nodes[p];
	memset(node, 0, sizeof(BuildNode));
	old = MemoryContextSwitchTo(bs->graphCtx);
	node->vec = palloc(sizeof(float) * hs->dim);
	node->neighbors = palloc(sizeof(int32) * nslots);
	node->counts = palloc0(level + 1);
	MemoryContextSwitchTo(old);
	memcpy(node->vec, vec, sizeof(float) * hs->dim);
	node->heaptids[0] = *heaptid;
	node->nheaptids = 1;
	node->level = level;

	if (bs->entry < 0)
	{
		bs->entry = p;
		bs->entry_level = level;
		return;
	}

	for (int l = top; l >= 0; l--)
	{
		int			cap = HnswLayerCapacity(l, hs->m);
		int			chosen[HNSW_MAX_M * 2];
		int			nchosen;
		MemPairArg	pa = {bs, results[l]};
		int			start = HnswLayerStart(l, hs->m);

		nchosen = OmenRobustPrune(results[l], nresults[l], 1.0f, cap,
								  MemPairDist, &pa, chosen);
		for (int i = 0; i < nchosen; i++)
			node->neighbors[start + i] = (int32) results[l][chosen[i]].id;
		node->counts[l] = nchosen;
		for (int i = 0; i < nchosen; i++)
		{
			OmenCand   *c = &results[l][chosen[i]];

			MemLinkBack(bs, (int) c->id, p, l, c->dist);
		}
		pfree(results[l]);
	}

	if (level > bs->entry_level)
	{
		bs->entry = p;
		bs->entry_level = level;
	}
}

/* Write the meta page into buf (a new, locked page) */
static void
InitMetaPage(Page page, HnswShared *hs, ItemPointer entry, int entry_level)
{
	HnswMetaPage meta;

	OmenInitPage(page, HNSW_PAGE_META);
	meta = HnswPageGetMeta(page);
	memset(meta, 0, sizeof(HnswMetaPageData));
	meta->magic = HNSW_MAGIC;
	meta->version = HNSW_VERSION;
	meta->dim = hs->dim;
	meta->m = hs->m;
	meta->ef_construction = hs->ef_construction;
	meta->storage = hs->storage;
	meta->metric = hs->dist.metric;
	meta->entry_level = entry_level;
	if (entry)
		meta->entry = *entry;
	else
		ItemPointerSetInvalid(&meta->entry);
	((PageHeader) page)->pd_lower =
		((char *) meta + sizeof(HnswMetaPageData)) - (char *) page;
}

/* Set the meta page's dimension and entry point (no WAL: build only) */
static void
UpdateMetaNoWal(HnswBuildState *bs, ItemPointer entry, int entry_level)
{
	Buffer		buf = ReadBuffer(bs->index, HNSW_METAPAGE_BLKNO);
	HnswMetaPage meta;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	meta = HnswPageGetMeta(BufferGetPage(buf));
	meta->dim = bs->hs.dim;
	meta->entry_level = entry_level;
	if (entry)
		meta->entry = *entry;
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/* Finish one data page built in memory: append it to the index */
static void
FlushPage(HnswBuildState *bs, Page page)
{
	Buffer		buf = OmenNewBuffer(bs->index, MAIN_FORKNUM);

	memcpy(BufferGetPage(buf), page, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/*
 * Write the in-memory graph to data pages: first decide every tuple's
 * place (so neighbour lists can name their targets), then fill the pages.
 */
static void
WriteGraph(HnswBuildState *bs)
{
	HnswShared *hs = &bs->hs;
	Size		esize = HNSW_ELEMENT_SIZE(hs->dim, hs->storage);
	BlockNumber blkno = RelationGetNumberOfBlocks(bs->index);
	Size		freespace = HNSW_PAGE_CAPACITY;
	OffsetNumber off = FirstOffsetNumber;
	Page		page;
	BlockNumber first = blkno;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE,
								 PROGRESS_HNSW_PHASE_WRITE);

	/* placement */
	for (int i = 0; i < bs->nnodes; i++)
	{
		BuildNode  *node = &bs->nodes[i];
		Size		nsize = HNSW_NEIGHBOR_SIZE(node->level, hs->m);
		Size		both = MAXALIGN(esize) + MAXALIGN(nsize) + 2 * sizeof(ItemIdData);

		node->apart = (both > HNSW_PAGE_CAPACITY);
		if (!node->apart)
		{
			if (both > freespace)
			{
				blkno++;
				freespace = HNSW_PAGE_CAPACITY;
				off = FirstOffsetNumber;
			}
			ItemPointerSet(&node->tid, blkno, off++);
			ItemPointerSet(&node->ntid, blkno, off++);
			freespace -= both;
		}
		else
		{
			/* too big to share: neighbour tuple, then element, apart */
			Size		one = MAXALIGN(nsize) + sizeof(ItemIdData);

			if (one > freespace)
			{
				blkno++;
				freespace = HNSW_PAGE_CAPACITY;
				off = FirstOffsetNumber;
			}
			ItemPointerSet(&node->ntid, blkno, off++);
			freespace -= one;
			one = MAXALIGN(esize) + sizeof(ItemIdData);
			if (one > freespace)
			{
				blkno++;
				freespace = HNSW_PAGE_CAPACITY;
				off = FirstOffsetNumber;
			}
			ItemPointerSet(&node->tid, blkno, off++);
			freespace -= one;
		}
	}

	/* fill pages in the same order */
	page = (Page) palloc(BLCKSZ);
	OmenInitPage(page, HNSW_PAGE_DATA);
	blkno = first;
	{
		HnswElementTuple etup = palloc0(esize);
		HnswNeighborTuple ntup = palloc0(HNSW_NEIGHBOR_SIZE(bs->maxlevel, hs->m));

		for (int i = 0; i < bs->nnodes; i++)
		{
			BuildNode  *node = &bs->nodes[i];
			Size		nsize = HNSW_NEIGHBOR_SIZE(node->level, hs->m);
			int			nslots = HNSW_NEIGHBOR_SLOTS(node->level, hs->m);

			CHECK_FOR_INTERRUPTS();

			memset(etup, 0, esize);
			etup->type = HNSW_TUPLE_ELEMENT;
			etup->level = node->level;
			etup->state = HNSW_ELEMENT_LIVE;
			for (int j = 0; j < HNSW_HEAPTIDS; j++)
			{
				if (j < node->nheaptids)
					etup->heaptids[j] = node->heaptids[j];
				else
					ItemPointerSetInvalid(&etup->heaptids[j]);
			}
			etup->neighbortid = node->ntid;
			HnswElementSetVector(hs, etup, node->vec);

			memset(ntup, 0, nsize);
			ntup->type = HNSW_TUPLE_NEIGHBORS;
			ntup->count = nslots;
			for (int j = 0; j < nslots; j++)
				ItemPointerSetInvalid(&ntup->tids[j]);
			for (int l = 0; l <= node->level; l++)
			{
				int			start = HnswLayerStart(l, hs->m);

				for (int j = 0; j < node->counts[l]; j++)
					ntup->tids[start + j] =
						bs->nodes[node->neighbors[start + j]].tid;
			}

			/* the order matches the placement pass exactly */
			for (int part = 0; part < 2; part++)
			{
				bool		element = node->apart ? (part == 1) : (part == 0);
				ItemPointer want = element ? &node->tid : &node->ntid;
				OffsetNumber got;

				while (ItemPointerGetBlockNumber(want) > blkno)
				{
					FlushPage(bs, page);
					OmenInitPage(page, HNSW_PAGE_DATA);
					blkno++;
				}
				if (element)
					got = PageAddItem(page, (Item) etup, esize,
									  InvalidOffsetNumber, false, false);
				else
					got = PageAddItem(page, (Item) ntup, nsize,
									  InvalidOffsetNumber, false, false);
				if (got != ItemPointerGetOffsetNumber(want))
					elog(ERROR, "omen_hnsw build: tuple placed at offset %u, planned %u",
						 got, ItemPointerGetOffsetNumber(want));
			}
		}
		if (bs->nnodes > 0)
			FlushPage(bs, page);
		pfree(etup);
		pfree(ntup);
	}
	pfree(page);

	UpdateMetaNoWal(bs, bs->entry >= 0 ? &bs->nodes[bs->entry].tid : NULL,
					bs->entry_level);
}

/* Release the in-memory graph */
static void
FreeGraph(HnswBuildState *bs)
{
	MemoryContextReset(bs->graphCtx);
	bs->nnodes = 0;
	bs->entry = -1;
	bs->entry_level = -1;
}

/*
 * Memory ran out: write the graph, log it, and go on inserting into pages.
 */
static void
SwitchToDisk(HnswBuildState *bs)
{
	Size		used = MemoryContextMemAllocated(bs->graphCtx, true) +
		sizeof(BuildNode) * bs->maxnodes;
	double		perrow = bs->indtuples > 0 ? used / bs->indtuples : 0;
	double		need = perrow * Max(bs->reltuples, bs->indtuples) / (1024.0 * 1024.0);

	ereport(NOTICE,
			(errmsg("omen_hnsw graph no longer fits into maintenance_work_mem after %.0f tuples",
					bs->indtuples),
			 errdetail("Building will take longer: the remaining tuples are inserted into the index pages one by one."),
			 errhint("Increase maintenance_work_mem to about %.0f MB to build this index in memory.",
					 ceil(need * 1.1) + 1)));

	WriteGraph(bs);
	FreeGraph(bs);
	OmenLogBuiltFork(bs->index, MAIN_FORKNUM);
	bs->ondisk = true;
	HnswFreeShared(&bs->hs);
	HnswInitShared(&bs->hs, bs->index);
}

/* Called for each heap tuple by the table scan */
static void
BuildCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			  bool tupleIsAlive, void *state)
{
	HnswBuildState *bs = (HnswBuildState *) state;
	MemoryContext old;
	Vector	   *v;
	float	   *vec;

	if (isnull[0])
		return;

	old = MemoryContextSwitchTo(bs->tmpCtx);
	v = DatumGetVector(values[0]);

	/* a column without typmod: the first vector fixes the length */
	if (bs->hs.dim == 0)
	{
		HnswCheckDim(index, v->dim, bs->hs.storage);
		bs->hs.dim = v->dim;
		bs->hs.dist.dim = v->dim;
	}

	vec = palloc(sizeof(float) * bs->hs.dim);
	if (OmenPrepareVector(&bs->hs.dist, v, vec))
	{
		if (!bs->ondisk &&
			MemoryContextMemAllocated(bs->graphCtx, true) +
			sizeof(BuildNode) * bs->maxnodes > bs->memlimit)
		{
			MemoryContextSwitchTo(old);
			SwitchToDisk(bs);
			MemoryContextSwitchTo(bs->tmpCtx);
		}
		if (bs->ondisk)
			HnswInsertVector(&bs->hs, vec, tid);
		else
			MemInsert(bs, vec, tid);
		bs->indtuples++;
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE,
									 (int64) bs->indtuples);
	}

	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpCtx);
}

/* Read and check the options; set up the shared parameters for a build */
static void
InitBuildShared(HnswShared *hs, Relation index)
{
	memset(hs, 0, sizeof(*hs));
	hs->index = index;
	OmenDistanceInit(&hs->dist, index);
	hs->m = HnswGetM(index);
	hs->ef_construction = HnswGetEfConstruction(index);
	hs->storage = HnswGetStorage(index);
	hs->ml = 1.0f / logf((float) hs->m);
	hs->entry_level = -1;
	hs->dim = Max(hs->dist.dim, 0);
	hs->dist.dim = hs->dim;

	if (hs->ef_construction < 2 * hs->m)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ef_construction must be at least 2 * m"),
				 errdetail("ef_construction is %d and m is %d.",
						   hs->ef_construction, hs->m)));
	if (hs->dim > 0)
		HnswCheckDim(index, hs->dim, hs->storage);
}

/* Write an empty meta page to a fork and WAL-log it (even if unlogged) */
static void
WriteEmptyMeta(Relation index, ForkNumber fork, HnswShared *hs)
{
	Buffer		buf = OmenNewBuffer(index, fork);

	Assert(BufferGetBlockNumber(buf) == HNSW_METAPAGE_BLKNO);
	InitMetaPage(BufferGetPage(buf), hs, NULL, -1);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
	OmenLogBuiltFork(index, fork);
}

/* ambuild */
IndexBuildResult *
hnswbuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	IndexBuildResult *result;
	HnswBuildState bs;
	Buffer		buf;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data",
			 RelationGetRelationName(index));

	memset(&bs, 0, sizeof(bs));
	bs.heap = heap;
	bs.index = index;
	bs.indexInfo = indexInfo;
	InitBuildShared(&bs.hs, index);
	bs.maxlevel = HnswMaxLevel(bs.hs.m);
	bs.entry = -1;
	bs.entry_level = -1;
	bs.maxnodes = 1024;
	bs.nodes = palloc(sizeof(BuildNode) * bs.maxnodes);
	bs.memlimit = (Size) maintenance_work_mem * 1024;
	bs.reltuples = heap->rd_rel->reltuples;
	bs.graphCtx = AllocSetContextCreate(CurrentMemoryContext,
										"omen_hnsw build graph",
										ALLOCSET_DEFAULT_SIZES);
	bs.tmpCtx = AllocSetContextCreate(CurrentMemoryContext,
									  "omen_hnsw build tuple",
									  ALLOCSET_DEFAULT_SIZES);
	OmenGraphSearchInit(&bs.search, &hnsw_mem_ops, &bs,
						bs.hs.ef_construction, 2 * bs.hs.m, false);

	/* the meta page first, unlogged like the rest of the build */
	buf = OmenNewBuffer(index, MAIN_FORKNUM);
	InitMetaPage(BufferGetPage(buf), &bs.hs, NULL, -1);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE,
								 PROGRESS_HNSW_PHASE_BUILD);
	result = (IndexBuildResult *) palloc(sizeof(IndexBuildResult));
	result->heap_tuples = table_index_build_scan(heap, index, indexInfo,
												 true, true, BuildCallback,
												 &bs, NULL);

	if (!bs.ondisk)
	{
		WriteGraph(&bs);
		OmenLogBuiltFork(index, MAIN_FORKNUM);
	}
	/* else: pages written since the switch were WAL-logged as they went */

	result->index_tuples = bs.indtuples;

	OmenGraphSearchFree(&bs.search);
	MemoryContextDelete(bs.graphCtx);
	MemoryContextDelete(bs.tmpCtx);
	HnswFreeShared(&bs.hs);
	return result;
}

/* ambuildempty: the init fork of an unlogged index is an empty meta page */
void
hnswbuildempty(Relation index)
{
	HnswShared	hs;

	InitBuildShared(&hs, index);
	WriteEmptyMeta(index, INIT_FORKNUM, &hs);
}

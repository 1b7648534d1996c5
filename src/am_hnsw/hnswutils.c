/*
 * hnswutils.c
 *	  omen_hnsw: options, the meta page, element and neighbour tuples on
 *	  pages, and the graph search over pages (callbacks for the shared
 *	  best-first search in src/index_search.c).
 */
#include "postgres.h"

#include <math.h>

#include "access/generic_xlog.h"
#include "common/pg_prng.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "simd/omen_half.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

int			hnsw_ef_search = HNSW_DEFAULT_EF_SEARCH;

/* The index's options, or defaults */
HnswOptions *
HnswGetOptions(Relation index)
{
	return (HnswOptions *) index->rd_options;
}

/* m from the options */
int
HnswGetM(Relation index)
{
	HnswOptions *opts = HnswGetOptions(index);

	return opts ? opts->m : HNSW_DEFAULT_M;
}

/* ef_construction from the options */
int
HnswGetEfConstruction(Relation index)
{
	HnswOptions *opts = HnswGetOptions(index);

	return opts ? opts->ef_construction : HNSW_DEFAULT_EF_CONSTRUCTION;
}

/* storage from the options */
int
HnswGetStorage(Relation index)
{
	HnswOptions *opts = HnswGetOptions(index);

	return opts ? opts->storage : HNSW_STORAGE_FLOAT;
}

/* Copy the meta page */
void
HnswReadMeta(Relation index, HnswMetaPageData *meta)
{
	OmenReadMeta(index, HNSW_PAGE_META, meta, sizeof(HnswMetaPageData),
				 HNSW_MAGIC, HNSW_VERSION, "omen_hnsw");
}

/* Set up what searches and inserts on this index need */
void
HnswInitShared(HnswShared *hs, Relation index)
{
	HnswMetaPageData meta;

	HnswReadMeta(index, &meta);
	memset(hs, 0, sizeof(*hs));
	hs->index = index;
	OmenDistanceInit(&hs->dist, index);
	hs->dim = meta.dim;
	hs->dist.dim = meta.dim;
	hs->m = meta.m;
	hs->ef_construction = meta.ef_construction;
	hs->storage = meta.storage;
	hs->ml = 1.0f / logf((float) hs->m);
	hs->entry = meta.entry;
	hs->entry_level = meta.entry_level;
	if (hs->dim > 0)
		hs->scratch = palloc(sizeof(float) * hs->dim);
}

/* Release what HnswInitShared allocated */
void
HnswFreeShared(HnswShared *hs)
{
	if (hs->scratch)
		pfree(hs->scratch);
	hs->scratch = NULL;
}

/*
 * The highest level whose neighbour tuple fits on an empty page, so every
 * tuple the index writes fits somewhere.
 */
int
HnswMaxLevel(int m)
{
	int			level = HNSW_MAX_LEVEL;

	while (level > 0 &&
		   MAXALIGN(HNSW_NEIGHBOR_SIZE(level, m)) + sizeof(ItemIdData) >
		   HNSW_PAGE_CAPACITY)
		level--;
	return level;
}

/* Draw a level: floor(-ln(U) * ml), U uniform in (0,1] */
int
HnswRandomLevel(float ml, int maxlevel)
{
	double		u = 1.0 - pg_prng_double(&pg_global_prng_state);	/* (0,1] */
	int			level = (int) floor(-log(u) * ml);

	return Min(level, maxlevel);
}

/* Check that vectors of this length fit an element tuple on a page */
void
HnswCheckDim(Relation index, int dim, int storage)
{
	Size		esize = HNSW_ELEMENT_SIZE(dim, storage);

	if (MAXALIGN(esize) + sizeof(ItemIdData) > HNSW_PAGE_CAPACITY)
	{
		int			maxfloat = (HNSW_PAGE_CAPACITY - sizeof(ItemIdData) -
								offsetof(HnswElementTupleData, data)) / 4;

		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("omen_hnsw index \"%s\" cannot hold vectors of %d dimensions with storage = %s",
						RelationGetRelationName(index), dim,
						storage == HNSW_STORAGE_HALF ? "half" : "float"),
				 errdetail("With storage = float it holds up to %d dimensions, with storage = half up to %d.",
						   maxfloat, maxfloat * 2)));
	}
}

/* The vector of an element tuple as float4 (decoding half storage) */
void
HnswElementGetVector(HnswShared *hs, HnswElementTuple etup, float *out)
{
	if (hs->storage == HNSW_STORAGE_HALF)
		OmenHalfToFloat((const uint16 *) etup->data, out, hs->dim);
	else
		memcpy(out, etup->data, sizeof(float) * hs->dim);
}

/* Store vec in an element tuple's data */
void
HnswElementSetVector(HnswShared *hs, HnswElementTuple etup, const float *vec)
{
	if (hs->storage == HNSW_STORAGE_HALF)
		OmenFloatToHalf(vec, (uint16 *) etup->data, hs->dim);
	else
		memcpy(etup->data, vec, sizeof(float) * hs->dim);
}

/* Distance from q to the vector in an element tuple on a page */
float
HnswElementDistance(HnswShared *hs, HnswElementTuple etup, const float *q)
{
	if (hs->storage == HNSW_STORAGE_HALF)
	{
		OmenHalfToFloat((const uint16 *) etup->data, hs->scratch, hs->dim);
		return OmenDistanceCalc(&hs->dist, q, hs->scratch);
	}
	return OmenDistanceCalc(&hs->dist, q, (const float *) etup->data);
}

/*
 * Read the element tuple at tid under a share lock and copy out what a
 * search needs.  Returns false if the slot holds no element (free, or not
 * an element tuple at all).
 */
static bool
ReadElement(HnswShared *hs, ItemPointer tid, HnswNode *node, const float *q,
			float *dist)
{
	BlockNumber blkno = ItemPointerGetBlockNumber(tid);
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	Buffer		buf;
	Page		page;
	HnswElementTuple etup;
	bool		ok = false;

	buf = ReadBuffer(hs->index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	etup = (HnswElementTuple) OmenPageGetTuple(page, off);
	{
		if (etup && etup->type == HNSW_TUPLE_ELEMENT &&
			etup->state != HNSW_ELEMENT_FREE)
		{
			node->tid = *tid;
			node->neighbortid = etup->neighbortid;
			node->level = etup->level;
			node->state = etup->state;
			memcpy(node->heaptids, etup->heaptids, sizeof(node->heaptids));
			if (q)
				*dist = HnswElementDistance(hs, etup, q);
			ok = true;
		}
	}
	UnlockReleaseBuffer(buf);
	return ok;
}

/*
 * Copy layer `layer` of the neighbour tuple at ntid into out (valid tids
 * only).  Returns the count; 0 if the tuple is gone or lower than layer.
 */
static int
ReadNeighbors(HnswShared *hs, ItemPointer ntid, int layer, ItemPointer out)
{
	Buffer		buf;
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(ntid);
	int			n = 0;

	buf = OmenReadBuffer(hs->index, ItemPointerGetBlockNumber(ntid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	{
		HnswNeighborTuple ntup = (HnswNeighborTuple) OmenPageGetTuple(page, off);

		if (ntup && ntup->type == HNSW_TUPLE_NEIGHBORS)
		{
			int			start = HnswLayerStart(layer, hs->m);
			int			cap = HnswLayerCapacity(layer, hs->m);

			if (start + cap <= ntup->count)
			{
				for (int i = 0; i < cap; i++)
				{
					if (ItemPointerIsValid(&ntup->tids[start + i]))
						out[n++] = ntup->tids[start + i];
				}
			}
		}
	}
	UnlockReleaseBuffer(buf);
	return n;
}

/* Read an element's header fields (no distance); false if not an element */
bool
HnswReadElementNode(HnswShared *hs, ItemPointer tid, HnswNode *node)
{
	return ReadElement(hs, tid, node, NULL, NULL);
}

/* The valid neighbours of layer `layer` in the neighbour tuple at ntid */
int
HnswReadNeighborLayer(HnswShared *hs, ItemPointer ntid, int layer,
					  ItemPointer out)
{
	return ReadNeighbors(hs, ntid, layer, out);
}

/* Remember a node read during a search; returns its index */
uint32
HnswDiskSearchAddNode(HnswDiskSearch *ds, HnswNode *node)
{
	if (ds->nnodes == ds->maxnodes)
	{
		ds->maxnodes *= 2;
		ds->nodes = repalloc(ds->nodes, sizeof(HnswNode) * ds->maxnodes);
	}
	ds->nodes[ds->nnodes] = *node;
	return ds->nnodes++;
}

/*
 * OmenGraphOps.visit over pages.  The cost of a visit is memory latency
 * (the buffer header, the line pointer, kilobytes of vector), not the
 * distance, so the batch is processed in stages that let those misses
 * overlap: prefetch every buffer header and line pointer (through this
 * backend's buffer hints); pin every page; read the line pointers and
 * prefetch the element tuples; then lock, compute and release one at a
 * time.  The unlocked looks only choose addresses to prefetch; nothing is
 * used until the page is locked.
 */
static void
DiskVisit(void *arg, const uint64 *ids, int n, OmenVisit *out)
{
	HnswDiskSearch *ds = (HnswDiskSearch *) arg;
	HnswShared *hs = ds->hs;
	Buffer		bufs[HNSW_MAX_M * 2];
	Size		esize = HNSW_ELEMENT_SIZE(hs->dim, hs->storage);

	Assert(n <= HNSW_MAX_M * 2);
	for (int i = 0; i < n; i++)
		OmenPrefetchTuple(hs->index, (BlockNumber) (ids[i] >> 16),
						  (OffsetNumber) (ids[i] & 0xFFFF));
	for (int i = 0; i < n; i++)
		bufs[i] = OmenReadBuffer(hs->index, (BlockNumber) (ids[i] >> 16));
	for (int i = 0; i < n; i++)
	{
		Page		page = BufferGetPage(bufs[i]);
		OffsetNumber off = (OffsetNumber) (ids[i] & 0xFFFF);
		Size		lpoff;

		if (off > PageGetMaxOffsetNumber(page))
			continue;
		lpoff = ItemIdGetOffset(PageGetItemId(page, off));
		if (lpoff + esize <= BLCKSZ)
			OmenPrefetch((char *) page + lpoff, esize);
	}

	for (int i = 0; i < n; i++)
	{
		ItemPointerData tid;
		HnswNode	node;
		HnswElementTuple etup;

		OmenIdToTid(ids[i], &tid);
		LockBuffer(bufs[i], BUFFER_LOCK_SHARE);
		etup = (HnswElementTuple)
			OmenPageGetTuple(BufferGetPage(bufs[i]),
							 ItemPointerGetOffsetNumber(&tid));
		out[i].ok = (etup && etup->type == HNSW_TUPLE_ELEMENT &&
					 etup->state != HNSW_ELEMENT_FREE);
		if (out[i].ok)
		{
			node.tid = tid;
			node.neighbortid = etup->neighbortid;
			node.level = etup->level;
			node.state = etup->state;
			memcpy(node.heaptids, etup->heaptids, sizeof(node.heaptids));
			out[i].dist = HnswElementDistance(hs, etup, ds->query);
			out[i].isresult = (node.state == HNSW_ELEMENT_LIVE);
		}
		UnlockReleaseBuffer(bufs[i]);
		if (out[i].ok)
			out[i].aux = HnswDiskSearchAddNode(ds, &node);
	}
}

/* OmenGraphOps.neighbors over pages */
static int
DiskNeighbors(void *arg, uint64 id, uint32 aux, int layer, uint64 *out,
			  int max)
{
	HnswDiskSearch *ds = (HnswDiskSearch *) arg;
	HnswNode   *node = &ds->nodes[aux];
	ItemPointerData tids[HNSW_MAX_M * 2];
	int			n;

	if (layer > node->level)
		return 0;
	n = ReadNeighbors(ds->hs, &node->neighbortid, layer, tids);
	n = Min(n, max);
	for (int i = 0; i < n; i++)
		out[i] = OmenTidToId(&tids[i]);
	return n;
}

static const OmenGraphOps hnsw_disk_ops = {DiskVisit, DiskNeighbors};

/* Start a search over the index's pages for query q */
void
HnswDiskSearchInit(HnswDiskSearch *ds, HnswShared *hs, const float *q,
				   int ef, bool keep_rejected)
{
	ds->hs = hs;
	ds->query = q;
	ds->maxnodes = 256;
	ds->nnodes = 0;
	ds->nodes = palloc(sizeof(HnswNode) * ds->maxnodes);
	OmenGraphSearchInit(&ds->search, &hnsw_disk_ops, ds, ef, 2 * hs->m,
						keep_rejected);
}

/* Release a page search */
void
HnswDiskSearchFree(HnswDiskSearch *ds)
{
	OmenGraphSearchFree(&ds->search);
	pfree(ds->nodes);
}

/*
 * Walk from the entry point down to layer `tolayer` + 1 greedily, then
 * leave the search ready to run at tolayer with the best node found as its
 * entry.  Returns false if the index has no entry point.
 */
bool
HnswDiskDescend(HnswDiskSearch *ds, int tolayer, int ef)
{
	HnswShared *hs = ds->hs;

	if (hs->entry_level < 0 ||
		!OmenGraphSearchDescend(&ds->search, OmenTidToId(&hs->entry),
								hs->entry_level, tolayer))
		return false;
	ds->search.ef = Max(ef, 1);
	return true;
}

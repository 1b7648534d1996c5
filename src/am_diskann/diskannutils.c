/*
 * diskannutils.c
 *	  omen_diskann: options, the meta and quantiser pages, node and vector
 *	  tuples, and the beam search over pages (callbacks for the shared
 *	  best-first search in src/index_search.c).
 */
#include "postgres.h"

#include <math.h>

#include "diskann.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

int			diskann_search_list_size = DISKANN_DEFAULT_SEARCH_LIST;
int			diskann_rerank = DISKANN_DEFAULT_RERANK;

/* The index's options, or NULL for defaults */
DiskannOptions *
DiskannGetOptions(Relation index)
{
	return (DiskannOptions *) index->rd_options;
}

/* Copy the meta page */
void
DiskannReadMeta(Relation index, DiskannMetaPageData *meta)
{
	OmenReadMeta(index, DISKANN_PAGE_META, meta, sizeof(DiskannMetaPageData),
				 DISKANN_MAGIC, DISKANN_VERSION, "omen_diskann");
}

/* Lay out the meta page for the parameters in ds (empty index) */
void
DiskannInitMetaPage(Page page, DiskannShared *ds)
{
	DiskannMetaPage meta;

	OmenInitPage(page, DISKANN_PAGE_META);
	meta = DiskannPageGetMeta(page);
	memset(meta, 0, sizeof(DiskannMetaPageData));
	meta->magic = DISKANN_MAGIC;
	meta->version = DISKANN_VERSION;
	meta->dim = ds->dim;
	meta->max_neighbors = ds->r;
	meta->capacity = ds->cap;
	meta->build_list_size = ds->l;
	meta->bits = ds->bits;
	meta->metric = ds->dist.metric;
	meta->alpha = ds->alpha;
	meta->trained = false;
	ItemPointerSetInvalid(&meta->entry);
	meta->quant_start = InvalidBlockNumber;
	meta->node_insert = InvalidBlockNumber;
	meta->vector_insert = InvalidBlockNumber;
	((PageHeader) page)->pd_lower =
		((char *) meta + sizeof(DiskannMetaPageData)) - (char *) page;
}

/* Check that node and vector tuples of this length fit on a page */
void
DiskannCheckDim(Relation index, int dim, int bits, int cap, OmenMetric metric)
{
	Size		nsize = DISKANN_NODE_SIZE(cap, DiskannCodeBytes(dim, bits, metric));
	Size		vsize = DISKANN_VECTOR_SIZE(dim);

	if (MAXALIGN(nsize) + sizeof(ItemIdData) > DISKANN_PAGE_CAPACITY ||
		MAXALIGN(vsize) + sizeof(ItemIdData) > DISKANN_PAGE_CAPACITY)
	{
		int			maxdim = (DISKANN_PAGE_CAPACITY - sizeof(ItemIdData) -
							  offsetof(DiskannVectorTupleData, data)) / 4;

		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("omen_diskann index \"%s\" cannot hold vectors of %d dimensions",
						RelationGetRelationName(index), dim),
				 errdetail("It holds up to %d dimensions (a full vector is kept on one page).",
						   maxdim)));
	}
}

/*
 * The quantiser kept in the relcache entry (rd_amcache), in one chunk so
 * the relcache can free it with one pfree when the index changes.
 */
typedef struct DiskannAmCache
{
	BlockNumber quant_start;
	DiskannQuant quant;
	float		data[FLEXIBLE_ARRAY_MEMBER];
} DiskannAmCache;

/* Read the quantiser from its pages */
DiskannQuant *
DiskannLoadQuant(Relation index, const DiskannMetaPageData *meta)
{
	DiskannAmCache *cache = (DiskannAmCache *) index->rd_amcache;
	Size		nfloats;
	Size		got = 0;

	if (!meta->trained || meta->bits == 0)
		return NULL;
	if (cache && cache->quant_start == meta->quant_start)
		return &cache->quant;

	nfloats = DiskannQuantFloats(meta->dim, meta->bits, meta->ncoarse);
	cache = MemoryContextAllocZero(index->rd_indexcxt,
								   offsetof(DiskannAmCache, data) +
								   sizeof(float) * nfloats);
	for (uint32 i = 0; i < meta->quant_pages && got < nfloats; i++)
	{
		Buffer		buf = ReadBuffer(index, meta->quant_start + i);
		Page		page;
		Size		n;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		OmenCheckPage(index, buf, page, DISKANN_PAGE_QUANT);
		n = Min((((PageHeader) page)->pd_lower - MAXALIGN(SizeOfPageHeaderData)) /
				sizeof(float), nfloats - got);
		memcpy(cache->data + got, PageGetContents(page), sizeof(float) * n);
		got += n;
		UnlockReleaseBuffer(buf);
	}
	if (got != nfloats)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("omen_diskann index \"%s\" has a truncated quantiser",
						RelationGetRelationName(index)),
				 errhint("Please REINDEX it.")));

	cache->quant_start = meta->quant_start;
	DiskannQuantSetup(&cache->quant, meta->dim, meta->bits,
					  (OmenMetric) meta->metric, meta->ncoarse, cache->data);

	if (index->rd_amcache)
		pfree(index->rd_amcache);
	index->rd_amcache = cache;
	return &cache->quant;
}

/*
 * Append the quantiser to the index as a run of quantiser pages; returns
 * where it starts.  wal: log each page (after a build, the whole fork is
 * logged at once instead).
 */
void
DiskannWriteQuant(Relation index, const DiskannQuant *q, BlockNumber *start,
				  uint32 *npages, bool wal)
{
	Size		nfloats = DiskannQuantFloats(q->dim, q->bits, q->ncoarse);
	float	   *data = palloc(sizeof(float) * nfloats);
	Size		perpage = (DISKANN_PAGE_CAPACITY) / sizeof(float);
	Size		done = 0;

	DiskannQuantSerialize(q, data);
	*start = InvalidBlockNumber;
	*npages = 0;
	while (done < nfloats)
	{
		Buffer		buf = OmenNewBuffer(index, MAIN_FORKNUM);
		Size		n = Min(perpage, nfloats - done);
		Page		page;
		OmenXLog	x;

		if (wal)
		{
			OmenXLogStart(&x, index);
			page = OmenXLogRegister(&x, buf, true);
		}
		else
			page = BufferGetPage(buf);
		OmenInitPage(page, DISKANN_PAGE_QUANT);
		memcpy(PageGetContents(page), data + done, sizeof(float) * n);
		((PageHeader) page)->pd_lower = MAXALIGN(SizeOfPageHeaderData) +
			sizeof(float) * n;
		if (wal)
			OmenXLogFinish(&x);
		else
			MarkBufferDirty(buf);
		if (*npages == 0)
			*start = BufferGetBlockNumber(buf);
		Assert(BufferGetBlockNumber(buf) == *start + *npages);
		(*npages)++;
		UnlockReleaseBuffer(buf);
		done += n;
	}
	pfree(data);
}

/* Set up what searches and inserts on this index need */
void
DiskannInitShared(DiskannShared *ds, Relation index)
{
	DiskannMetaPageData meta;

	DiskannReadMeta(index, &meta);
	memset(ds, 0, sizeof(*ds));
	ds->index = index;
	OmenDistanceInit(&ds->dist, index);
	ds->dim = meta.dim;
	ds->dist.dim = meta.dim;
	ds->r = meta.max_neighbors;
	ds->cap = meta.capacity;
	ds->l = meta.build_list_size;
	ds->alpha = meta.alpha;
	ds->bits = meta.bits;
	ds->codebytes = DiskannCodeBytes(ds->dim, ds->bits,
									 (OmenMetric) meta.metric);
	ds->trained = meta.trained || meta.bits == 0;
	ds->quant = DiskannLoadQuant(index, &meta);
	ds->entry = meta.entry;
	ds->nodesize = DISKANN_NODE_SIZE(ds->cap, ds->codebytes);
	ds->vecsize = DISKANN_VECTOR_SIZE(ds->dim);
}

/*
 * Read the full vector at vectid into out.  False if the slot no longer
 * holds the vector of heaptid (the node was freed and its slot reused).
 */
bool
DiskannReadVector(DiskannShared *ds, ItemPointer vectid, ItemPointer heaptid,
				  float *out)
{
	Buffer		buf;
	DiskannVectorTuple vtup;
	bool		ok;

	if (!ItemPointerIsValid(vectid))
		return false;
	buf = OmenReadBuffer(ds->index, ItemPointerGetBlockNumber(vectid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	vtup = (DiskannVectorTuple)
		OmenPageGetTuple(BufferGetPage(buf), ItemPointerGetOffsetNumber(vectid));
	ok = vtup != NULL &&
		(heaptid == NULL || ItemPointerEquals(&vtup->heaptid, heaptid));
	if (ok)
		memcpy(out, vtup->data, sizeof(float) * ds->dim);
	UnlockReleaseBuffer(buf);
	return ok;
}

/* ---------------------------------------------------------------------
 * Search over pages
 * ---------------------------------------------------------------------
 */

/* Remember a node read during a search; returns its index */
uint32
DiskannSearchAddNode(DiskannSearch *s, DiskannNode *node)
{
	if (s->nnodes == s->maxnodes)
	{
		s->maxnodes *= 2;
		s->nodes = repalloc_huge(s->nodes, sizeof(DiskannNode) * s->maxnodes);
	}
	s->nodes[s->nnodes] = *node;
	return s->nnodes++;
}

/*
 * Distance from the search's query to a node tuple: exact for bits = 0,
 * from the code otherwise; -1 with *exact = false when the node has no
 * code yet (written before the quantiser was trained).
 */
float
DiskannNodeDistance(DiskannShared *ds, DiskannSearch *s, DiskannNodeTuple ntup,
					bool *exact)
{
	uint8	   *code = DiskannNodeCode(ntup, ds->cap);

	if (ds->bits == 0)
	{
		/* the code starts 4-byte aligned (even slot count, see diskann.h) */
		*exact = true;
		return OmenDistanceCalc(&ds->dist, s->query, (const float *) code);
	}
	*exact = false;
	if (s->lut.table == NULL || !(ntup->flags & DISKANN_NODE_CODED))
		return -1;
	return DiskannLutDistance(&s->lut, code);
}

/* Score the staged codes (16 at a time, SIMD) into out[staged[k]].dist */
static void
ScoreStaged(DiskannSearch *s, const int *staged, int n, OmenVisit *out)
{
	float		d[16];

	omen_kernels->lut16(s->lut.table, s->tcodes, s->lut.codebytes,
						s->lut.codebytes, d);
	for (int k = 0; k < n; k++)
		out[staged[k]].dist = s->tbase[k] + d[k];
}

/*
 * OmenGraphOps.visit over node pages.  The cost of a visit is memory
 * latency (the buffer, the line pointer, the node tuple), so the batch is
 * processed in stages that let those misses overlap, as omen_hnsw does:
 * read-ahead for pages likely not in shared buffers; pin every page and
 * prefetch its line pointer; prefetch the node tuples; then lock, score
 * and release one at a time.  The unlocked looks only choose addresses to
 * prefetch; nothing is used until the page is locked.  Nodes without a
 * code are scored with their full vectors after the node pages are
 * released.
 */
static void
PageVisit(void *arg, const uint64 *ids, int n, OmenVisit *out)
{
	DiskannSearch *s = (DiskannSearch *) arg;
	DiskannShared *ds = s->ds;
	Buffer		bufs[DiskannCapacity(DISKANN_MAX_MAX_NEIGHBORS)];
	Size		codeoff = offsetof(DiskannNodeTupleData, neighbors) +
		sizeof(ItemPointerData) * ds->cap;
	int			staged[16];
	int			nstaged = 0;

	Assert(n <= (int) lengthof(bufs));
	for (int i = 0; i < n; i++)
		OmenPrefetchTuple(ds->index, (BlockNumber) (ids[i] >> 16),
						  (OffsetNumber) (ids[i] & 0xFFFF));
	for (int i = 0; i < n; i++)
		bufs[i] = OmenReadBuffer(ds->index, (BlockNumber) (ids[i] >> 16));
	for (int i = 0; i < n; i++)
	{
		Page		page = BufferGetPage(bufs[i]);
		OffsetNumber off = (OffsetNumber) (ids[i] & 0xFFFF);
		Size		lpoff;

		if (off > PageGetMaxOffsetNumber(page))
			continue;
		lpoff = ItemIdGetOffset(PageGetItemId(page, off));
		if (lpoff >= BLCKSZ)
			continue;
		/* the header, and the code after the neighbour slots */
		OmenPrefetch((char *) page + lpoff, 64);
		if (ds->bits != 0)
			OmenPrefetch((char *) page + lpoff + codeoff, ds->codebytes);
	}

	for (int i = 0; i < n; i++)
	{
		DiskannNodeTuple ntup;
		DiskannNode node;
		bool		exact = false;

		OmenIdToTid(ids[i], &node.tid);
		LockBuffer(bufs[i], BUFFER_LOCK_SHARE);
		ntup = (DiskannNodeTuple)
			OmenPageGetTuple(BufferGetPage(bufs[i]),
							 ItemPointerGetOffsetNumber(&node.tid));
		out[i].ok = ntup != NULL && ntup->state != DISKANN_NODE_FREE;
		if (out[i].ok)
		{
			if (s->lut.table && (ntup->flags & DISKANN_NODE_CODED))
			{
				/* stage the code; scored 16 at a time below */
				const uint8 *code = DiskannNodeCode(ntup, ds->cap);
				const uint8 *bands = code + s->lut.headbytes;

				s->tbase[nstaged] = DiskannLutBase(&s->lut, code);
				memcpy(s->tcodes + nstaged * s->lut.codebytes, bands,
					   s->lut.codebytes);
				staged[nstaged++] = i;
				out[i].dist = 0;
			}
			else
				out[i].dist = DiskannNodeDistance(ds, s, ntup, &exact);
			node.heaptid = ntup->heaptid;
			node.vectid = ntup->vectid;
			node.state = ntup->state;
		}
		UnlockReleaseBuffer(bufs[i]);
		if (nstaged == 16)
		{
			ScoreStaged(s, staged, nstaged, out);
			nstaged = 0;
		}
		if (!out[i].ok)
			continue;
		node.hasexact = exact;
		node.exact = exact ? out[i].dist : 0;
		if (!exact && out[i].dist < 0)
		{
			/* no code: score with the full vector */
			if (DiskannReadVector(ds, &node.vectid, &node.heaptid, s->scratch))
			{
				node.exact = OmenDistanceCalc(&ds->dist, s->query, s->scratch);
				node.hasexact = true;
				out[i].dist = node.exact;
			}
			else
			{
				out[i].ok = false;
				continue;
			}
		}
		out[i].isresult = node.state == DISKANN_NODE_LIVE;
		out[i].aux = DiskannSearchAddNode(s, &node);
	}
	if (nstaged > 0)
		ScoreStaged(s, staged, nstaged, out);
}

/*
 * Copy the valid neighbours of the node tuple at tid; returns the count
 * and the node's state (DISKANN_NODE_FREE if the slot holds no node).
 */
int
DiskannReadNeighbors(DiskannShared *ds, ItemPointer tid, ItemPointer out,
					 uint8 *state)
{
	Buffer		buf;
	DiskannNodeTuple ntup;
	int			n = 0;

	buf = OmenReadBuffer(ds->index, ItemPointerGetBlockNumber(tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	ntup = (DiskannNodeTuple)
		OmenPageGetTuple(BufferGetPage(buf), ItemPointerGetOffsetNumber(tid));
	if (ntup)
	{
		n = Min(ntup->count, ds->cap);
		memcpy(out, ntup->neighbors, sizeof(ItemPointerData) * n);
		*state = ntup->state;
	}
	else
		*state = DISKANN_NODE_FREE;
	UnlockReleaseBuffer(buf);
	return n;
}

/* OmenGraphOps.neighbors over node pages */
static int
PageNeighbors(void *arg, uint64 id, uint32 aux, int layer, uint64 *out,
			  int max)
{
	DiskannSearch *s = (DiskannSearch *) arg;
	ItemPointerData tids[DiskannCapacity(DISKANN_MAX_MAX_NEIGHBORS)];
	uint8		state;
	int			n;

	n = DiskannReadNeighbors(s->ds, &s->nodes[aux].tid, tids, &state);
	n = Min(n, max);
	for (int i = 0; i < n; i++)
		out[i] = OmenTidToId(&tids[i]);

	if (s->record_lists)
	{
		if ((int) aux >= s->maxlists)
		{
			int			newmax = Max(s->maxnodes, (int) aux + 1);

			s->lists = s->lists
				? repalloc_huge(s->lists, sizeof(uint64) * s->ds->cap * newmax)
				: palloc_extended(sizeof(uint64) * s->ds->cap * newmax, MCXT_ALLOC_HUGE);
			s->listcounts = s->listcounts
				? repalloc_huge(s->listcounts, sizeof(uint16) * newmax)
				: palloc_extended(sizeof(uint16) * newmax, MCXT_ALLOC_HUGE);
			for (int i = s->maxlists; i < newmax; i++)
				s->listcounts[i] = 0;
			s->maxlists = newmax;
		}
		memcpy(&s->lists[(Size) aux * s->ds->cap], out, sizeof(uint64) * n);
		s->listcounts[aux] = n;
	}
	return n;
}

static const OmenGraphOps diskann_page_ops = {PageVisit, PageNeighbors};

/*
 * Start a beam search over the index's pages for query q (dim floats,
 * prepared for the metric), keeping the best ef candidates.
 */
void
DiskannSearchInit(DiskannSearch *s, DiskannShared *ds, const float *q,
				  int ef, bool keep_rejected)
{
	memset(s, 0, sizeof(*s));
	s->ds = ds;
	s->query = q;
	s->maxnodes = 256;
	s->nodes = palloc(sizeof(DiskannNode) * s->maxnodes);
	s->scratch = palloc(sizeof(float) * Max(ds->dim, 1));
	if (ds->quant)
	{
		DiskannLutInit(&s->lut, ds->quant, ds->dist.metric, q);
		s->tcodes = palloc0(16 * ds->codebytes);
	}
	OmenGraphSearchInit(&s->search, &diskann_page_ops, s, ef, ds->cap,
						keep_rejected);
}

/* Release a page search */
void
DiskannSearchFree(DiskannSearch *s)
{
	OmenGraphSearchFree(&s->search);
	DiskannLutFree(&s->lut);
	pfree(s->nodes);
	pfree(s->scratch);
	if (s->tcodes)
		pfree(s->tcodes);
	if (s->lists)
		pfree(s->lists);
	if (s->listcounts)
		pfree(s->listcounts);
}

/* Seed the search with the entry point; false if the index is empty */
bool
DiskannSearchStart(DiskannSearch *s)
{
	DiskannShared *ds = s->ds;

	if (!ItemPointerIsValid(&ds->entry))
		return false;
	if (OmenGraphSearchAddEntry(&s->search, OmenTidToId(&ds->entry)))
		return true;

	/* the entry point was freed just now: read the new one */
	{
		DiskannMetaPageData meta;

		DiskannReadMeta(ds->index, &meta);
		ds->entry = meta.entry;
		if (!ItemPointerIsValid(&ds->entry))
			return false;
		return OmenGraphSearchAddEntry(&s->search, OmenTidToId(&ds->entry));
	}
}

/*
 * Replace the code distances of candidates c[0..n) by full-precision ones,
 * reading their vector tuples: read-ahead for pages likely not in shared
 * buffers, then (in chunks) pin every page and prefetch its line pointer,
 * prefetch the vectors, and score each under its share lock without
 * copying it.  A candidate whose vector slot was reused gets dist = +inf
 * and its node state FREE.
 */
#define EXACT_CHUNK 16

void
DiskannExactDistances(DiskannSearch *s, OmenCand *c, int n)
{
	DiskannShared *ds = s->ds;

	for (int i = 0; i < n; i++)
	{
		DiskannNode *node = &s->nodes[c[i].aux];

		if (!node->hasexact && ItemPointerIsValid(&node->vectid))
			OmenPrefetchBlock(ds->index, ItemPointerGetBlockNumber(&node->vectid));
	}
	for (int start = 0; start < n; start += EXACT_CHUNK)
	{
		int			end = Min(n, start + EXACT_CHUNK);
		Buffer		bufs[EXACT_CHUNK];

		for (int i = start; i < end; i++)
		{
			DiskannNode *node = &s->nodes[c[i].aux];

			bufs[i - start] = InvalidBuffer;
			if (node->hasexact || !ItemPointerIsValid(&node->vectid))
				continue;
			bufs[i - start] = OmenReadBuffer(ds->index,
											 ItemPointerGetBlockNumber(&node->vectid));
			OmenPrefetchLine(PageGetItemId(BufferGetPage(bufs[i - start]),
											 ItemPointerGetOffsetNumber(&node->vectid)));
		}
		for (int i = start; i < end; i++)
		{
			DiskannNode *node = &s->nodes[c[i].aux];
			Page		page;
			OffsetNumber off;

			if (!BufferIsValid(bufs[i - start]))
				continue;
			page = BufferGetPage(bufs[i - start]);
			off = ItemPointerGetOffsetNumber(&node->vectid);
			if (off <= PageGetMaxOffsetNumber(page) &&
				ItemIdGetOffset(PageGetItemId(page, off)) < BLCKSZ)
				OmenPrefetch((char *) page + ItemIdGetOffset(PageGetItemId(page, off)),
							 ds->vecsize);
		}
		for (int i = start; i < end; i++)
		{
			DiskannNode *node = &s->nodes[c[i].aux];

			if (BufferIsValid(bufs[i - start]))
			{
				DiskannVectorTuple vtup;

				LockBuffer(bufs[i - start], BUFFER_LOCK_SHARE);
				vtup = (DiskannVectorTuple)
					OmenPageGetTuple(BufferGetPage(bufs[i - start]),
									 ItemPointerGetOffsetNumber(&node->vectid));
				if (vtup && ItemPointerEquals(&vtup->heaptid, &node->heaptid))
					node->exact = OmenDistanceCalc(&ds->dist, s->query, vtup->data);
				else
				{
					node->exact = INFINITY;
					node->state = DISKANN_NODE_FREE;
				}
				UnlockReleaseBuffer(bufs[i - start]);
				node->hasexact = true;
			}
			else if (!node->hasexact)
			{
				node->exact = INFINITY;
				node->state = DISKANN_NODE_FREE;
				node->hasexact = true;
			}
			c[i].dist = node->exact;
		}
	}
}

/* ---------------------------------------------------------------------
 * Pruning a list of nodes on pages
 * ---------------------------------------------------------------------
 */

/*
 * The full vector of the node at tid, and its state.  False if the slot
 * holds no node or its vector is gone.
 */
bool
DiskannReadNodeVector(DiskannShared *ds, ItemPointer tid, float *out, uint8 *state)
{
	Buffer		buf;
	DiskannNodeTuple ntup;
	ItemPointerData vectid;
	ItemPointerData heaptid;
	bool		ok;

	buf = OmenReadBuffer(ds->index, ItemPointerGetBlockNumber(tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	ntup = (DiskannNodeTuple)
		OmenPageGetTuple(BufferGetPage(buf), ItemPointerGetOffsetNumber(tid));
	ok = ntup != NULL && ntup->state != DISKANN_NODE_FREE;
	if (ok)
	{
		*state = ntup->state;
		vectid = ntup->vectid;
		heaptid = ntup->heaptid;
		if (ds->bits == 0)
			memcpy(out, DiskannNodeCode(ntup, ds->cap), sizeof(float) * ds->dim);
	}
	UnlockReleaseBuffer(buf);
	if (ok && ds->bits != 0)
		ok = DiskannReadVector(ds, &vectid, &heaptid, out);
	return ok;
}

/*
 * RobustPrune (ALGORITHMS.md section 1) of the nodes cands[0..n) around
 * the vector pvec, with full vectors read from the pages: writes at most
 * maxdeg chosen node tids to out, nearest first, and returns the count.
 * Freed nodes, deleted nodes and duplicates are dropped first.
 */
int
DiskannPruneTids(DiskannShared *ds, const float *pvec, ItemPointer cands,
				 int n, int maxdeg, ItemPointer out)
{
	OmenCand   *c = palloc(sizeof(OmenCand) * Max(n, 1));
	float	  **vecs = palloc(sizeof(float *) * Max(n, 1));
	int		   *chosen = palloc(sizeof(int) * Max(maxdeg, 1));
	int			m = 0;
	int			nchosen;
	OmenVisited seen;

	OmenVisitedInit(&seen, n);
	for (int i = 0; i < n; i++)
	{
		uint8		state;
		float	   *v;

		if (!ItemPointerIsValid(&cands[i]) ||
			OmenVisitedTestAndSet(&seen, OmenTidToId(&cands[i])))
			continue;
		v = palloc(sizeof(float) * ds->dim);
		if (!DiskannReadNodeVector(ds, &cands[i], v, &state) ||
			state != DISKANN_NODE_LIVE)
		{
			pfree(v);
			continue;
		}
		vecs[m] = v;
		c[m].id = OmenTidToId(&cands[i]);
		c[m].dist = OmenDistanceCalc(&ds->dist, pvec, v);
		c[m].aux = m;
		m++;
	}
	OmenVisitedFree(&seen);

	nchosen = OmenRobustPruneVectors(c, m, vecs, &ds->dist, ds->alpha, maxdeg,
									 chosen);
	for (int i = 0; i < nchosen; i++)
		OmenIdToTid(c[chosen[i]].id, &out[i]);

	for (int i = 0; i < m; i++)
		pfree(vecs[i]);
	pfree(vecs);
	pfree(c);
	pfree(chosen);
	return nchosen;
}

/*
 * hnswbuild.c
 *	  omen_hnsw: CREATE INDEX.
 *
 * The graph is built in memory, within maintenance_work_mem, by inserting
 * every heap tuple (ALGORITHMS.md section 2), then written out page by
 * page with no WAL and logged once (log_newpage_range).
 *
 * The in-memory graph is one arena of fixed-layout nodes addressed by
 * offset, so the same code builds it in local memory (serial) or in a
 * dynamic shared memory segment that parallel workers fill together.
 * PostgreSQL 15 has no access-method parallel build, so the leader starts
 * the workers itself (a ParallelContext, as nbtree does internally), each
 * scanning part of the heap with a parallel table scan.  In shared memory
 * every node has an LWLock guarding its neighbour lists; vectors never
 * change once written, so they are read without a lock.
 *
 * Memory: a serial build grows its arena up to maintenance_work_mem; when
 * that is not enough, the graph built so far is written and logged and the
 * remaining tuples go through the page insert path, with a NOTICE saying
 * how much memory would have been enough.  A parallel build is chosen only
 * when the estimated graph fits; if it overflows anyway, the leader throws
 * it away and builds serially.
 */
#include "postgres.h"

#include <math.h>

#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "simd/omen_half.h"
#include "storage/bufmgr.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* Progress phases (pg_stat_progress_create_index.phase) */
#define PROGRESS_HNSW_PHASE_BUILD		2
#define PROGRESS_HNSW_PHASE_WRITE		3

#define PARALLEL_KEY_HNSW_SHARED		UINT64CONST(0xA000000000000001)
#define PARALLEL_KEY_HNSW_GRAPH			UINT64CONST(0xA000000000000002)

/*
 * One vector of the in-memory graph, followed in the arena by float
 * vector[dim], for the metrics sq8 codes serve (BuildCodeSize) the
 * vector's sq8 code, when the index gets edge sketches and the metric is
 * L2 or cosine float lengths[2m] (BuildLengthSize: the distance of each
 * layer-0 neighbour, whose square root WriteGraph stores with the edge's
 * sketch), and the int32 slots of layer 0 (2m); a node of level 1 or more
 * has m more for each upper layer in the upper area.  The searches
 * of the build walk by the codes, as scans do (1 byte a dimension instead
 * of 4), and re-score what they find with the vectors.  The vector and the
 * code come first, at offsets that do not depend on the node's level, so
 * a visit can prefetch them without reading the node's header first.
 */
typedef struct GraphNode
{
	LWLock		lock;			/* parallel builds: guards the lists */
	ItemPointerData heaptids[HNSW_HEAPTIDS];
	uint8		nheaptids;
	uint8		level;
	bool		apart;			/* written: element and list on two pages */
	uint8		counts[HNSW_MAX_LEVEL + 1]; /* used slots per layer */
	ItemPointerData tid;		/* where the element is written */
	ItemPointerData ntid;		/* where its neighbour tuple is written */
	uint64		upper;			/* level >= 1: its upper layers' slots, at
								 * this offset of the upper area */
} GraphNode;

#define GRAPH_NODE_HEADER	MAXALIGN(sizeof(GraphNode))

/*
 * The graph's fixed part.  In shared memory it is followed by the node area
 * and the upper area; a serial build keeps those in local memory.
 *
 * Every node takes the same bytes of the node area (GNodeSize: header,
 * vector, code, edge lengths, layer-0 slots), so node i is at i times that,
 * found with no lookup: the visits of a search, most of a build's time,
 * reach each neighbour's code with one dependent cache miss, where an array
 * of offsets (for nodes of different sizes) took two.  The slots of layers
 * 1 and up, which only a node's level decides and few nodes have, are in
 * the upper area, allocated as nodes are added.
 */
typedef struct HnswGraphShared
{
	slock_t		mutex;			/* entry point and counters */
	int32		entry;			/* node index, -1 if none */
	int32		entry_level;
	pg_atomic_uint32 nnodes;
	pg_atomic_uint64 used;		/* bytes of the upper area taken */
	pg_atomic_uint32 full;		/* an allocation failed */
	pg_atomic_uint64 indtuples;
	Size		areasize;		/* bytes of the node area */
	Size		uppersize;		/* bytes of the upper area */
	uint32		maxnodes;		/* nodes the node area holds */
	int			tranche;
} HnswGraphShared;

/* One process's view of a graph */
typedef struct HnswGraph
{
	HnswGraphShared *sh;
	char	   *area;			/* node i at i * stride */
	char	   *upper;			/* upper layers' slots */
	Size		stride;			/* GNodeSize; 0 until known (a serial build
								 * of a column without typmod learns the
								 * length from the first vector) */
	bool		parallel;		/* take node locks */
	bool		growable;		/* serial: may enlarge both areas */
	Size		limit;			/* serial: the most both areas may take */
} HnswGraph;

/* Parallel build state in shared memory, followed by the table scan */
typedef struct HnswParallelShared
{
	Oid			heaprelid;
	Oid			indexrelid;
	bool		isconcurrent;
	int			dim;
	slock_t		mutex;
	double		reltuples;		/* heap tuples seen, all participants */
} HnswParallelShared;

#define ParallelTableScanFromHnswShared(shared) \
	(ParallelTableScanDesc) ((char *) (shared) + MAXALIGN(sizeof(HnswParallelShared)))

typedef struct HnswBuildState
{
	Relation	heap;
	Relation	index;
	IndexInfo  *indexInfo;
	HnswShared	hs;
	int			maxlevel;
	pg_prng_state levelrng;		/* draws the levels of the nodes it adds */
	HnswGraph	g;

	MemoryContext tmpCtx;		/* per-tuple work */
	bool		ondisk;			/* graph flushed: inserting into pages */
	bool		partial;		/* the graph written holds only some rows */
	double		indtuples;		/* this process's */
	double		reltuples;		/* heap size estimate, for the NOTICE */
	bool		isleader;		/* reports progress */
	bool		edgelens;		/* the nodes keep their edges' lengths */

	float	   *query;			/* the vector being inserted */
	float		qsum;			/* sum of its components (codes) */
	float		qnorm2;			/* its squared norm (codes) */
	OmenGraphSearch search;
} HnswBuildState;

static inline GraphNode *
GNode(HnswGraph *g, int i)
{
	return (GraphNode *) (g->area + (Size) i * g->stride);
}

static inline float *
GVector(GraphNode *node)
{
	return (float *) ((char *) node + GRAPH_NODE_HEADER);
}

/*
 * Bytes of a node's sq8 code in the arena, 0 for none: the metrics whose
 * distance follows from a dot product with the code (as in scans).
 */
static inline Size
BuildCodeSize(const HnswShared *hs)
{
	if (hs->dist.metric != OMEN_METRIC_L2 &&
		hs->dist.metric != OMEN_METRIC_COSINE &&
		hs->dist.metric != OMEN_METRIC_IP)
		return 0;
	return MAXALIGN(sizeof(HnswSq8Head) + (Size) hs->dim);
}

static inline HnswSq8Head *
GCode(GraphNode *node, const HnswShared *hs)
{
	return (HnswSq8Head *) ((char *) GVector(node) +
							MAXALIGN(sizeof(float) * hs->dim));
}

/* Bytes of a node's layer-0 edge lengths in the arena, 0 for none */
static inline Size
BuildLengthSize(const HnswBuildState *bs)
{
	return bs->edgelens ? MAXALIGN(sizeof(float) * 2 * bs->hs.m) : 0;
}

/* The distance to each of a node's layer-0 neighbours, slot by slot */
static inline float *
GLengths(GraphNode *node, const HnswBuildState *bs)
{
	return (float *) ((char *) GVector(node) +
					  MAXALIGN(sizeof(float) * bs->hs.dim) +
					  BuildCodeSize(&bs->hs));
}

/* The slots of a node's list on layer (2m on layer 0, m above) */
static inline int32 *
GLayer(const HnswBuildState *bs, GraphNode *node, int layer)
{
	if (layer == 0)
		return (int32 *) ((char *) GLengths(node, bs) + BuildLengthSize(bs));
	return (int32 *) (bs->g.upper + node->upper) +
		(Size) (layer - 1) * bs->hs.m;
}

/* Bytes of every node in the node area */
static inline Size
GNodeSize(const HnswBuildState *bs)
{
	return GRAPH_NODE_HEADER + MAXALIGN(sizeof(float) * bs->hs.dim) +
		BuildCodeSize(&bs->hs) + BuildLengthSize(bs) +
		MAXALIGN(sizeof(int32) * 2 * bs->hs.m);
}

/* Bytes of a node's upper layers' slots in the upper area */
static inline Size
GUpperSize(const HnswBuildState *bs, int level)
{
	return MAXALIGN(sizeof(int32) * (Size) level * bs->hs.m);
}

/*
 * Whether the nodes keep the distance of each layer-0 edge: the index will
 * have edge sketches, whose norm is |v - c|, and the metric is L2 or
 * cosine, where the build's distance between two vectors is its square
 * (l2sq, the same sum WriteGraph would compute again).  Decided when the
 * vectors' length is known.
 */
static void
SetEdgeLengths(HnswBuildState *bs)
{
	HnswShared *hs = &bs->hs;

	bs->edgelens = hs->dim > 0 &&
		(hs->dist.metric == OMEN_METRIC_L2 ||
		 hs->dist.metric == OMEN_METRIC_COSINE) &&
		HnswSketchWanted(HnswGetSketchOption(bs->index), hs->dim,
						 hs->storage, hs->m,
						 HnswChooseSketchBits(hs->dim, hs->dist.metric));
}

/*
 * Bytes the upper area of ntuples nodes is expected to take: a node has on
 * average 1/(m-1) upper levels of m slots each; with room for the levels
 * drawn to run high, and a floor for small graphs.
 */
static Size
EstimateUpperSize(double ntuples, const HnswBuildState *bs)
{
	int			m = bs->hs.m;

	return (Size) (ntuples * 1.5 * sizeof(int32) * m / (m - 1)) + 64 * 1024;
}


/* Take the node locks of a parallel build */
static inline void
NodeLock(HnswGraph *g, GraphNode *node, LWLockMode mode)
{
	if (g->parallel)
		LWLockAcquire(&node->lock, mode);
}

static inline void
NodeUnlock(HnswGraph *g, GraphNode *node)
{
	if (g->parallel)
		LWLockRelease(&node->lock);
}

/*
 * Allocate a node of level; returns its index, with in *upper the offset of
 * its upper layers' slots, or -1 when the graph is full (a serial graph
 * first tries to grow its areas up to its limit).
 */
static int
AllocNode(HnswGraph *g, const HnswBuildState *bs, int level, uint64 *upper)
{
	Size		usize = level > 0 ? GUpperSize(bs, level) : 0;
	uint64		off = 0;
	uint32		idx;

	if (g->growable)
	{
		HnswGraphShared *sh = g->sh;
		Size		used = pg_atomic_read_u64(&sh->used);
		uint32		n = pg_atomic_read_u32(&sh->nnodes);

		if (g->stride == 0)
		{
			g->stride = GNodeSize(bs);
			sh->maxnodes = (uint32) Min(sh->areasize / g->stride, PG_INT32_MAX);
		}
		if (n >= sh->maxnodes)
		{
			Size		newsize = Max(sh->areasize * 2, (Size) (n + 1) * g->stride);

			if (newsize + sh->uppersize > g->limit)
				newsize = g->limit - Min(g->limit, sh->uppersize);
			if (newsize < (Size) (n + 1) * g->stride || n >= PG_INT32_MAX)
				return -1;
			g->area = repalloc_huge(g->area, newsize);
			sh->areasize = newsize;
			sh->maxnodes = (uint32) Min(newsize / g->stride, PG_INT32_MAX);
		}
		if (used + usize > sh->uppersize)
		{
			Size		newsize = Max(sh->uppersize * 2, used + usize);

			if (sh->areasize + newsize > g->limit)
				newsize = g->limit - Min(g->limit, sh->areasize);
			if (newsize < used + usize)
				return -1;
			g->upper = repalloc_huge(g->upper, newsize);
			sh->uppersize = newsize;
		}
		pg_atomic_write_u64(&sh->used, used + usize);
		pg_atomic_write_u32(&sh->nnodes, n + 1);
		*upper = used;
		return (int) n;
	}

	idx = pg_atomic_fetch_add_u32(&g->sh->nnodes, 1);
	if (idx >= g->sh->maxnodes)
	{
		pg_atomic_write_u32(&g->sh->full, 1);
		return -1;
	}
	if (usize > 0)
	{
		off = pg_atomic_fetch_add_u64(&g->sh->used, usize);
		if (off + usize > g->sh->uppersize)
		{
			/* idx is taken but never filled: the graph is discarded */
			pg_atomic_write_u32(&g->sh->full, 1);
			return -1;
		}
	}
	*upper = off;
	return (int) idx;
}

/* Number of nodes actually in the graph */
static inline int
GraphCount(HnswGraph *g)
{
	return (int) Min(pg_atomic_read_u32(&g->sh->nnodes), g->sh->maxnodes);
}

/* Set up an empty graph's fixed part */
static void
GraphInitShared(HnswGraphShared *sh, Size areasize, Size uppersize,
				uint32 maxnodes, int tranche)
{
	SpinLockInit(&sh->mutex);
	sh->entry = -1;
	sh->entry_level = -1;
	pg_atomic_init_u32(&sh->nnodes, 0);
	pg_atomic_init_u64(&sh->used, 0);
	pg_atomic_init_u32(&sh->full, 0);
	pg_atomic_init_u64(&sh->indtuples, 0);
	sh->areasize = areasize;
	sh->uppersize = uppersize;
	sh->maxnodes = maxnodes;
	sh->tranche = tranche;
}

/* OmenGraphOps.visit over the in-memory graph */
static void
MemVisit(void *arg, const uint64 *ids, int n, OmenVisit *out)
{
	HnswBuildState *bs = (HnswBuildState *) arg;
	HnswShared *hs = &bs->hs;
	bool		codes = BuildCodeSize(hs) > 0;

	/* the vectors are scattered over the arena: start loading them all */
	for (int i = 0; i < n; i++)
	{
		GraphNode  *node = GNode(&bs->g, (int) ids[i]);

		if (codes)
			OmenPrefetch(GCode(node, hs), sizeof(HnswSq8Head) + hs->dim);
		else
			OmenPrefetch(GVector(node), sizeof(float) * hs->dim);
	}
	for (int i = 0; i < n; i++)
	{
		GraphNode  *node = GNode(&bs->g, (int) ids[i]);

		if (codes)
			out[i].dist = HnswSq8Distance(hs->dist.metric, GCode(node, hs),
										  (const uint8 *) (GCode(node, hs) + 1),
										  hs->dim, bs->query, bs->qsum,
										  bs->qnorm2);
		else
			out[i].dist = OmenDistanceCalc(&hs->dist, bs->query,
										   GVector(node));
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
	GraphNode  *node = GNode(&bs->g, (int) id);
	int32	   *nb;
	int			n;

	if (layer > node->level)
		return 0;
	nb = GLayer(bs, node, layer);
	NodeLock(&bs->g, node, LW_SHARED);
	n = Min(node->counts[layer], max);
	for (int i = 0; i < n; i++)
		out[i] = (uint64) nb[i];
	NodeUnlock(&bs->g, node);
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

	return OmenDistanceCalc(&bs->hs.dist,
							GVector(GNode(&bs->g, (int) pa->cands[i].id)),
							GVector(GNode(&bs->g, (int) pa->cands[j].id)));
}

/*
 * Add p to e's list on layer, pruning e's list when it is full; with
 * force, p goes in even if the prune would leave it out.  Returns whether
 * e's list now holds p.
 */
static bool
MemLinkBack(HnswBuildState *bs, int e, int p, int layer, float dist, bool force)
{
	GraphNode  *node = GNode(&bs->g, e);
	int			m = bs->hs.m;
	int			cap = HnswLayerCapacity(layer, m);
	int32	   *nb = GLayer(bs, node, layer);
	float	   *lens = (layer == 0 && bs->edgelens) ? GLengths(node, bs) : NULL;
	float	   *evec = GVector(node);
	int			n;
	OmenCand	cands[HNSW_MAX_M * 2 + 1];
	int			chosen[HNSW_MAX_M * 2 + 1];
	MemPairArg	pa;
	int			nchosen;

	bool		kept = false;

	NodeLock(&bs->g, node, LW_EXCLUSIVE);
	n = node->counts[layer];
	if (n < cap)
	{
		nb[n] = p;
		if (lens)
			lens[n] = dist;
		node->counts[layer]++;
		NodeUnlock(&bs->g, node);
		return true;
	}

	for (int i = 0; i < n; i++)
	{
		int			x = nb[i];

		cands[i].id = x;
		cands[i].aux = 0;
		cands[i].dist = OmenDistanceCalc(&bs->hs.dist, evec,
										 GVector(GNode(&bs->g, x)));
	}
	cands[n].id = p;
	cands[n].aux = 0;
	cands[n].dist = dist;
	OmenSortCands(cands, n + 1);
	pa.bs = bs;
	pa.cands = cands;
	nchosen = OmenRobustPrune(cands, n + 1, bs->hs.alpha, cap, MemPairDist, &pa,
							  chosen);
	for (int i = 0; i < nchosen; i++)
	{
		nb[i] = (int32) cands[chosen[i]].id;
		if (lens)
			lens[i] = cands[chosen[i]].dist;
		if (cands[chosen[i]].id == (uint64) p)
			kept = true;
	}
	if (!kept && force)
	{
		/* p replaces the furthest neighbour kept */
		nb[Min(nchosen, cap - 1)] = p;
		if (lens)
			lens[Min(nchosen, cap - 1)] = dist;
		nchosen = Min(nchosen + 1, cap);
		kept = true;
	}
	node->counts[layer] = nchosen;
	NodeUnlock(&bs->g, node);
	return kept;
}

/*
 * Search the graph from its entry point for vec's neighbour candidates on
 * layers top .. 0 (top = min(level, entry level)); results[l] are nearest
 * first.  Returns top, or -1 when the graph has no entry point yet.
 */
static int
MemSearch(HnswBuildState *bs, const float *vec, int level,
		  OmenCand **results, int *nresults)
{
	HnswGraph  *g = &bs->g;
	int			entry;
	int			entry_level;
	int			top;

	SpinLockAcquire(&g->sh->mutex);
	entry = g->sh->entry;
	entry_level = g->sh->entry_level;
	SpinLockRelease(&g->sh->mutex);
	if (entry < 0)
		return -1;

	bs->query = (float *) vec;
	if (BuildCodeSize(&bs->hs) > 0)
		HnswSq8QueryParts(vec, bs->hs.dim, &bs->qsum, &bs->qnorm2);
	top = Min(level, entry_level);
	OmenGraphSearchDescend(&bs->search, (uint64) entry, entry_level, top,
						   HNSW_INSERT_DESCEND);
	for (int l = top; l >= 0; l--)
	{
		nresults[l] = OmenGraphSearchLayer(&bs->search, l,
										   bs->hs.ef_construction,
										   &results[l]);
		if (BuildCodeSize(&bs->hs) > 0)
		{
			/* the walk's distances are the codes': neighbours by vectors */
			for (int i = 0; i < nresults[l]; i++)
				OmenPrefetch(GVector(GNode(g, (int) results[l][i].id)),
							 sizeof(float) * bs->hs.dim);
			for (int i = 0; i < nresults[l]; i++)
				results[l][i].dist =
					OmenDistanceCalc(&bs->hs.dist, vec,
									 GVector(GNode(g, (int) results[l][i].id)));
			OmenSortCands(results[l], nresults[l]);
		}
	}
	return top;
}

/*
 * Give node p its neighbour lists on layers top .. 0 from the search
 * results (p itself left out), then link back: p's own lists are complete
 * before any other node can reach it.
 */
static void
MemLink(HnswBuildState *bs, int p, OmenCand **results, int *nresults, int top)
{
	HnswShared *hs = &bs->hs;
	GraphNode  *node = GNode(&bs->g, p);
	int			chosen[HNSW_MAX_LEVEL + 1][HNSW_MAX_M * 2];
	int			nchosen[HNSW_MAX_LEVEL + 1];

	NodeLock(&bs->g, node, LW_EXCLUSIVE);
	for (int l = top; l >= 0; l--)
	{
		MemPairArg	pa;
		int32	   *nb = GLayer(bs, node, l);
		float	   *lens = (l == 0 && bs->edgelens) ? GLengths(node, bs) : NULL;
		int			k = 0;

		for (int i = 0; i < nresults[l]; i++)
			if ((int) results[l][i].id != p)
				results[l][k++] = results[l][i];
		nresults[l] = k;
		pa.bs = bs;
		pa.cands = results[l];
		nchosen[l] = OmenRobustPrune(results[l], nresults[l], hs->alpha,
									 HnswLayerCapacity(l, hs->m),
									 MemPairDist, &pa, chosen[l]);
		for (int i = 0; i < nchosen[l]; i++)
		{
			nb[i] = (int32) results[l][chosen[l][i]].id;
			if (lens)
				lens[i] = results[l][chosen[l][i]].dist;
		}
		node->counts[l] = nchosen[l];
	}
	NodeUnlock(&bs->g, node);

	for (int l = top; l >= 0; l--)
	{
		bool		linked = false;

		for (int i = 0; i < nchosen[l]; i++)
		{
			OmenCand   *c = &results[l][chosen[l][i]];

			if (MemLinkBack(bs, (int) c->id, p, l, c->dist, false))
				linked = true;
		}
		/* every neighbour pruned it away: it must be reachable from one */
		if (!linked && nchosen[l] > 0)
		{
			OmenCand   *c = &results[l][chosen[l][0]];

			MemLinkBack(bs, (int) c->id, p, l, c->dist, true);
		}
	}
}

/*
 * Insert one prepared vector into the in-memory graph.  Returns false when
 * the graph is full (nothing was changed).
 */
static bool
MemInsert(HnswBuildState *bs, const float *vec, ItemPointer heaptid)
{
	HnswShared *hs = &bs->hs;
	HnswGraph  *g = &bs->g;
	int			level = HnswRandomLevel(&bs->levelrng, hs->ml, bs->maxlevel);
	int			p;
	uint64		upper;
	GraphNode  *node;
	int			top;
	OmenCand   *results[HNSW_MAX_LEVEL + 1];
	int			nresults[HNSW_MAX_LEVEL + 1];

	/* search first: a duplicate vector only adds its heap TID */
	top = MemSearch(bs, vec, level, results, nresults);
	if (top >= 0 && nresults[0] > 0 && results[0][0].dist == 0.0f)
	{
		GraphNode  *dup = GNode(g, (int) results[0][0].id);
		bool		added = false;

		if (memcmp(GVector(dup), vec, sizeof(float) * hs->dim) == 0)
		{
			NodeLock(g, dup, LW_EXCLUSIVE);
			if (dup->nheaptids < HNSW_HEAPTIDS)
			{
				dup->heaptids[dup->nheaptids++] = *heaptid;
				added = true;
			}
			NodeUnlock(g, dup);
		}
		if (added)
			return true;
	}

	/* a new node, complete before anything links to it */
	p = AllocNode(g, bs, level, &upper);
	if (p < 0)
		return false;
	node = GNode(g, p);
	memset(node, 0, GRAPH_NODE_HEADER);
	node->upper = upper;
	if (g->parallel)
		LWLockInitialize(&node->lock, g->sh->tranche);
	node->heaptids[0] = *heaptid;
	node->nheaptids = 1;
	node->level = level;
	memcpy(GVector(node), vec, sizeof(float) * hs->dim);
	if (BuildCodeSize(hs) > 0)
		HnswSq8Encode(vec, hs->dim, GCode(node, hs),
					  (uint8 *) (GCode(node, hs) + 1));

	if (top < 0)
	{
		bool		first;

		SpinLockAcquire(&g->sh->mutex);
		first = (g->sh->entry < 0);
		if (first)
		{
			g->sh->entry = p;
			g->sh->entry_level = level;
		}
		SpinLockRelease(&g->sh->mutex);
		if (first)
			return true;
		/* another participant got there first: search from its node */
		top = MemSearch(bs, vec, level, results, nresults);
	}
	MemLink(bs, p, results, nresults, top);

	SpinLockAcquire(&g->sh->mutex);
	if (level > g->sh->entry_level)
	{
		g->sh->entry = p;
		g->sh->entry_level = level;
	}
	SpinLockRelease(&g->sh->mutex);
	return true;
}

/* Write the meta page into page */
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
	meta->sketch_bits = bs->hs.sketch_bits;
	meta->proj_bits = bs->hs.proj_bits;
	meta->basis_blkno = bs->hs.basis_blkno;
	meta->pivot_blkno = bs->hs.pivot_blkno;
	meta->npivots = (uint16) bs->hs.npivots;
	meta->pivot_level = (uint8) bs->hs.pivot_level;
	meta->entry_level = entry_level;
	if (entry)
		meta->entry = *entry;
	else
		ItemPointerSetInvalid(&meta->entry);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/* Append a data page built in local memory to the index */
static void
FlushPage(HnswBuildState *bs, Page page)
{
	Buffer		buf = OmenNewBuffer(bs->index, MAIN_FORKNUM);

	memcpy(BufferGetPage(buf), page, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/*
 * The basis, for edge sketches and the pivots: fit it to a sample of the
 * graph's vectors and write it to pages after the meta page.  Returns it
 * (bits x dim floats), and in *proj, with edge sketches, every node's
 * projection on it (nnodes x bits; else NULL).  Returns NULL when the
 * index has no basis: its metric has none (L1), or without sketches there
 * would be no pivots (no node above layer 0, or the graph holds only some
 * rows: a build that ran out of memory writes none).
 */
static float *
WriteBasis(HnswBuildState *bs, float **proj)
{
	HnswShared *hs = &bs->hs;
	HnswGraph  *g = &bs->g;
	int			nnodes = GraphCount(g);
	int			bits = 0;
	int			ns;
	const float **sample;
	float	   *basis;
	Size		nfloats;
	Size		perpage = HNSW_PAGE_CAPACITY / sizeof(float);
	Page		page;
	bool		sketches;

	if (nnodes > 0 && hs->dim > 0)
		bits = HnswChooseSketchBits(hs->dim, hs->dist.metric);
	sketches = HnswSketchWanted(HnswGetSketchOption(bs->index), hs->dim,
								hs->storage, hs->m, bits);
	*proj = NULL;
	if (bits == 0 || (!sketches && bs->partial))
		return NULL;
	if (!sketches)
	{
		bool		upper = false;

		for (int i = 0; i < nnodes && !upper; i++)
			upper = GNode(g, i)->level >= 1;
		if (!upper)
			return NULL;
	}

	ns = Min(nnodes, HNSW_SKETCH_SAMPLE);
	sample = palloc(sizeof(float *) * ns);
	for (int i = 0; i < ns; i++)
		sample[i] = GVector(GNode(g, (int) ((int64) i * nnodes / ns)));
	nfloats = (Size) bits * hs->dim;
	basis = palloc(sizeof(float) * nfloats);
	OmenSketchBasis(sample, ns, hs->dim, bits, basis);
	pfree(sample);

	hs->basis_blkno = RelationGetNumberOfBlocks(bs->index);
	page = (Page) palloc(BLCKSZ);
	for (Size done = 0; done < nfloats;)
	{
		Size		k = Min(perpage, nfloats - done);

		OmenInitPage(page, HNSW_PAGE_BASIS);
		memcpy(PageGetContents(page), basis + done, sizeof(float) * k);
		((PageHeader) page)->pd_lower =
			(PageGetContents(page) + sizeof(float) * k) - (char *) page;
		FlushPage(bs, page);
		done += k;
	}
	pfree(page);

	if (sketches)
	{
		*proj = palloc_extended(sizeof(float) * bits * (Size) nnodes,
								MCXT_ALLOC_HUGE);
		for (int i = 0; i < nnodes; i++)
		{
			if ((i & 1023) == 0)
				CHECK_FOR_INTERRUPTS();
			OmenSketchProject(basis, bits, hs->dim, GVector(GNode(g, i)),
							  *proj + (Size) i * bits);
		}
	}
	hs->proj_bits = bits;
	hs->sketch_bits = sketches ? bits : 0;
	return basis;
}

/*
 * After the data pages: the pivots (see HnswPivotData), the nodes of level
 * pivot_level or more, at most HNSW_MAX_PIVOTS, with their projections on
 * the basis (taken from proj, every node's, when the index has sketches;
 * else computed here for these nodes only).  First the tops, each with the
 * size of its group, then the members, group by group.  A node whose
 * projection is beyond the half range is left out.  page is scratch.
 */
static void
WritePivots(HnswBuildState *bs, const float *proj, const float *basis,
			Page page)
{
	HnswShared *hs = &bs->hs;
	HnswGraph  *g = &bs->g;
	int			nnodes = GraphCount(g);
	int			bits = hs->proj_bits;
	Size		recsize = HNSW_PIVOT_SIZE(bits);
	int			perpage = HNSW_PAGE_CAPACITY / recsize;
	int			atlevel[HNSW_MAX_LEVEL + 2] = {0};
	int			level;
	int			count = 0;
	int		   *node;			/* [k]: the candidate's node */
	float	   *pp;				/* [k]: its projection */
	int		   *group;
	int		   *gsize;
	int		   *order;			/* the write order, of k */
	int			ntops = 0;
	int			n = 0;

	hs->npivots = 0;
	hs->pivot_level = 0;
	for (int i = 0; i < nnodes; i++)
		atlevel[GNode(g, i)->level]++;
	/* the lowest level whose nodes and those above number at most the cap */
	for (level = HNSW_MAX_LEVEL; level >= 1; level--)
	{
		if (count + atlevel[level] > HNSW_MAX_PIVOTS)
			break;
		count += atlevel[level];
	}
	level++;
	if (count == 0 || level > HNSW_MAX_LEVEL)
		return;

	/* [0, ntops): the tops; then the members, in node order */
	node = palloc(sizeof(int) * count);
	pp = palloc(sizeof(float) * bits * count);
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < nnodes; i++)
		{
			int			l = GNode(g, i)->level;
			float	   *p = pp + (Size) n * bits;

			if (pass == 0 ? l <= level : l != level)
				continue;
			if ((n & 255) == 0)
				CHECK_FOR_INTERRUPTS();
			if (proj)
				memcpy(p, proj + (Size) i * bits, sizeof(float) * bits);
			else
				OmenSketchProject(basis, bits, hs->dim, GVector(GNode(g, i)), p);
			if (HnswFitsHalf(p, bits))
				node[n++] = i;
		}
		if (pass == 0)
			ntops = n;
	}

	/*
	 * Each member's group: the top nearest it by L2 between projections
	 * (for inner product too, where scans choose the tops by dot product:
	 * the members near a top are what its neighbourhood looks like)
	 */
	group = palloc(sizeof(int) * n);
	gsize = palloc0(sizeof(int) * (ntops + 1));
	for (int k = ntops; k < n; k++)
	{
		const float *p = pp + (Size) k * bits;
		float		best = INFINITY;
		int			j = 0;

		CHECK_FOR_INTERRUPTS();
		for (int t = 0; t < ntops; t++)
		{
			float		d = omen_kernels->l2sq(p, pp + (Size) t * bits, bits);

			if (d < best)
			{
				best = d;
				j = t;
			}
		}
		group[k] = j;
		gsize[j]++;
	}
	/* the tops, then the members group by group (a stable counting sort) */
	order = palloc(sizeof(int) * n);
	for (int k = 0; k < n; k++)
		order[k] = k;
	if (ntops > 0)
	{
		int		   *start = palloc(sizeof(int) * ntops);

		start[0] = ntops;
		for (int t = 1; t < ntops; t++)
			start[t] = start[t - 1] + gsize[t - 1];
		for (int k = ntops; k < n; k++)
			order[start[group[k]]++] = k;
		pfree(start);
	}

	hs->pivot_blkno = RelationGetNumberOfBlocks(bs->index);
	hs->pivot_level = level;
	OmenInitPage(page, HNSW_PAGE_BASIS);
	for (int w = 0; w < n; w++)
	{
		int			k = order[w];
		GraphNode  *gn = GNode(g, node[k]);
		HnswPivotData *rec;

		if (w > 0 && w % perpage == 0)
		{
			FlushPage(bs, page);
			OmenInitPage(page, HNSW_PAGE_BASIS);
		}
		rec = (HnswPivotData *) (PageGetContents(page) +
								 (Size) (w % perpage) * recsize);
		rec->tid = gn->tid;
		rec->level = (uint8) gn->level;
		rec->unused = 0;
		rec->nmembers = (uint16) (k < ntops ? gsize[k] : 0);
		OmenFloatToHalf(pp + (Size) k * bits, rec->proj, bits);
		((PageHeader) page)->pd_lower =
			((char *) rec + recsize) - (char *) page;
	}
	if (n > 0)
		FlushPage(bs, page);
	hs->npivots = n;
	pfree(node);
	pfree(pp);
	pfree(group);
	pfree(gsize);
	pfree(order);
}

/*
 * Write the in-memory graph to data pages: first decide every tuple's
 * place (so neighbour lists can name their targets), then fill the pages
 * in that order.  Sets the meta page's entry point.
 */
static void
WriteGraph(HnswBuildState *bs)
{
	HnswShared *hs = &bs->hs;
	HnswGraph  *g = &bs->g;
	int			nnodes = GraphCount(g);
	Size		esize = HNSW_ELEMENT_SIZE(hs->dim, hs->storage);
	BlockNumber first;
	BlockNumber blkno;
	Size		freespace = HNSW_PAGE_CAPACITY;
	OffsetNumber off = FirstOffsetNumber;
	Page		page;
	HnswElementTuple etup;
	HnswNeighborTuple ntup;
	float	   *proj;
	float	   *basis;
	int			bits;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE,
								 PROGRESS_HNSW_PHASE_WRITE);

	basis = WriteBasis(bs, &proj);
	bits = hs->sketch_bits;
	first = RelationGetNumberOfBlocks(bs->index);
	blkno = first;

	/* placement */
	for (int i = 0; i < nnodes; i++)
	{
		GraphNode  *node = GNode(g, i);
		Size		nsize = HnswNeighborSize(hs, node->level);
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
	etup = palloc0(esize);
	ntup = palloc0(HnswNeighborSize(hs, bs->maxlevel));
	for (int i = 0; i < nnodes; i++)
	{
		GraphNode  *node = GNode(g, i);
		int32	   *nb = GLayer(bs, node, 0);
		Size		nsize = HnswNeighborSize(hs, node->level);
		int			nslots = HNSW_NEIGHBOR_SLOTS(node->level, hs->m);
		ItemPointerData *tids;

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
		/* the graph's code is the same encoding of the same vector */
		HnswElementSetVector(hs, etup, GVector(node),
							 BuildCodeSize(hs) > 0 ? GCode(node, hs) : NULL);

		memset(ntup, 0, nsize);
		ntup->type = HNSW_TUPLE_NEIGHBORS;
		ntup->count = nslots;
		tids = HnswNeighborTids(ntup, hs->m, bits);
		for (int j = 0; j < nslots; j++)
			ItemPointerSetInvalid(&tids[j]);
		for (int l = 0; l <= node->level; l++)
		{
			int			start = HnswLayerStart(l, hs->m);
			int32	   *lnb = GLayer(bs, node, l);

			for (int j = 0; j < node->counts[l]; j++)
				tids[start + j] = GNode(g, lnb[j])->tid;
		}
		if (bits > 0)
		{
			const float *cvec = GVector(node);
			const float *lens = bs->edgelens ? GLengths(node, bs) : NULL;
			float		cproj[OMEN_SKETCH_MAX_BITS];

			HnswSketchSetProj(hs, ntup, proj + (Size) i * bits);
			/* what the scans compare with: the projection as stored */
			OmenHalfToFloat(HnswSketchProj(ntup, hs->m), cproj, bits);
			for (int j = 0; j < 2 * hs->m; j++)
				HnswSketchClear(hs, ntup, j);
			for (int j = 0; j < node->counts[0]; j++)
			{
				float		d = lens ? lens[j] :
					omen_kernels->l2sq(cvec, GVector(GNode(g, nb[j])), hs->dim);

				HnswSketchFillProj(hs, ntup, j, sqrtf(d),
								   proj + (Size) nb[j] * bits, cproj);
			}
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
	if (nnodes > 0)
		FlushPage(bs, page);
	pfree(etup);
	pfree(ntup);
	if (basis)
	{
		/*
		 * Pivots chosen from only the rows built in memory would start scans
		 * for the rest in the wrong place (data loaded cluster by cluster)
		 */
		if (!bs->partial)
			WritePivots(bs, proj, basis, page);
		pfree(basis);
	}
	if (proj)
		pfree(proj);
	pfree(page);

	UpdateMetaNoWal(bs, g->sh->entry >= 0 ? &GNode(g, g->sh->entry)->tid : NULL,
					g->sh->entry_level);
}

/* Empty the serial graph for reuse */
static void
ResetSerialGraph(HnswGraph *g)
{
	pg_atomic_write_u32(&g->sh->nnodes, 0);
	pg_atomic_write_u64(&g->sh->used, 0);
	g->sh->entry = -1;
	g->sh->entry_level = -1;
}

/* Memory ran out: write the graph, log it, go on inserting into pages */
static void
SwitchToDisk(HnswBuildState *bs)
{
	HnswGraph  *g = &bs->g;
	double		perrow = bs->indtuples > 0 ?
		(double) (pg_atomic_read_u64(&g->sh->used) +
				  g->stride * GraphCount(g)) / bs->indtuples : 0;
	double		need = perrow * Max(bs->reltuples, bs->indtuples) / (1024.0 * 1024.0);

	ereport(NOTICE,
			(errmsg("omen_hnsw graph no longer fits into maintenance_work_mem after %.0f tuples",
					bs->indtuples),
			 errdetail("Building will take longer: the remaining tuples are inserted into the index pages one by one."),
			 errhint("Increase maintenance_work_mem to about %.0f MB to build this index in memory.",
					 ceil(need * 1.1) + 1)));

	bs->partial = true;
	WriteGraph(bs);
	ResetSerialGraph(g);
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
	/* a parallel graph that overflowed: the leader will start over */
	if (bs->g.parallel && pg_atomic_read_u32(&bs->g.sh->full))
		return;

	old = MemoryContextSwitchTo(bs->tmpCtx);
	v = DatumGetVector(values[0]);

	/* a column without typmod: the first vector fixes the length */
	if (bs->hs.dim == 0)
	{
		HnswCheckDim(index, v->dim, bs->hs.storage);
		bs->hs.dim = v->dim;
		bs->hs.dist.dim = v->dim;
		SetEdgeLengths(bs);
	}

	vec = palloc(sizeof(float) * bs->hs.dim);
	if (OmenPrepareVector(&bs->hs.dist, v, vec))
	{
		bool		done = false;

		if (!bs->ondisk)
		{
			done = MemInsert(bs, vec, tid);
			if (!done && !bs->g.parallel)
			{
				MemoryContextSwitchTo(old);
				SwitchToDisk(bs);
				MemoryContextSwitchTo(bs->tmpCtx);
			}
		}
		if (bs->ondisk)
		{
			HnswInsertVector(&bs->hs, vec, tid);
			done = true;
		}
		if (done)
		{
			uint64		total;

			bs->indtuples++;
			total = pg_atomic_add_fetch_u64(&bs->g.sh->indtuples, 1);
			if (bs->isleader)
				pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE,
											 (int64) total);
		}
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
	hs->alpha = HnswGetAlpha(index);
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

/* Set up a build state for one participant (leader, worker or serial) */
static void
InitBuildState(HnswBuildState *bs, Relation heap, Relation index,
			   IndexInfo *indexInfo)
{
	memset(bs, 0, sizeof(*bs));
	bs->heap = heap;
	bs->index = index;
	bs->indexInfo = indexInfo;
	InitBuildShared(&bs->hs, index);
	SetEdgeLengths(bs);
	bs->maxlevel = HnswMaxLevel(bs->hs.m);

	/*
	 * The same seed for every build (and one per parallel participant), so
	 * a serial build of the same rows gives the same graph, as the tests
	 * expect; inserts later draw from the backend's own generator.
	 */
	pg_prng_seed(&bs->levelrng,
				 UINT64CONST(0x6F6D656E686E7377) + (uint64) (ParallelWorkerNumber + 1));
	bs->tmpCtx = AllocSetContextCreate(CurrentMemoryContext,
									   "omen_hnsw build tuple",
									   ALLOCSET_DEFAULT_SIZES);
	OmenGraphSearchInit(&bs->search, &hnsw_mem_ops, bs,
						bs->hs.ef_construction, 2 * bs->hs.m, false);
}

/* Release a participant's build state */
static void
FreeBuildState(HnswBuildState *bs)
{
	OmenGraphSearchFree(&bs->search);
	MemoryContextDelete(bs->tmpCtx);
	HnswFreeShared(&bs->hs);
}

/* Scan this participant's share of the heap into the shared graph */
static double
ParallelScanAndInsert(HnswBuildState *bs, HnswParallelShared *shared,
					  bool progress)
{
	IndexInfo  *indexInfo = BuildIndexInfo(bs->index);
	TableScanDesc scan;
	double		reltuples;

	indexInfo->ii_Concurrent = shared->isconcurrent;
	scan = table_beginscan_parallel(bs->heap,
									ParallelTableScanFromHnswShared(shared));
	reltuples = table_index_build_scan(bs->heap, bs->index, indexInfo, true,
									   progress, BuildCallback, bs, scan);
	SpinLockAcquire(&shared->mutex);
	shared->reltuples += reltuples;
	SpinLockRelease(&shared->mutex);
	return reltuples;
}

/* Entry point of a parallel build worker (named in CreateParallelContext) */
PGDLLEXPORT void HnswParallelBuildMain(dsm_segment *seg, shm_toc *toc);

void
HnswParallelBuildMain(dsm_segment *seg, shm_toc *toc)
{
	HnswParallelShared *shared;
	HnswGraphShared *gsh;
	Relation	heap;
	Relation	index;
	LOCKMODE	heapLockmode;
	LOCKMODE	indexLockmode;
	HnswBuildState bs;

	shared = shm_toc_lookup(toc, PARALLEL_KEY_HNSW_SHARED, false);
	gsh = shm_toc_lookup(toc, PARALLEL_KEY_HNSW_GRAPH, false);

	/* the same lock modes as the leader holds (see index_build) */
	if (!shared->isconcurrent)
	{
		heapLockmode = ShareLock;
		indexLockmode = AccessExclusiveLock;
	}
	else
	{
		heapLockmode = ShareUpdateExclusiveLock;
		indexLockmode = RowExclusiveLock;
	}
	heap = table_open(shared->heaprelid, heapLockmode);
	index = index_open(shared->indexrelid, indexLockmode);

	LWLockRegisterTranche(gsh->tranche, "omen_hnsw_build");
	InitBuildState(&bs, heap, index, NULL);
	bs.hs.dim = shared->dim;
	bs.hs.dist.dim = shared->dim;
	SetEdgeLengths(&bs);
	bs.g.sh = gsh;
	bs.g.area = (char *) gsh + MAXALIGN(sizeof(HnswGraphShared));
	bs.g.upper = bs.g.area + gsh->areasize;
	bs.g.stride = GNodeSize(&bs);
	bs.g.parallel = true;

	ParallelScanAndInsert(&bs, shared, false);

	FreeBuildState(&bs);
	index_close(index, indexLockmode);
	table_close(heap, heapLockmode);
}

/*
 * Build the graph with parallel workers, if the planner grants any and the
 * graph fits.  Returns false (having done nothing) to build serially, and
 * also when a parallel graph overflowed after all.
 */
static bool
BuildParallel(HnswBuildState *bs, double *heaptuples)
{
	Relation	heap = bs->heap;
	Relation	index = bs->index;
	int			request;
	BlockNumber pages;
	double		tuples;
	double		allvisfrac;
	Size		areasize;
	Size		uppersize;
	Size		graphsize;
	Size		maxnodes;
	Size		estscan;
	ParallelContext *pcxt;
	Snapshot	snapshot;
	HnswParallelShared *shared;
	HnswGraphShared *gsh;
	bool		ok;

	if (bs->hs.dim == 0)
		return false;			/* no typmod: the first vector decides */
	request = plan_create_index_workers(RelationGetRelid(heap),
										RelationGetRelid(index));
	if (request <= 0)
		return false;

	table_relation_estimate_size(heap, NULL, &pages, &tuples, &allvisfrac);
	tuples = Max(tuples, 1);
	maxnodes = (Size) (tuples * 1.2) + 1000;
	if (maxnodes > PG_INT32_MAX)
		return false;
	areasize = maxnodes * GNodeSize(bs);
	uppersize = EstimateUpperSize((double) maxnodes, bs);
	graphsize = areasize + uppersize;
	if (graphsize > (Size) maintenance_work_mem * 1024 ||
		!OmenDsmHasRoom(graphsize))
		return false;
	bs->reltuples = tuples;

	EnterParallelMode();
	pcxt = CreateParallelContext("omen", "HnswParallelBuildMain", request);
	snapshot = bs->indexInfo->ii_Concurrent ?
		RegisterSnapshot(GetTransactionSnapshot()) : SnapshotAny;
	estscan = table_parallelscan_estimate(heap, snapshot);
	shm_toc_estimate_chunk(&pcxt->estimator,
						   MAXALIGN(sizeof(HnswParallelShared)) + estscan);
	shm_toc_estimate_chunk(&pcxt->estimator,
						   MAXALIGN(sizeof(HnswGraphShared)) +
						   graphsize);
	shm_toc_estimate_keys(&pcxt->estimator, 2);
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		if (IsMVCCSnapshot(snapshot))
			UnregisterSnapshot(snapshot);
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return false;
	}

	shared = shm_toc_allocate(pcxt->toc,
							  MAXALIGN(sizeof(HnswParallelShared)) + estscan);
	shared->heaprelid = RelationGetRelid(heap);
	shared->indexrelid = RelationGetRelid(index);
	shared->isconcurrent = bs->indexInfo->ii_Concurrent;
	shared->dim = bs->hs.dim;
	SpinLockInit(&shared->mutex);
	shared->reltuples = 0;
	table_parallelscan_initialize(heap, ParallelTableScanFromHnswShared(shared),
								  snapshot);

	gsh = shm_toc_allocate(pcxt->toc, MAXALIGN(sizeof(HnswGraphShared)) +
						   graphsize);
	GraphInitShared(gsh, areasize, uppersize, (uint32) maxnodes,
					LWLockNewTrancheId());
	LWLockRegisterTranche(gsh->tranche, "omen_hnsw_build");
	bs->g.sh = gsh;
	bs->g.area = (char *) gsh + MAXALIGN(sizeof(HnswGraphShared));
	bs->g.upper = bs->g.area + areasize;
	bs->g.stride = GNodeSize(bs);
	bs->g.parallel = true;
	bs->g.growable = false;

	shm_toc_insert(pcxt->toc, PARALLEL_KEY_HNSW_SHARED, shared);
	shm_toc_insert(pcxt->toc, PARALLEL_KEY_HNSW_GRAPH, gsh);

	LaunchParallelWorkers(pcxt);
	/* the leader takes part, so this works with no worker at all */
	ParallelScanAndInsert(bs, shared, true);
	WaitForParallelWorkersToFinish(pcxt);

	ok = !pg_atomic_read_u32(&gsh->full);
	if (ok)
	{
		ereport(DEBUG1,
				(errmsg_plural("omen_hnsw: built the graph with %d parallel worker",
							   "omen_hnsw: built the graph with %d parallel workers",
							   pcxt->nworkers_launched,
							   pcxt->nworkers_launched)));
		WriteGraph(bs);
		*heaptuples = shared->reltuples;
		bs->indtuples = (double) pg_atomic_read_u64(&gsh->indtuples);
	}
	else
		ereport(NOTICE,
				(errmsg("omen_hnsw graph did not fit into the memory estimated for a parallel build; building again without workers")));

	if (IsMVCCSnapshot(snapshot))
		UnregisterSnapshot(snapshot);
	DestroyParallelContext(pcxt);
	ExitParallelMode();
	bs->g.sh = NULL;
	return ok;
}

/* Set up a serial build's graph in local memory, growing to the limit */
static void
InitSerialGraph(HnswBuildState *bs)
{
	HnswGraph  *g = &bs->g;
	BlockNumber pages;
	double		tuples;
	double		allvisfrac;
	Size		limit = (Size) maintenance_work_mem * 1024;
	Size		area = 64 * 1024;
	Size		upper;

	table_relation_estimate_size(bs->heap, NULL, &pages, &tuples, &allvisfrac);
	bs->reltuples = tuples;
	/* a node's size needs the vectors' length: without typmod, grow later */
	if (bs->hs.dim > 0)
		area = Max(area, (Size) (Max(tuples * 1.1, 1024.0) * GNodeSize(bs)));
	area = Min(limit / 2, area);
	upper = Min(limit / 8, EstimateUpperSize(Max(tuples, 1), bs));

	/* maxnodes follows from the stride, at the first node */
	g->sh = palloc(sizeof(HnswGraphShared));
	GraphInitShared(g->sh, area, upper, 0, 0);
	g->area = palloc_extended(area, MCXT_ALLOC_HUGE);
	g->upper = palloc_extended(upper, MCXT_ALLOC_HUGE);
	g->stride = 0;
	g->parallel = false;
	g->growable = true;
	g->limit = limit;
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
	double		heaptuples = 0;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data",
			 RelationGetRelationName(index));

	InitBuildState(&bs, heap, index, indexInfo);
	bs.isleader = true;

	/* the meta page first, unlogged like the rest of the build */
	buf = OmenNewBuffer(index, MAIN_FORKNUM);
	InitMetaPage(BufferGetPage(buf), &bs.hs, NULL, -1);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE,
								 PROGRESS_HNSW_PHASE_BUILD);

	if (!BuildParallel(&bs, &heaptuples))
	{
		FreeBuildState(&bs);
		InitBuildState(&bs, heap, index, indexInfo);
		bs.isleader = true;
		InitSerialGraph(&bs);
		heaptuples = table_index_build_scan(heap, index, indexInfo, true, true,
											BuildCallback, &bs, NULL);
		if (!bs.ondisk)
			WriteGraph(&bs);
	}

	/* pages written after a switch to page inserts were logged as they went */
	if (!bs.ondisk)
		OmenLogBuiltFork(index, MAIN_FORKNUM);

	result = (IndexBuildResult *) palloc(sizeof(IndexBuildResult));
	result->heap_tuples = heaptuples;
	result->index_tuples = bs.g.sh && !bs.g.parallel ?
		(double) pg_atomic_read_u64(&bs.g.sh->indtuples) : bs.indtuples;
	FreeBuildState(&bs);
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

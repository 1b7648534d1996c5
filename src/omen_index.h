/*
 * omen_index.h
 *	  What omen's two graph indexes (omen_hnsw, omen_diskann) share:
 *	  metrics resolved from the operator class, candidate heaps, a visited
 *	  set, RobustPrune neighbour selection, and page / generic-WAL helpers.
 *
 * Nothing here knows about a particular graph; src/am_hnsw/ and
 * src/am_diskann/ hold only what differs.
 */
#ifndef OMEN_INDEX_H
#define OMEN_INDEX_H

#include "postgres.h"

#include "access/generic_xlog.h"
#include "access/genam.h"
#include "storage/bufmgr.h"
#include "utils/relcache.h"
#include "simd/omen_half.h"
#include "simd/omen_simd.h"
#include "vector.h"

/* ---------------------------------------------------------------------
 * Metrics
 *
 * An operator class names its distance function as support function 1.
 * When that is one of omen's own C functions the index calls the matching
 * SIMD kernel directly; any other function is called through fmgr.
 * Cosine is served as squared L2 on unit vectors (|a-b|^2 = 2 - 2cos), so
 * the index stores normalised vectors and every metric it walks with except
 * inner product is non-negative.
 * ---------------------------------------------------------------------
 */
typedef enum OmenMetric
{
	OMEN_METRIC_L2 = 0,			/* squared L2; reported as its square root */
	OMEN_METRIC_IP,				/* negative inner product */
	OMEN_METRIC_COSINE,			/* squared L2 of unit vectors */
	OMEN_METRIC_L1,				/* L1 */
	OMEN_METRIC_FMGR			/* an unknown function, through fmgr */
} OmenMetric;

/* Support function numbers shared by both access methods */
#define OMEN_DISTANCE_PROC		1
#define OMEN_NPROCS				1

typedef struct OmenDistance
{
	OmenMetric	metric;
	int			dim;			/* vector length the index holds */
	FmgrInfo   *fmgr;			/* OMEN_METRIC_FMGR only */
	Oid			collation;
} OmenDistance;

extern void OmenDistanceInit(OmenDistance *dist, Relation index);
extern const char *OmenMetricName(OmenMetric metric);

extern float OmenDistanceFmgr(const OmenDistance *dist, const float *a,
							  const float *b);

/* Distance between two full vectors of dist->dim elements */
static inline float
OmenDistanceCalc(const OmenDistance *dist, const float *a, const float *b)
{
	switch (dist->metric)
	{
		case OMEN_METRIC_L2:
		case OMEN_METRIC_COSINE:
			return omen_kernels->l2sq(a, b, dist->dim);
		case OMEN_METRIC_IP:
			return -omen_kernels->ip(a, b, dist->dim);
		case OMEN_METRIC_L1:
			return omen_kernels->l1(a, b, dist->dim);
		default:
			return OmenDistanceFmgr(dist, a, b);
	}
}

/*
 * OmenDistanceCalc with b stored in half precision: the same value as
 * decoding b and calling it, without decoding into memory where the
 * kernels take halves (L2, cosine, inner product); else through scratch
 * (dim floats).
 */
static inline float
OmenDistanceCalcHalf(const OmenDistance *dist, const float *a,
					 const uint16 *b, float *scratch)
{
	switch (dist->metric)
	{
		case OMEN_METRIC_L2:
		case OMEN_METRIC_COSINE:
			return omen_kernels->l2sq_half(a, b, dist->dim);
		case OMEN_METRIC_IP:
			return -omen_kernels->ip_half(a, b, dist->dim);
		default:
			OmenHalfToFloat(b, scratch, dist->dim);
			return OmenDistanceCalc(dist, a, scratch);
	}
}

/*
 * Turn the distance the index ranks by into what the SQL operator returns
 * (sqrt for L2, 1 - cos for cosine).
 */
extern double OmenDistanceToSql(const OmenDistance *dist, float d);

/*
 * Prepare a value for the index: check its length and finiteness, and for
 * cosine normalise it.  Returns false for a value the index does not hold (a
 * zero vector under cosine).  out must have room for dist->dim floats.
 */
extern bool OmenPrepareVector(const OmenDistance *dist, const Vector *v,
							  float *out);

/*
 * Ask the CPU to start loading the cache line holding p.  On x86-64 this is
 * an asm statement: GCC 12's dead-code elimination deletes a
 * __builtin_prefetch whose branch does nothing else (it dropped every
 * prefetch of buffer headers and line pointers), and an asm volatile is
 * never deleted.  A prefetch does not fault, whatever the address.
 */
static inline void
OmenPrefetchLine(const void *p)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__asm__ volatile("prefetcht0 %0" : : "m"(*(const char *) p));
#else
	__builtin_prefetch(p);
#endif
}

/* Ask the CPU to start loading [p, p + len) into cache */
static inline void
OmenPrefetch(const void *p, Size len)
{
	for (Size o = 0; o < len; o += 64)
		OmenPrefetchLine((const char *) p + o);
}

/* ---------------------------------------------------------------------
 * Candidates and heaps
 * ---------------------------------------------------------------------
 */
typedef struct OmenCand
{
	float		dist;
	uint32		aux;			/* caller's flags / level */
	uint64		id;				/* node id or packed ItemPointer */
} OmenCand;

/*
 * The part of a scan's state both access methods share (index_scan.c); the
 * first member of each one's scan state.
 */
typedef struct OmenScanBase
{
	MemoryContext ctx;			/* everything the scan builds lives here */
	bool		started;
	bool		done;
	bool		searching;		/* the method's search is set up */
	bool		swept;			/* the final sweep has been done */
	float	   *query;
	OmenCand   *batch;			/* the current batch of candidates */
	int			nbatch;
	int64		returned;
	/* heap prefetch ring (OmenScanHeapAhead): row r is in slot r % 8 */
	int64		ahead_next;		/* first row not prefetched yet */
	ItemPointerData ahead_tid[8];
	Buffer		ahead_buf[8];
} OmenScanBase;

/* Rows looked up this far ahead of the one being returned */
#define OMEN_HEAP_AHEAD 4

/*
 * The heap TID of the k-th row (k >= 1) after the one being returned, if
 * the method already knows it (its current batch); false if not.
 */
typedef bool (*OmenPeekTidFn) (void *arg, int k, ItemPointer out);

extern IndexScanDesc OmenBeginScan(Relation index, int nkeys, int norderbys,
								   Size size, const char *ctxname);
extern void OmenRescan(IndexScanDesc scan, ScanKey keys, ScanKey orderbys,
					   Size size);
extern void OmenScanStart(IndexScanDesc scan, const char *amname);
extern void OmenScanQuery(IndexScanDesc scan, const OmenDistance *dist,
						  int dim);
extern void OmenScanHeapAhead(IndexScanDesc scan, OmenPeekTidFn peek,
							  void *arg);
extern void OmenEndScan(IndexScanDesc scan);

/* A binary heap of candidates, nearest on top (min) or furthest (max) */
typedef struct OmenHeap
{
	OmenCand   *items;
	int			count;
	int			capacity;
	bool		max;			/* true: furthest on top */
} OmenHeap;

extern void OmenHeapInit(OmenHeap *h, int capacity, bool max);
extern void OmenHeapPush(OmenHeap *h, OmenCand c);
extern OmenCand OmenHeapPop(OmenHeap *h);
extern void OmenHeapFree(OmenHeap *h);

static inline OmenCand *
OmenHeapTop(OmenHeap *h)
{
	return h->count > 0 ? &h->items[0] : NULL;
}

extern void OmenSortCands(OmenCand *c, int n);

/* ItemPointer <-> uint64 id */
static inline uint64
OmenTidToId(ItemPointer tid)
{
	return ((uint64) ItemPointerGetBlockNumberNoCheck(tid) << 16) |
		ItemPointerGetOffsetNumberNoCheck(tid);
}

static inline void
OmenIdToTid(uint64 id, ItemPointer tid)
{
	ItemPointerSet(tid, (BlockNumber) (id >> 16), (OffsetNumber) (id & 0xFFFF));
}

/* ---------------------------------------------------------------------
 * Visited set: open addressing over uint64 ids
 * ---------------------------------------------------------------------
 */
typedef struct OmenVisited
{
	uint64	   *slots;			/* id + 1; 0 marks an empty slot */
	uint32		mask;
	uint32		count;
} OmenVisited;

extern void OmenVisitedInit(OmenVisited *v, int expected);
extern void OmenVisitedReset(OmenVisited *v);
extern void OmenVisitedFree(OmenVisited *v);

/* Add id; returns true if it was already there */
extern bool OmenVisitedTestAndSet(OmenVisited *v, uint64 id);
extern bool OmenVisitedContains(const OmenVisited *v, uint64 id);

/* ---------------------------------------------------------------------
 * Best-first graph search (index_search.c)
 *
 * HNSW's SearchLayer and DiskANN's GreedySearch are one loop: expand the
 * nearest unexpanded candidate, keep the best ef results.  The access
 * method supplies two callbacks, so the same loop runs over the in-memory
 * build graph and over index pages.  A search can be resumed for the next
 * ef results, which is how scans go on past their first list.
 * ---------------------------------------------------------------------
 */
/* What visiting one node found */
typedef struct OmenVisit
{
	float		dist;			/* from the query */
	uint32		aux;			/* stored with the candidate */
	bool		ok;				/* false: skip the node entirely */
	bool		isresult;		/* false: walk through it, never return it */
} OmenVisit;

typedef struct OmenGraphOps
{
	/*
	 * Distances from the query to nodes ids[0..n), all unvisited so far.
	 * Given the whole batch at once, the access method can fetch and
	 * prefetch their pages together before computing any distance.
	 */
	void		(*visit) (void *arg, const uint64 *ids, int n, OmenVisit *out);
	/* Writes at most max neighbour ids of (id, aux) at layer; returns count */
	int			(*neighbors) (void *arg, uint64 id, uint32 aux, int layer,
							  uint64 *out, int max);

	/*
	 * Optional (NULL if none): estimates of the distances of the
	 * neighbours the last neighbors() call returned, from the expanded
	 * node's distance cdist, without reading them.  Returns false if it
	 * has none for that list.
	 */
	bool		(*estimate) (void *arg, float cdist, int n, float *est);
} OmenGraphOps;

/* Flags kept in a rejected candidate's id */
#define OMEN_CAND_QUEUED	(UINT64CONST(1) << 63)	/* already queued to expand */
#define OMEN_CAND_NORESULT	(UINT64CONST(1) << 62)	/* walk through, never return */
#define OMEN_CAND_FLAGS		(OMEN_CAND_QUEUED | OMEN_CAND_NORESULT)

typedef struct OmenGraphSearch
{
	const OmenGraphOps *ops;
	void	   *arg;
	int			ef;
	int			maxneighbors;	/* largest neighbour list */
	bool		keep_rejected;	/* remember candidates for a next batch */
	bool		record_expanded;	/* keep every expanded node */
	OmenVisited visited;
	OmenHeap	cand;			/* to expand, nearest first */
	OmenHeap	result;			/* best ef, furthest on top */
	OmenHeap	rejected;		/* found but not kept, nearest first */
	OmenCand	nearest;		/* nearest node offered since the last reset,
								 * a result or not */
	bool		hasnearest;
	uint64	   *nbuf;
	uint64	   *fresh;			/* the unvisited part of nbuf */
	OmenVisit  *visits;
	OmenCand   *expanded;
	int			nexpanded;
	int			maxexpanded;
	uint64		ndistances;		/* statistics */
	uint64		nskipped;		/* neighbours passed over by estimate */

	/*
	 * With ops->estimate and a margin >= 0, once result is full a
	 * neighbour whose estimated distance exceeds the furthest result by
	 * more than margin times its magnitude is not visited (nor marked
	 * visited: another node may lead to it).  Turned off for the batches
	 * after the first.
	 */
	float		estimate_margin;
	float	   *est;
} OmenGraphSearch;

extern void OmenGraphSearchInit(OmenGraphSearch *s, const OmenGraphOps *ops,
								void *arg, int ef, int maxneighbors,
								bool keep_rejected);
extern void OmenGraphSearchReset(OmenGraphSearch *s, int ef);
extern void OmenGraphSearchFree(OmenGraphSearch *s);
extern bool OmenGraphSearchAddEntry(OmenGraphSearch *s, uint64 id);
extern bool OmenGraphSearchAddVisited(OmenGraphSearch *s, uint64 id,
									  const OmenVisit *v);
extern void OmenGraphSearchAddCand(OmenGraphSearch *s, OmenCand c);
extern void OmenGraphSearchRun(OmenGraphSearch *s, int layer);
extern int	OmenGraphSearchTakeResults(OmenGraphSearch *s, OmenCand **out);
extern bool OmenGraphSearchNextBatch(OmenGraphSearch *s, int layer);
extern bool OmenGraphSearchDescend(OmenGraphSearch *s, uint64 entry,
								   int fromlayer, int tolayer, int width);
extern void OmenGraphSearchDescendFrom(OmenGraphSearch *s, int fromlayer,
									   int tolayer, int width);
extern int	OmenGraphSearchLayer(OmenGraphSearch *s, int layer, int ef,
								 OmenCand **out);

/* ---------------------------------------------------------------------
 * RobustPrune (ALGORITHMS.md section 1)
 *
 * cands[0..n) are sorted by distance to the node p being linked; pairdist
 * returns d(cands[i], cands[j]).  Chooses up to maxdeg of them, escalating
 * the domination factor from 1 to alpha by steps of 1.2; alpha = 1 is
 * HNSW's heuristic.  Writes the chosen indexes, nearest first, to out and
 * returns how many.
 * ---------------------------------------------------------------------
 */
typedef float (*OmenPairDistFn) (void *arg, int i, int j);

extern int	OmenRobustPrune(const OmenCand *cands, int n, float alpha,
							int maxdeg, OmenPairDistFn pairdist, void *arg,
							int *out);

/* The usual pairdist: candidates' full vectors in an array */
typedef struct OmenVecPairArg
{
	const OmenDistance *dist;
	float	  **vecs;			/* vecs[i] is cands[i]'s vector */
} OmenVecPairArg;

extern float OmenVecPairDist(void *arg, int i, int j);
extern int	OmenRobustPruneVectors(OmenCand *cands, int n, float **vecs,
								   const OmenDistance *dist, float alpha,
								   int maxdeg, int *out);

/* ---------------------------------------------------------------------
 * Edge sketches (index_sketch.c): estimate d(q, v) from d(q, c) for an
 * edge c -> v, from |v - c| and the signs of v - c on a few principal axes
 * ---------------------------------------------------------------------
 */
#define OMEN_SKETCH_MAX_BITS	64

extern void OmenSketchBasis(const float *const *sample, int n, int dim, int r,
							float *basis);
extern void OmenSketchProject(const float *basis, int r, int dim,
							  const float *x, float *out);
extern uint64 OmenSketchSigns(const float *a, const float *b, int r);
extern void OmenSketchCosTable(int r, float *table);
extern void OmenSketchEstimate(bool ip, float dc, float qnorm, uint64 qsigns,
							   const uint64 *signs, const float *norms, int n,
							   const float *costable, float *est);

/* ---------------------------------------------------------------------
 * Pages and generic WAL
 *
 * Every omen index page ends with an OmenPageOpaque that names the page's
 * kind, so a page read from disk can be checked before it is trusted.
 * ---------------------------------------------------------------------
 */
#define OMEN_PAGE_ID		0xE0A1	/* in every omen page's special space */

typedef struct OmenPageOpaqueData
{
	BlockNumber nextblkno;		/* access-method specific chaining */
	uint16		kind;			/* access-method specific page kind */
	uint16		page_id;		/* OMEN_PAGE_ID */
} OmenPageOpaqueData;

typedef OmenPageOpaqueData *OmenPageOpaque;

#define OmenPageGetOpaque(page) \
	((OmenPageOpaque) PageGetSpecialPointer(page))

/*
 * The tuple at off, or NULL when off is past the end or its line pointer
 * holds no tuple (VACUUM freed it).  Graph edges may point at such slots.
 */
static inline char *
OmenPageGetTuple(Page page, OffsetNumber off)
{
	ItemId		iid;

	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page))
		return NULL;
	iid = PageGetItemId(page, off);
	if (!ItemIdIsNormal(iid))
		return NULL;
	return (char *) PageGetItem(page, iid);
}

extern void OmenInitPage(Page page, uint16 kind);
extern void OmenCheckPage(Relation index, Buffer buf, Page page, uint16 kind);
extern void OmenReadMeta(Relation index, uint16 kind, void *meta, Size size,
						 uint32 magic, uint32 version, const char *amname);

/* Pin a block of the main fork (no lock), skipping the buffer-table probe when it can */
extern Buffer OmenReadBuffer(Relation index, BlockNumber blkno);

/* Ask for a block that is likely not in shared buffers to be read ahead */
extern void OmenPrefetchBlock(Relation index, BlockNumber blkno);
extern void OmenPrefetchTuple(Relation index, BlockNumber blkno,
							  OffsetNumber off);
extern Buffer OmenPrefetchHeap(Relation heap, ItemPointer tid);
extern void OmenPrefetchHeapTuple(Buffer hint, ItemPointer tid);

/* Add a new, exclusively locked buffer at the end of the fork */
extern Buffer OmenNewBuffer(Relation index, ForkNumber fork);

/*
 * A generic WAL record over up to MAX_GENERIC_XLOG_PAGES buffers.  Register
 * the buffers (exclusively locked), change the returned page images, finish.
 */
typedef struct OmenXLog
{
	GenericXLogState *state;
	int			nbufs;
} OmenXLog;

extern void OmenXLogStart(OmenXLog *x, Relation index);
extern Page OmenXLogRegister(OmenXLog *x, Buffer buf, bool newpage);
extern void OmenXLogFinish(OmenXLog *x);
extern void OmenXLogAbort(OmenXLog *x);

/* WAL-log every page of a freshly built fork at once, if it needs WAL */
extern void OmenLogBuiltFork(Relation index, ForkNumber fork);

/* The planner's cost of an index scan that reads about `visited` tuples */
struct PlannerInfo;
struct IndexPath;
extern void OmenGraphCostEstimate(struct PlannerInfo *root,
								  struct IndexPath *path, double loop_count,
								  double visited, Cost *indexStartupCost,
								  Cost *indexTotalCost,
								  Selectivity *indexSelectivity,
								  double *indexCorrelation,
								  double *indexPages);

/* A handler's IndexAmRoutine with the properties both methods share */
struct IndexAmRoutine;
extern struct IndexAmRoutine *OmenNewAmRoutine(void);

/* Whether a dynamic shared memory segment of this size fits (/dev/shm) */
extern bool OmenDsmHasRoom(Size size);

/* The cap on how many rows one index scan returns (omen.max_scan_tuples) */
extern int	omen_max_scan_tuples;

extern void OmenIndexDefineGucs(void);

#endif							/* OMEN_INDEX_H */

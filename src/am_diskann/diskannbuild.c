/*
 * diskannbuild.c
 *	  omen_diskann: CREATE INDEX.
 *
 * The heap is read into memory (full vectors and heap TIDs, within
 * maintenance_work_mem).  Then, as ALGORITHMS.md section 3 says: the
 * quantiser is trained on a sample, the entry point is the medoid (the
 * vector nearest the sample mean), every vector is inserted into the
 * graph in random order (beam search with build_list_size, RobustPrune
 * with alpha escalating from 1, backlinks pruned when a list overflows its
 * slack), and a final pass prunes every list longer than max_neighbors.
 * The graph is written page by page with no WAL and logged once.
 *
 * When the vectors no longer fit in maintenance_work_mem, the graph of the
 * ones read so far is built and written, and the remaining rows go through
 * the page insert path, with a NOTICE saying how much memory would have
 * been enough.
 */
#include "postgres.h"

#include <math.h>

#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "common/pg_prng.h"
#include "diskann.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* Progress phases (pg_stat_progress_create_index.phase) */
#define PROGRESS_DISKANN_PHASE_LOAD		2
#define PROGRESS_DISKANN_PHASE_TRAIN	3
#define PROGRESS_DISKANN_PHASE_GRAPH	4
#define PROGRESS_DISKANN_PHASE_WRITE	5

typedef struct DiskannBuildState
{
	Relation	heap;
	Relation	index;
	IndexInfo  *indexInfo;
	DiskannShared ds;			/* parameters (from the options) */
	double		indtuples;
	double		reltuples;		/* the planner's estimate, for the NOTICE */
	bool		ondisk;			/* memory ran out: inserting into pages */
	MemoryContext tmpCtx;		/* reset after each tuple or insert */
	MemoryContext graphCtx;		/* the arrays below */

	/* the in-memory graph */
	int			n;
	int			maxn;
	Size		limit;			/* maintenance_work_mem in bytes */
	float	   *vecs;			/* maxn x dim */
	ItemPointerData *heaptids;
	int32	   *nbrs;			/* maxn x cap */
	uint16	   *counts;
	LWLockPadded *locks;		/* parallel build: one per node */
	int			medoid;
	DiskannQuant *quant;

	/* search over the in-memory graph */
	OmenGraphSearch search;
	const float *query;
} DiskannBuildState;

static void InitBuildShared(DiskannShared *ds, Relation index);

static inline float *
BVec(DiskannBuildState *bs, int i)
{
	return &bs->vecs[(Size) i * bs->ds.dim];
}

static inline int32 *
BNbrs(DiskannBuildState *bs, int i)
{
	return &bs->nbrs[(Size) i * bs->ds.cap];
}

static Size
BytesPerNode(DiskannShared *ds)
{
	return sizeof(float) * ds->dim + sizeof(ItemPointerData) +
		sizeof(int32) * ds->cap + sizeof(uint16);
}

/*
 * Node locks: a parallel build guards each neighbour list with an LWLock
 * in shared memory.  A participant holds at most one at a time (it reads
 * other nodes' vectors, which never change, without a lock), so there is
 * no deadlock.  A serial build has no locks.
 */
static inline void
NodeLock(DiskannBuildState *bs, int i, LWLockMode mode)
{
	if (bs->locks)
		LWLockAcquire(&bs->locks[i].lock, mode);
}

static inline void
NodeUnlock(DiskannBuildState *bs, int i)
{
	if (bs->locks)
		LWLockRelease(&bs->locks[i].lock);
}

/* OmenGraphOps.visit over the in-memory graph: exact distances */
static void
MemVisit(void *arg, const uint64 *ids, int n, OmenVisit *out)
{
	DiskannBuildState *bs = (DiskannBuildState *) arg;

	for (int i = 0; i < n; i++)
		OmenPrefetch(BVec(bs, (int) ids[i]), sizeof(float) * bs->ds.dim);
	for (int i = 0; i < n; i++)
	{
		out[i].dist = OmenDistanceCalc(&bs->ds.dist, bs->query,
									   BVec(bs, (int) ids[i]));
		out[i].aux = 0;
		out[i].ok = true;
		out[i].isresult = true;
	}
}

static int
MemNeighbors(void *arg, uint64 id, uint32 aux, int layer, uint64 *out, int max)
{
	DiskannBuildState *bs = (DiskannBuildState *) arg;
	int32	   *nb = BNbrs(bs, (int) id);
	int			n;

	NodeLock(bs, (int) id, LW_SHARED);
	n = Min(bs->counts[id], max);
	for (int i = 0; i < n; i++)
		out[i] = (uint64) nb[i];
	NodeUnlock(bs, (int) id);
	return n;
}

static const OmenGraphOps diskann_mem_ops = {MemVisit, MemNeighbors};

/*
 * RobustPrune of candidate node indexes cand[0..n) (any order, may hold
 * p or duplicates) around node p; writes the chosen to out, returns the
 * count.
 */
static int
MemChoose(DiskannBuildState *bs, int p, const int32 *cand, int n, int maxdeg,
		  int32 *out)
{
	OmenCand   *c = palloc(sizeof(OmenCand) * Max(n, 1));
	float	  **vecs = palloc(sizeof(float *) * Max(n, 1));
	int		   *chosen = palloc(sizeof(int) * maxdeg);
	int			m = 0;
	int			nchosen;
	OmenVecPairArg pa;
	OmenVisited seen;

	OmenVisitedInit(&seen, n);
	for (int i = 0; i < n; i++)
	{
		if (cand[i] == p || OmenVisitedTestAndSet(&seen, (uint64) cand[i]))
			continue;
		c[m].id = cand[i];
		c[m].dist = OmenDistanceCalc(&bs->ds.dist, BVec(bs, p), BVec(bs, cand[i]));
		c[m].aux = 0;
		m++;
	}
	OmenVisitedFree(&seen);
	OmenSortCands(c, m);
	for (int i = 0; i < m; i++)
		vecs[i] = BVec(bs, (int) c[i].id);
	pa.dist = &bs->ds.dist;
	pa.vecs = vecs;
	nchosen = OmenRobustPrune(c, m, bs->ds.alpha, maxdeg, OmenVecPairDist,
							  &pa, chosen);
	for (int i = 0; i < nchosen; i++)
		out[i] = (int32) c[chosen[i]].id;
	pfree(c);
	pfree(vecs);
	pfree(chosen);
	return nchosen;
}

/* Add p to j's list; prune j when the list is full (under j's lock) */
static void
MemLinkBack(DiskannBuildState *bs, int j, int p)
{
	int32	   *nb = BNbrs(bs, j);
	int			cnt;
	int32	   *tmp;

	NodeLock(bs, j, LW_EXCLUSIVE);
	cnt = bs->counts[j];
	for (int i = 0; i < cnt; i++)
		if (nb[i] == p)
		{
			NodeUnlock(bs, j);
			return;
		}
	if (cnt < bs->ds.cap)
	{
		nb[cnt] = p;
		bs->counts[j] = cnt + 1;
		NodeUnlock(bs, j);
		return;
	}
	tmp = palloc(sizeof(int32) * (cnt + 1));
	memcpy(tmp, nb, sizeof(int32) * cnt);
	tmp[cnt] = p;
	bs->counts[j] = MemChoose(bs, j, tmp, cnt + 1, bs->ds.r, nb);
	NodeUnlock(bs, j);
	pfree(tmp);
}

/* Insert node p into the in-memory graph */
static void
MemInsert(DiskannBuildState *bs, int p)
{
	OmenGraphSearch *s = &bs->search;
	int32	   *cand;
	int32	   *chosen = palloc(sizeof(int32) * bs->ds.r);
	int			n;
	int			nchosen;

	bs->query = BVec(bs, p);
	OmenGraphSearchReset(s, bs->ds.l);
	OmenGraphSearchAddEntry(s, (uint64) bs->medoid);
	OmenGraphSearchRun(s, 0);

	/* the pool: every node expanded, plus the results not expanded */
	n = s->nexpanded + s->result.count;
	cand = palloc(sizeof(int32) * Max(n, 1));
	n = 0;
	for (int i = 0; i < s->nexpanded; i++)
		cand[n++] = (int32) (s->expanded[i].id & ~OMEN_CAND_FLAGS);
	for (int i = 0; i < s->result.count; i++)
		cand[n++] = (int32) (s->result.items[i].id & ~OMEN_CAND_FLAGS);
	nchosen = MemChoose(bs, p, cand, n, bs->ds.r, chosen);

	NodeLock(bs, p, LW_EXCLUSIVE);
	memcpy(BNbrs(bs, p), chosen, sizeof(int32) * nchosen);
	bs->counts[p] = nchosen;
	NodeUnlock(bs, p);

	for (int i = 0; i < nchosen; i++)
		MemLinkBack(bs, chosen[i], p);
	pfree(cand);
	pfree(chosen);
}

/* Prune p's list to max_neighbors if it is longer */
static void
MemFinalPrune(DiskannBuildState *bs, int p)
{
	int32	   *tmp;

	NodeLock(bs, p, LW_EXCLUSIVE);
	if (bs->counts[p] > bs->ds.r)
	{
		tmp = palloc(sizeof(int32) * bs->counts[p]);
		memcpy(tmp, BNbrs(bs, p), sizeof(int32) * bs->counts[p]);
		bs->counts[p] = MemChoose(bs, p, tmp, bs->counts[p], bs->ds.r, BNbrs(bs, p));
		pfree(tmp);
	}
	NodeUnlock(bs, p);
}

/*
 * One participant's share of a graph phase: take the next position from
 * the shared counter until none are left.  Phase 1 inserts order[pos];
 * phase 2 prunes node pos.  The leader reports progress.
 */
static void
RunPhase(DiskannBuildState *bs, pg_atomic_uint32 *next, int phase,
		 const int32 *order, bool progress)
{
	uint32		n = (uint32) bs->n;

	OmenGraphSearchInit(&bs->search, &diskann_mem_ops, bs, bs->ds.l,
						bs->ds.cap, false);
	bs->search.record_expanded = true;
	for (;;)
	{
		uint32		pos = pg_atomic_fetch_add_u32(next, 1);
		MemoryContext old;

		if (pos >= n)
			break;
		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(bs->tmpCtx);
		if (phase == 1)
			MemInsert(bs, order[pos]);
		else
			MemFinalPrune(bs, (int) pos);
		MemoryContextSwitchTo(old);
		MemoryContextReset(bs->tmpCtx);
		if (progress && phase == 1 && (pos & 255) == 0)
			pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, pos);
	}
	OmenGraphSearchFree(&bs->search);
}

/* The node nearest the mean of (a sample of) the vectors */
static int
FindMedoid(DiskannBuildState *bs)
{
	int			dim = bs->ds.dim;
	int			ns = Min(bs->n, DISKANN_TRAIN_SAMPLE);
	double	   *sum = palloc0(sizeof(double) * dim);
	float	   *mean = palloc(sizeof(float) * dim);
	int			best = 0;
	float		bestd = INFINITY;

	for (int i = 0; i < ns; i++)
	{
		float	   *v = BVec(bs, (int) ((int64) i * bs->n / ns));

		for (int j = 0; j < dim; j++)
			sum[j] += v[j];
	}
	for (int j = 0; j < dim; j++)
		mean[j] = (float) (sum[j] / ns);
	for (int i = 0; i < bs->n; i++)
	{
		float		d = OmenDistanceCalc(&bs->ds.dist, mean, BVec(bs, i));

		if (d < bestd)
		{
			bestd = d;
			best = i;
		}
	}
	pfree(sum);
	pfree(mean);
	return best;
}

/*
 * Parallel build state in dynamic shared memory: this header, then
 * order[n], the vectors, the lists, their counts and one lock per node.
 */
typedef struct DiskannParallelShared
{
	Oid			heaprelid;
	Oid			indexrelid;
	bool		isconcurrent;
	int			phase;			/* 1: insert, 2: final prune */
	int			n;
	int			dim;
	int			medoid;
	int			tranche;
	pg_atomic_uint32 next;
	Size		off_order;
	Size		off_vecs;
	Size		off_nbrs;
	Size		off_counts;
	Size		off_locks;
	Size		total;
} DiskannParallelShared;

#define PARALLEL_KEY_DISKANN_SHARED		UINT64CONST(0xA000000000000101)

/* Point a build state's graph arrays into the shared segment */
static void
AttachShared(DiskannBuildState *bs, DiskannParallelShared *sh)
{
	char	   *base = (char *) sh;

	bs->n = bs->maxn = sh->n;
	bs->vecs = (float *) (base + sh->off_vecs);
	bs->nbrs = (int32 *) (base + sh->off_nbrs);
	bs->counts = (uint16 *) (base + sh->off_counts);
	bs->locks = (LWLockPadded *) (base + sh->off_locks);
	bs->medoid = sh->medoid;
}

/* Entry point of a parallel build worker (named in CreateParallelContext) */
PGDLLEXPORT void DiskannParallelBuildMain(dsm_segment *seg, shm_toc *toc);

void
DiskannParallelBuildMain(dsm_segment *seg, shm_toc *toc)
{
	DiskannParallelShared *sh;
	Relation	heap;
	Relation	index;
	LOCKMODE	heapLockmode;
	LOCKMODE	indexLockmode;
	DiskannBuildState bs;

	sh = shm_toc_lookup(toc, PARALLEL_KEY_DISKANN_SHARED, false);

	/* the same lock modes as the leader holds (see index_build) */
	if (!sh->isconcurrent)
	{
		heapLockmode = ShareLock;
		indexLockmode = AccessExclusiveLock;
	}
	else
	{
		heapLockmode = ShareUpdateExclusiveLock;
		indexLockmode = RowExclusiveLock;
	}
	heap = table_open(sh->heaprelid, heapLockmode);
	index = index_open(sh->indexrelid, indexLockmode);
	LWLockRegisterTranche(sh->tranche, "omen_diskann_build");

	memset(&bs, 0, sizeof(bs));
	bs.heap = heap;
	bs.index = index;
	InitBuildShared(&bs.ds, index);
	bs.ds.dim = sh->dim;
	bs.ds.dist.dim = sh->dim;
	bs.tmpCtx = AllocSetContextCreate(CurrentMemoryContext,
									  "omen_diskann build worker",
									  ALLOCSET_DEFAULT_SIZES);
	AttachShared(&bs, sh);
	RunPhase(&bs, &sh->next, sh->phase,
			 (int32 *) ((char *) sh + sh->off_order), false);

	index_close(index, indexLockmode);
	table_close(heap, heapLockmode);
}

/*
 * Build the graph over the vectors in memory with parallel workers, if
 * PostgreSQL grants any and the shared segment fits.  The vectors move into
 * the segment (the local copy is freed).  Returns false, having changed
 * nothing, to build serially.
 */
static bool
BuildGraphParallel(DiskannBuildState *bs, int32 *order)
{
	int			request;
	Size		off = MAXALIGN(sizeof(DiskannParallelShared));
	DiskannParallelShared *sh;
	ParallelContext *pcxt;
	Size		total;
	Size		off_order,
				off_vecs,
				off_nbrs,
				off_counts,
				off_locks;
	int			n = bs->n;

	if (bs->indexInfo == NULL || n < 2)
		return false;
	request = plan_create_index_workers(RelationGetRelid(bs->heap),
										RelationGetRelid(bs->index));
	if (request <= 0)
		return false;

	off_order = off;
	off += MAXALIGN(sizeof(int32) * n);
	off_vecs = off;
	off += MAXALIGN(sizeof(float) * (Size) n * bs->ds.dim);
	off_nbrs = off;
	off += MAXALIGN(sizeof(int32) * (Size) n * bs->ds.cap);
	off_counts = off;
	off += MAXALIGN(sizeof(uint16) * (Size) n);
	off_locks = off;
	off += sizeof(LWLockPadded) * (Size) n;
	total = off;
	if (!OmenDsmHasRoom(total))
		return false;

	EnterParallelMode();
	pcxt = CreateParallelContext("omen", "DiskannParallelBuildMain", request);
	shm_toc_estimate_chunk(&pcxt->estimator, total);
	shm_toc_estimate_keys(&pcxt->estimator, 1);
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return false;
	}
	sh = shm_toc_allocate(pcxt->toc, total);
	memset(sh, 0, sizeof(DiskannParallelShared));
	sh->heaprelid = RelationGetRelid(bs->heap);
	sh->indexrelid = RelationGetRelid(bs->index);
	sh->isconcurrent = bs->indexInfo->ii_Concurrent;
	sh->n = n;
	sh->dim = bs->ds.dim;
	sh->medoid = bs->medoid;
	sh->tranche = LWLockNewTrancheId();
	sh->off_order = off_order;
	sh->off_vecs = off_vecs;
	sh->off_nbrs = off_nbrs;
	sh->off_counts = off_counts;
	sh->off_locks = off_locks;
	sh->total = total;
	LWLockRegisterTranche(sh->tranche, "omen_diskann_build");
	memcpy((char *) sh + off_order, order, sizeof(int32) * n);
	memcpy((char *) sh + off_vecs, bs->vecs, sizeof(float) * (Size) n * bs->ds.dim);
	memset((char *) sh + off_counts, 0, sizeof(uint16) * n);
	for (int i = 0; i < n; i++)
		LWLockInitialize(&((LWLockPadded *) ((char *) sh + off_locks))[i].lock,
						 sh->tranche);
	shm_toc_insert(pcxt->toc, PARALLEL_KEY_DISKANN_SHARED, sh);

	/* the local vectors and lists are not needed any more */
	pfree(bs->vecs);
	pfree(bs->nbrs);
	pfree(bs->counts);
	AttachShared(bs, sh);

	/* phase 1: every node but the medoid (order[0]) inserted */
	sh->phase = 1;
	pg_atomic_init_u32(&sh->next, 1);
	LaunchParallelWorkers(pcxt);
	RunPhase(bs, &sh->next, 1, order, true);
	WaitForParallelWorkersToFinish(pcxt);
	ereport(DEBUG1,
			(errmsg_plural("omen_diskann: built the graph with %d parallel worker",
						   "omen_diskann: built the graph with %d parallel workers",
						   pcxt->nworkers_launched, pcxt->nworkers_launched)));

	/* phase 2: the final prune */
	ReinitializeParallelDSM(pcxt);
	sh->phase = 2;
	pg_atomic_write_u32(&sh->next, 0);
	LaunchParallelWorkers(pcxt);
	RunPhase(bs, &sh->next, 2, order, false);
	WaitForParallelWorkersToFinish(pcxt);

	/* copy the graph back to local memory before the segment goes */
	bs->locks = NULL;
	{
		float	   *vecs = MemoryContextAllocExtended(bs->graphCtx,
													  sizeof(float) * (Size) n * bs->ds.dim,
													  MCXT_ALLOC_HUGE);
		int32	   *nbrs = MemoryContextAllocExtended(bs->graphCtx,
													  sizeof(int32) * (Size) n * bs->ds.cap,
													  MCXT_ALLOC_HUGE);
		uint16	   *counts = MemoryContextAllocExtended(bs->graphCtx,
														sizeof(uint16) * (Size) n,
														MCXT_ALLOC_HUGE);

		memcpy(vecs, bs->vecs, sizeof(float) * (Size) n * bs->ds.dim);
		memcpy(nbrs, bs->nbrs, sizeof(int32) * (Size) n * bs->ds.cap);
		memcpy(counts, bs->counts, sizeof(uint16) * (Size) n);
		bs->vecs = vecs;
		bs->nbrs = nbrs;
		bs->counts = counts;
	}
	DestroyParallelContext(pcxt);
	ExitParallelMode();
	return true;
}

/* Build the graph over the vectors in memory */
static void
BuildGraph(DiskannBuildState *bs)
{
	int			n = bs->n;
	int32	   *order;
	pg_atomic_uint32 next;

	if (n == 0)
		return;

	if (bs->ds.bits > 0 && n >= DISKANN_TRAIN_MIN)
	{
		pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE,
									 PROGRESS_DISKANN_PHASE_TRAIN);
		bs->quant = DiskannQuantTrain(bs->vecs, n, bs->ds.dim, bs->ds.bits,
									  bs->ds.dist.metric);
	}

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE,
								 PROGRESS_DISKANN_PHASE_GRAPH);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, n);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, 0);

	bs->medoid = FindMedoid(bs);
	memset(bs->counts, 0, sizeof(uint16) * n);

	/* a random order, the medoid first */
	order = palloc_extended(sizeof(int32) * n, MCXT_ALLOC_HUGE);
	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = n - 1; i > 0; i--)
	{
		int			k = (int) pg_prng_uint64_range(&pg_global_prng_state, 0, i);
		int32		t = order[i];

		order[i] = order[k];
		order[k] = t;
	}
	for (int i = 0; i < n; i++)
		if (order[i] == bs->medoid)
		{
			order[i] = order[0];
			order[0] = bs->medoid;
			break;
		}

	if (!BuildGraphParallel(bs, order))
	{
		pg_atomic_init_u32(&next, 1);
		RunPhase(bs, &next, 1, order, true);
		pg_atomic_init_u32(&next, 0);
		RunPhase(bs, &next, 2, order, false);
	}
	pfree(order);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, n);
}

/* Append a page built in local memory to the index */
static void
FlushPage(Relation index, Page page, BlockNumber expect)
{
	Buffer		buf = OmenNewBuffer(index, MAIN_FORKNUM);

	if (BufferGetBlockNumber(buf) != expect)
		elog(ERROR, "omen_diskann build wrote block %u, expected %u",
			 BufferGetBlockNumber(buf), expect);
	memcpy(BufferGetPage(buf), page, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/* Tuples of size sz that fit on one page */
static int
PerPage(Size sz)
{
	return (int) (DISKANN_PAGE_CAPACITY / (MAXALIGN(sz) + sizeof(ItemIdData)));
}

/*
 * Write the in-memory graph: quantiser pages, then node pages, then vector
 * pages (no WAL; the caller logs the fork), and fill in the meta page.
 */
static void
WriteGraph(DiskannBuildState *bs)
{
	DiskannShared *ds = &bs->ds;
	Relation	index = bs->index;
	int			n = bs->n;
	int			codebytes = DiskannCodeBytes(ds->dim, ds->bits, ds->dist.metric);
	Size		nodesize = DISKANN_NODE_SIZE(ds->cap, codebytes);
	Size		vecsize = DISKANN_VECTOR_SIZE(ds->dim);
	int			npp = PerPage(nodesize);
	int			vpp = PerPage(vecsize);
	BlockNumber quant_start = InvalidBlockNumber;
	uint32		quant_pages = 0;
	BlockNumber nodestart,
				vecstart,
				nnodepages,
				nvecpages;
	Page		page = palloc(BLCKSZ);
	DiskannNodeTuple ntup = palloc0(nodesize);
	DiskannVectorTuple vtup = palloc0(vecsize);
	Buffer		buf;
	DiskannMetaPage meta;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE,
								 PROGRESS_DISKANN_PHASE_WRITE);
	if (bs->quant)
		DiskannWriteQuant(index, bs->quant, &quant_start, &quant_pages, false);

	nodestart = RelationGetNumberOfBlocks(index);
	nnodepages = (n + npp - 1) / npp;
	vecstart = nodestart + nnodepages;
	nvecpages = ds->bits == 0 ? 0 : (n + vpp - 1) / vpp;

	for (BlockNumber p = 0; p < nnodepages; p++)
	{
		CHECK_FOR_INTERRUPTS();
		OmenInitPage(page, DISKANN_PAGE_NODE);
		for (int k = 0; k < npp; k++)
		{
			int			i = (int) p * npp + k;
			int32	   *nb;

			if (i >= n)
				break;
			memset(ntup, 0, nodesize);
			ntup->state = DISKANN_NODE_LIVE;
			ntup->heaptid = bs->heaptids[i];
			if (ds->bits == 0)
			{
				ItemPointerSetInvalid(&ntup->vectid);
				memcpy(DiskannNodeCode(ntup, ds->cap), BVec(bs, i),
					   sizeof(float) * ds->dim);
				ntup->flags = DISKANN_NODE_CODED;
			}
			else
			{
				ItemPointerSet(&ntup->vectid, vecstart + i / vpp, i % vpp + 1);
				if (bs->quant)
				{
					DiskannQuantEncode(bs->quant, BVec(bs, i),
									   DiskannNodeCode(ntup, ds->cap));
					ntup->flags = DISKANN_NODE_CODED;
				}
			}
			nb = BNbrs(bs, i);
			ntup->count = bs->counts[i];
			for (int e = 0; e < ds->cap; e++)
			{
				if (e < bs->counts[i])
					ItemPointerSet(&ntup->neighbors[e], nodestart + nb[e] / npp,
								   nb[e] % npp + 1);
				else
					ItemPointerSetInvalid(&ntup->neighbors[e]);
			}
			if (PageAddItem(page, (Item) ntup, nodesize, InvalidOffsetNumber,
							false, false) != k + 1)
				elog(ERROR, "omen_diskann build could not add a node tuple");
		}
		FlushPage(index, page, nodestart + p);
	}

	for (BlockNumber p = 0; p < nvecpages; p++)
	{
		CHECK_FOR_INTERRUPTS();
		OmenInitPage(page, DISKANN_PAGE_VECTOR);
		for (int k = 0; k < vpp; k++)
		{
			int			i = (int) p * vpp + k;

			if (i >= n)
				break;
			memset(vtup, 0, vecsize);
			vtup->heaptid = bs->heaptids[i];
			memcpy(vtup->data, BVec(bs, i), sizeof(float) * ds->dim);
			if (PageAddItem(page, (Item) vtup, vecsize, InvalidOffsetNumber,
							false, false) != k + 1)
				elog(ERROR, "omen_diskann build could not add a vector tuple");
		}
		FlushPage(index, page, vecstart + p);
	}

	/* the meta page (block 0) */
	buf = ReadBuffer(index, DISKANN_METAPAGE_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	meta = DiskannPageGetMeta(BufferGetPage(buf));
	meta->dim = ds->dim;
	meta->trained = bs->quant != NULL;
	meta->quant_start = quant_start;
	meta->quant_pages = quant_pages;
	meta->ncoarse = bs->quant ? bs->quant->ncoarse : 0;
	if (n > 0)
		ItemPointerSet(&meta->entry, nodestart + bs->medoid / npp,
					   bs->medoid % npp + 1);
	meta->node_insert = nnodepages > 0 ? nodestart + nnodepages - 1 : InvalidBlockNumber;
	meta->vector_insert = nvecpages > 0 ? vecstart + nvecpages - 1 : InvalidBlockNumber;
	meta->nodes = n;
	meta->deleted = 0;
	meta->uncoded = (bs->quant == NULL && ds->bits > 0) ? n : 0;
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);

	pfree(page);
	pfree(ntup);
	pfree(vtup);
}

/* Release the in-memory graph */
static void
FreeGraph(DiskannBuildState *bs)
{
	if (bs->vecs)
		pfree(bs->vecs);
	if (bs->heaptids)
		pfree(bs->heaptids);
	if (bs->nbrs)
		pfree(bs->nbrs);
	if (bs->counts)
		pfree(bs->counts);
	bs->vecs = NULL;
	bs->heaptids = NULL;
	bs->nbrs = NULL;
	bs->counts = NULL;
	bs->n = bs->maxn = 0;
}

/* Build, write and log the graph held in memory */
static void
FinishMemory(DiskannBuildState *bs)
{
	BuildGraph(bs);
	WriteGraph(bs);
	FreeGraph(bs);
}

/* Make room for one more vector in memory; false when memory is used up */
static bool
GrowArrays(DiskannBuildState *bs)
{
	Size		per = BytesPerNode(&bs->ds);
	Size		maxfit = bs->limit / per;
	int			newmax;

	if ((Size) bs->maxn >= maxfit || bs->maxn >= INT_MAX / 2)
		return false;
	if (bs->maxn == 0)
		newmax = (int) Min((Size) Max(bs->reltuples * 1.05 + 16, 1024.0), maxfit);
	else
		newmax = (int) Min((Size) bs->maxn * 2, maxfit);
	if (newmax <= bs->n)
		return false;

#define GROW(ptr, type, width) \
	ptr = ptr ? repalloc_huge(ptr, sizeof(type) * (Size) (width) * newmax) \
		: MemoryContextAllocExtended(bs->graphCtx, \
									 sizeof(type) * (Size) (width) * newmax, \
									 MCXT_ALLOC_HUGE)
	GROW(bs->vecs, float, bs->ds.dim);
	GROW(bs->heaptids, ItemPointerData, 1);
	GROW(bs->nbrs, int32, bs->ds.cap);
	GROW(bs->counts, uint16, 1);
#undef GROW
	bs->maxn = newmax;
	return true;
}

/* Memory ran out: build and write what is in memory, go on with inserts */
static void
SwitchToDisk(DiskannBuildState *bs)
{
	double		need = (double) BytesPerNode(&bs->ds) *
		Max(bs->reltuples, bs->indtuples * 2) / (1024.0 * 1024.0);

	ereport(NOTICE,
			(errmsg("omen_diskann vectors no longer fit into maintenance_work_mem after %.0f tuples",
					bs->indtuples),
			 errdetail("Building will take longer: the remaining tuples are inserted into the index pages one by one."),
			 errhint("Increase maintenance_work_mem to about %.0f MB to build this index in memory.",
					 ceil(need * 1.1) + 1)));

	FinishMemory(bs);
	OmenLogBuiltFork(bs->index, MAIN_FORKNUM);
	bs->ondisk = true;
	DiskannInitShared(&bs->ds, bs->index);
}

/* Called for each heap tuple by the table scan */
static void
BuildCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			  bool tupleIsAlive, void *state)
{
	DiskannBuildState *bs = (DiskannBuildState *) state;
	DiskannShared *ds = &bs->ds;
	MemoryContext old;
	Vector	   *v;
	float	   *vec;

	if (isnull[0])
		return;

	old = MemoryContextSwitchTo(bs->tmpCtx);
	v = DatumGetVector(values[0]);

	/* a column without typmod: the first vector fixes the length */
	if (ds->dim == 0)
	{
		DiskannCheckDim(index, v->dim, ds->bits, ds->cap, ds->dist.metric);
		ds->dim = v->dim;
		ds->dist.dim = v->dim;
	}

	vec = palloc(sizeof(float) * ds->dim);
	if (OmenPrepareVector(&ds->dist, v, vec))
	{
		if (!bs->ondisk && bs->n == bs->maxn && !GrowArrays(bs))
		{
			MemoryContextSwitchTo(old);
			SwitchToDisk(bs);
			MemoryContextSwitchTo(bs->tmpCtx);
		}
		if (bs->ondisk)
			DiskannInsertVector(ds, vec, tid);
		else
		{
			memcpy(BVec(bs, bs->n), vec, sizeof(float) * ds->dim);
			bs->heaptids[bs->n] = *tid;
			bs->n++;
		}
		bs->indtuples++;
		if (((int64) bs->indtuples & 1023) == 0)
			pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE,
										 (int64) bs->indtuples);
	}

	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpCtx);
}

/* The parameters of a new index, from its options */
static void
InitBuildShared(DiskannShared *ds, Relation index)
{
	DiskannOptions *opts = DiskannGetOptions(index);

	memset(ds, 0, sizeof(*ds));
	ds->index = index;
	OmenDistanceInit(&ds->dist, index);
	ds->r = opts ? opts->max_neighbors : DISKANN_DEFAULT_MAX_NEIGHBORS;
	ds->l = opts ? opts->build_list_size : DISKANN_DEFAULT_BUILD_LIST;
	ds->alpha = opts ? (float) opts->alpha : DISKANN_DEFAULT_ALPHA;
	ds->bits = opts ? opts->quantization_bits : DISKANN_DEFAULT_BITS;
	ds->cap = DiskannCapacity(ds->r);
	ds->dim = Max(ds->dist.dim, 0);
	ds->dist.dim = ds->dim;
	ItemPointerSetInvalid(&ds->entry);

	if (ds->bits != 0 && ds->bits != 1 && ds->bits != 2 && ds->bits != 4)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantization_bits must be 0, 1, 2 or 4"),
				 errdetail("It is %d.", ds->bits)));
	if (ds->l < ds->r)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("build_list_size must be at least max_neighbors"),
				 errdetail("build_list_size is %d and max_neighbors is %d.",
						   ds->l, ds->r)));
	if (ds->dim > 0)
		DiskannCheckDim(index, ds->dim, ds->bits, ds->cap, ds->dist.metric);
}

/* Write an empty meta page as block 0 of a fork */
static void
WriteEmptyMeta(Relation index, ForkNumber fork, DiskannShared *ds)
{
	Buffer		buf = OmenNewBuffer(index, fork);

	Assert(BufferGetBlockNumber(buf) == DISKANN_METAPAGE_BLKNO);
	DiskannInitMetaPage(BufferGetPage(buf), ds);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/* ambuild */
IndexBuildResult *
diskannbuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	IndexBuildResult *result;
	DiskannBuildState bs;
	BlockNumber pages;
	double		allvisfrac;
	double		heaptuples;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data",
			 RelationGetRelationName(index));

	memset(&bs, 0, sizeof(bs));
	bs.heap = heap;
	bs.index = index;
	bs.indexInfo = indexInfo;
	InitBuildShared(&bs.ds, index);
	bs.limit = (Size) maintenance_work_mem * 1024;
	bs.tmpCtx = AllocSetContextCreate(CurrentMemoryContext,
									  "omen_diskann build tuple",
									  ALLOCSET_DEFAULT_SIZES);
	bs.graphCtx = CurrentMemoryContext;
	table_relation_estimate_size(heap, NULL, &pages, &bs.reltuples, &allvisfrac);

	WriteEmptyMeta(index, MAIN_FORKNUM, &bs.ds);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE,
								 PROGRESS_DISKANN_PHASE_LOAD);
	heaptuples = table_index_build_scan(heap, index, indexInfo, true, true,
										BuildCallback, &bs, NULL);
	if (!bs.ondisk)
	{
		FinishMemory(&bs);
		OmenLogBuiltFork(index, MAIN_FORKNUM);
	}

	MemoryContextDelete(bs.tmpCtx);
	result = (IndexBuildResult *) palloc(sizeof(IndexBuildResult));
	result->heap_tuples = heaptuples;
	result->index_tuples = bs.indtuples;
	return result;
}

/* ambuildempty: the init fork of an unlogged index is an empty meta page */
void
diskannbuildempty(Relation index)
{
	DiskannShared ds;

	InitBuildShared(&ds, index);
	WriteEmptyMeta(index, INIT_FORKNUM, &ds);
	OmenLogBuiltFork(index, INIT_FORKNUM);
}

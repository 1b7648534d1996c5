/*
 * ob_gt.c
 *	  omen-bench exact ground truth, its on-disk cache, and recall.
 *
 * Ground truth is the exact top-depth (100) neighbours of every query,
 * computed with omen's own distance kernels (src/simd/, compiled into the
 * tool, picked by CPU like in the server), so it orders rows as the server's
 * exact scan does.  Distances are kept as ordering keys: squared L2 for <->,
 * the negative inner product for <#>, 1 - cos for <=> (computed as the
 * server computes it; NaN, for an all-zero vector, sorts last).  Equal
 * distances are ordered by id.
 *
 * The work is split by query over threads.  Each thread walks the rows in
 * blocks that fit in cache and, for each of its queries, keeps a max-heap of
 * the best depth rows so far: a row further than the heap's worst costs one
 * comparison.  1,000,000 x 128 rows against 1,000 queries take on the order
 * of ten seconds on two cores.
 *
 * Cache files (one per dataset, metric and depth) start with a text header
 *	  omen-bench ground truth 1
 *	  key <dataset description> metric=<m> depth=<d>
 *	  base <hash of the base vectors>
 *	  dim <d> nq <n> depth <d>
 *	  data
 * followed by one hash per query vector, then the ids and the distances.
 * A file is used only if its key and base hash match and its first nq query
 * hashes equal those of the queries asked for (so a file made for 1,000
 * queries serves a run with 200); otherwise the ground truth is computed
 * again and the file replaced.
 */
#include "ob.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GT_MAGIC "omen-bench ground truth 1"

typedef struct HeapItem
{
	float		d;
	int64_t		id;
} HeapItem;

/* Whether a is a worse neighbour than b (further, or as far with a larger id) */
static inline bool
Worse(float ad, int64_t aid, float bd, int64_t bid)
{
	return ad > bd || (ad == bd && aid > bid);
}

/* Replace the root of a full max-heap and sift it down */
static void
HeapReplaceTop(HeapItem *h, int n, float d, int64_t id)
{
	int			i = 0;

	for (;;)
	{
		int			l = 2 * i + 1;
		int			r = l + 1;
		int			m = i;
		float		md = d;
		int64_t		mid = id;

		if (l < n && Worse(h[l].d, h[l].id, md, mid))
		{
			m = l;
			md = h[l].d;
			mid = h[l].id;
		}
		if (r < n && Worse(h[r].d, h[r].id, md, mid))
			m = r;
		if (m == i)
			break;
		h[i] = h[m];
		i = m;
	}
	h[i].d = d;
	h[i].id = id;
}

/* Append to a max-heap that is not full and sift up */
static void
HeapPush(HeapItem *h, int n, float d, int64_t id)
{
	int			i = n;

	while (i > 0)
	{
		int			p = (i - 1) / 2;

		if (!Worse(d, id, h[p].d, h[p].id))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i].d = d;
	h[i].id = id;
}

/* qsort order of heap items: nearest first, then by id */
static int
CompareItems(const void *a, const void *b)
{
	const HeapItem *x = a;
	const HeapItem *y = b;

	if (Worse(x->d, x->id, y->d, y->id))
		return 1;
	if (Worse(y->d, y->id, x->d, x->id))
		return -1;
	return 0;
}

/*
 * The distance between a and b as an ordering key (see the file header):
 * what the server's operator returns, up to a monotonic function.
 */
float
ob_distance(ObMetric m, const float *a, const float *b, int dim)
{
	float		ab,
				aa,
				bb;
	double		sim;

	switch (m)
	{
		case OB_L2:
			return omen_kernels->l2sq(a, b, dim);
		case OB_IP:
			return -omen_kernels->ip(a, b, dim);
		case OB_COSINE:
			omen_kernels->cosine_parts(a, b, dim, &ab, &aa, &bb);
			if (aa == 0.0f || bb == 0.0f)
				return NAN;
			sim = (double) ab / sqrt((double) aa * (double) bb);
			if (sim > 1.0)
				sim = 1.0;
			else if (sim < -1.0)
				sim = -1.0;
			return (float) (1.0 - sim);
	}
	return NAN;
}

typedef struct GtShared
{
	ObMetric	metric;
	int			dim;
	const float *vecs;
	const int64_t *ids;
	const uint32_t *rows;
	size_t		nrows;
	const float *queries;
	int			depth;
	size_t		block;			/* rows per cache block */
	size_t		done;			/* query x row pairs done (atomic) */
	int			finished;		/* threads done (atomic) */
} GtShared;

typedef struct GtJob
{
	GtShared   *sh;
	size_t		q0,
				q1;
	HeapItem   *heaps;			/* (q1 - q0) * depth */
	int		   *sizes;
} GtJob;

/* One thread: exact top-depth for queries [q0, q1) */
static void *
GtThread(void *arg)
{
	GtJob	   *job = arg;
	GtShared   *sh = job->sh;
	size_t		nq = job->q1 - job->q0;
	size_t		b0;
	OmenDistanceFn l2sq = omen_kernels->l2sq;
	OmenDistanceFn ip = omen_kernels->ip;

	for (b0 = 0; b0 < sh->nrows; b0 += sh->block)
	{
		size_t		b1 = b0 + sh->block < sh->nrows ? b0 + sh->block : sh->nrows;
		size_t		qi;

		for (qi = 0; qi < nq; qi++)
		{
			const float *q = sh->queries + (job->q0 + qi) * (size_t) sh->dim;
			HeapItem   *h = job->heaps + qi * (size_t) sh->depth;
			int			hn = job->sizes[qi];
			float		worst = hn == sh->depth ? h[0].d : INFINITY;
			size_t		r;

			for (r = b0; r < b1; r++)
			{
				size_t		row = sh->rows ? sh->rows[r] : r;
				const float *x = sh->vecs + row * (size_t) sh->dim;
				int64_t		id;
				float		d;

				if (sh->metric == OB_L2)
					d = l2sq(q, x, sh->dim);
				else if (sh->metric == OB_IP)
					d = -ip(q, x, sh->dim);
				else
				{
					d = ob_distance(OB_COSINE, q, x, sh->dim);
					if (isnan(d))
						d = INFINITY;
				}
				if (d > worst)
					continue;
				id = sh->ids ? sh->ids[row] : (int64_t) row;
				if (hn < sh->depth)
				{
					HeapPush(h, hn++, d, id);
					if (hn == sh->depth)
						worst = h[0].d;
				}
				else if (Worse(h[0].d, h[0].id, d, id))
				{
					HeapReplaceTop(h, hn, d, id);
					worst = h[0].d;
				}
			}
			job->sizes[qi] = hn;
		}
		__atomic_add_fetch(&sh->done, nq * (b1 - b0), __ATOMIC_RELAXED);
	}
	__atomic_add_fetch(&sh->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Exact top-depth neighbours of nq queries among rows of vecs: the rows
 * listed in rows[0..nrows) (or, with rows NULL, rows 0..nrows-1), whose ids
 * are ids[row] (or row itself with ids NULL).  Queries with fewer than depth
 * rows to choose from are padded with id -1 and an infinite distance.
 */
void
ob_gt_compute(ObGroundTruth *gt, ObMetric m, int dim,
			  const float *vecs, const int64_t *ids,
			  const uint32_t *rows, size_t nrows,
			  const float *queries, size_t nq, int depth,
			  int nthreads, bool show_progress)
{
	GtShared	sh;
	GtJob	   *jobs;
	pthread_t  *th;
	size_t		per,
				q;
	int			t;
	double		t0 = ob_now();
	double		total = (double) nq * (double) nrows;

	memset(&sh, 0, sizeof(sh));
	sh.metric = m;
	sh.dim = dim;
	sh.vecs = vecs;
	sh.ids = ids;
	sh.rows = rows;
	sh.nrows = nrows;
	sh.queries = queries;
	sh.depth = depth;
	/* about 512 kB of rows per block */
	sh.block = (512 * 1024) / (sizeof(float) * (size_t) dim);
	if (sh.block < 16)
		sh.block = 16;

	if (nthreads < 1)
		nthreads = 1;
	if ((size_t) nthreads > nq)
		nthreads = nq > 0 ? (int) nq : 1;
	jobs = ob_calloc(nthreads, sizeof(GtJob));
	th = ob_malloc(sizeof(pthread_t) * nthreads);
	per = (nq + nthreads - 1) / nthreads;
	for (t = 0; t < nthreads; t++)
	{
		jobs[t].sh = &sh;
		jobs[t].q0 = per * t < nq ? per * t : nq;
		jobs[t].q1 = jobs[t].q0 + per < nq ? jobs[t].q0 + per : nq;
		jobs[t].heaps = ob_malloc(sizeof(HeapItem) * (jobs[t].q1 - jobs[t].q0) * depth + 1);
		jobs[t].sizes = ob_calloc(jobs[t].q1 - jobs[t].q0 + 1, sizeof(int));
		if (pthread_create(&th[t], NULL, GtThread, &jobs[t]) != 0)
			ob_die("cannot start a thread");
	}
	while (show_progress &&
		   __atomic_load_n(&sh.finished, __ATOMIC_ACQUIRE) < nthreads)
	{
		double		done = (double) __atomic_load_n(&sh.done, __ATOMIC_RELAXED);
		double		el = ob_now() - t0;

		if (done > 0)
			ob_progress("ground truth: %.0f%% of %zu queries x %zu rows, %.0f s left",
						100.0 * done / total, nq, nrows, el * (total - done) / done);
		usleep(50 * 1000);
	}
	for (t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	if (show_progress)
		ob_progress_done();

	gt->depth = depth;
	gt->nq = nq;
	gt->ids = ob_malloc(sizeof(int64_t) * nq * depth + 1);
	gt->dist = ob_malloc(sizeof(float) * nq * depth + 1);
	for (t = 0; t < nthreads; t++)
	{
		for (q = jobs[t].q0; q < jobs[t].q1; q++)
		{
			HeapItem   *h = jobs[t].heaps + (q - jobs[t].q0) * depth;
			int			hn = jobs[t].sizes[q - jobs[t].q0];
			int			i;

			qsort(h, hn, sizeof(HeapItem), CompareItems);
			for (i = 0; i < depth; i++)
			{
				gt->ids[q * depth + i] = i < hn ? h[i].id : -1;
				gt->dist[q * depth + i] = i < hn ? h[i].d : INFINITY;
			}
		}
		free(jobs[t].heaps);
		free(jobs[t].sizes);
	}
	free(jobs);
	free(th);
}

/* Free what ob_gt_compute or ob_gt_cache_load allocated */
void
ob_gt_free(ObGroundTruth *gt)
{
	free(gt->ids);
	free(gt->dist);
	gt->ids = NULL;
	gt->dist = NULL;
}

/* The cache file of a key: DIR/gt-<hash>.bin */
static char *
CachePath(const char *dir, const char *key, uint64_t base_hash)
{
	uint64_t	h = ob_hash_bytes(0, key, strlen(key));

	h = ob_hash_bytes(h, &base_hash, sizeof(base_hash));
	return ob_psprintf("%s/gt-%016llx.bin", dir, (unsigned long long) h);
}

/*
 * Load cached ground truth for the first nq queries.  Returns 1 if a valid
 * file was found (gt filled, *path_out names it), 0 if there is none or it
 * does not match (see the file header).
 */
int
ob_gt_cache_load(ObGroundTruth *gt, const char *dir, const char *key,
				 uint64_t base_hash, const float *queries, size_t nq,
				 int dim, int depth, char **path_out)
{
	char	   *path = CachePath(dir, key, base_hash);
	FILE	   *f = fopen(path, "rb");
	char		line[4096];
	char	   *want;
	unsigned long long fhash;
	int			fdim,
				fdepth;
	size_t		fnq,
				q;
	uint64_t   *qh = NULL;
	int			ok = 0;

	*path_out = path;
	if (f == NULL)
		return 0;
	want = ob_psprintf("key %s\n", key);
	if (!fgets(line, sizeof(line), f) || strncmp(line, GT_MAGIC "\n", sizeof(GT_MAGIC)) != 0)
		goto out;
	if (!fgets(line, sizeof(line), f) || strcmp(line, want) != 0)
		goto out;
	if (!fgets(line, sizeof(line), f) || sscanf(line, "base %llx", &fhash) != 1 ||
		fhash != base_hash)
		goto out;
	if (!fgets(line, sizeof(line), f) ||
		sscanf(line, "dim %d nq %zu depth %d", &fdim, &fnq, &fdepth) != 3 ||
		fdim != dim || fdepth != depth || fnq < nq)
		goto out;
	if (!fgets(line, sizeof(line), f) || strcmp(line, "data\n") != 0)
		goto out;
	qh = ob_malloc(sizeof(uint64_t) * fnq + 1);
	if (fread(qh, sizeof(uint64_t), fnq, f) != fnq)
		goto out;
	for (q = 0; q < nq; q++)
		if (qh[q] != ob_hash_floats(queries + q * (size_t) dim, dim))
			goto out;
	gt->depth = depth;
	gt->nq = nq;
	gt->ids = ob_malloc(sizeof(int64_t) * nq * depth + 1);
	gt->dist = ob_malloc(sizeof(float) * nq * depth + 1);
	if (fread(gt->ids, sizeof(int64_t), nq * depth, f) != nq * depth ||
		fseek(f, (long) (sizeof(int64_t) * (fnq - nq) * depth), SEEK_CUR) != 0 ||
		fread(gt->dist, sizeof(float), nq * depth, f) != nq * depth)
	{
		ob_gt_free(gt);
		goto out;
	}
	ok = 1;
out:
	free(want);
	free(qh);
	fclose(f);
	return ok;
}

/*
 * Write ground truth to the cache (atomically: a temporary file renamed into
 * place).  Returns 0, or -1 with errno set (the caller warns and goes on).
 */
int
ob_gt_cache_save(const ObGroundTruth *gt, const char *dir, const char *key,
				 uint64_t base_hash, const float *queries, int dim,
				 char **path_out)
{
	char	   *path = CachePath(dir, key, base_hash);
	char	   *tmp = ob_psprintf("%s.tmp.%d", path, (int) getpid());
	FILE	   *f;
	size_t		q,
				n = gt->nq * gt->depth;
	int			err;

	*path_out = path;
	if (ob_mkdir_p(dir) < 0)
		return -1;
	f = fopen(tmp, "wb");
	if (f == NULL)
		return -1;
	fprintf(f, "%s\nkey %s\nbase %016llx\ndim %d nq %zu depth %d\ndata\n",
			GT_MAGIC, key, (unsigned long long) base_hash, dim, gt->nq, gt->depth);
	for (q = 0; q < gt->nq; q++)
	{
		uint64_t	h = ob_hash_floats(queries + q * (size_t) dim, dim);

		fwrite(&h, sizeof(h), 1, f);
	}
	fwrite(gt->ids, sizeof(int64_t), n, f);
	fwrite(gt->dist, sizeof(float), n, f);
	if (ferror(f) | (fclose(f) != 0))
	{
		err = errno;
		unlink(tmp);
		free(tmp);
		errno = err;
		return -1;
	}
	if (rename(tmp, path) < 0)
	{
		err = errno;
		unlink(tmp);
		free(tmp);
		errno = err;
		return -1;
	}
	free(tmp);
	return 0;
}

/*
 * Recall@k of one query: the share of the k true nearest neighbours found
 * among the first k returned rows.
 *
 * ret[0..nret) are the returned ids, ret_dist their true distances (the
 * same ordering keys as the ground truth; NULL or NaN when unknown),
 * gt_ids/gt_dist the ground truth, nearest first.  A returned id counts if
 * it is one of the true top k, or if its true distance is no more than the
 * k-th true distance plus a tolerance of OB_RECALL_EPS relative (and 1e-7
 * absolute): when several rows tie at the k-th distance, any of them is a
 * correct answer, and float rounding in a different order of summation must
 * not turn a tie into a miss.  An id returned twice counts once, and rows
 * beyond the k-th are ignored, so the result is in [0, 1].
 */
double
ob_recall_one(const int64_t *ret, int nret, const float *ret_dist,
			  const int64_t *gt_ids, const float *gt_dist, int k)
{
	float		kth = gt_dist[k - 1];
	double		limit = (double) kth + OB_RECALL_EPS * fabs((double) kth) + 1e-7;
	int			correct = 0;
	int			i,
				j;

	if (nret > k)
		nret = k;
	for (i = 0; i < nret; i++)
	{
		bool		dup = false;
		bool		hit = false;

		for (j = 0; j < i; j++)
			if (ret[j] == ret[i])
				dup = true;
		if (dup)
			continue;
		for (j = 0; j < k; j++)
			if (gt_ids[j] == ret[i])
				hit = true;
		if (!hit && ret_dist && !isnan(ret_dist[i]) && (double) ret_dist[i] <= limit)
			hit = true;
		if (hit)
			correct++;
	}
	return (double) correct / k;
}

/* id/row pairs sorted by id */
typedef struct IdRow
{
	int64_t		id;
	uint32_t	row;
} IdRow;

/* qsort order of id/row pairs: by id */
static int
CompareIdRow(const void *a, const void *b)
{
	const IdRow *x = a;
	const IdRow *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* Build an id -> row map; ids NULL means row i has id i */
void
ob_idmap_build(ObIdMap *map, const int64_t *ids, size_t n)
{
	IdRow	   *pairs;
	size_t		i;

	memset(map, 0, sizeof(*map));
	map->n = n;
	if (ids == NULL)
	{
		map->identity = true;
		return;
	}
	pairs = ob_malloc(sizeof(IdRow) * n + 1);
	for (i = 0; i < n; i++)
	{
		pairs[i].id = ids[i];
		pairs[i].row = (uint32_t) i;
	}
	qsort(pairs, n, sizeof(IdRow), CompareIdRow);
	map->ids = ob_malloc(sizeof(int64_t) * n + 1);
	map->rows = ob_malloc(sizeof(uint32_t) * n + 1);
	for (i = 0; i < n; i++)
	{
		map->ids[i] = pairs[i].id;
		map->rows[i] = pairs[i].row;
	}
	free(pairs);
}

/* The row of an id, or -1 */
long
ob_idmap_find(const ObIdMap *map, int64_t id)
{
	size_t		lo = 0,
				hi = map->n;

	if (map->identity)
		return id >= 0 && (uint64_t) id < map->n ? (long) id : -1;
	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (map->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < map->n && map->ids[lo] == id)
		return (long) map->rows[lo];
	return -1;
}

/* Free an id map */
void
ob_idmap_free(ObIdMap *map)
{
	free(map->ids);
	free(map->rows);
	map->ids = NULL;
	map->rows = NULL;
}

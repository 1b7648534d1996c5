/*
 * test_units.c
 *	  TAP unit tests of omen-bench's exact parts, no server needed:
 *
 *	  - the IDX reader (bench/idx.c) on small hand-made files, plain and
 *		gzipped, including truncated files, a bad magic number, an unknown
 *		type code, and big-endian multi-byte types;
 *	  - ground truth (bench/ob_gt.c) against a naive brute force (every
 *		distance, then a full sort) on small random sets, for each metric,
 *		with duplicate rows (ties), odd dimensions, row subsets, non-dense
 *		ids, several thread counts, and fewer rows than the depth;
 *	  - the ground truth cache: round trip, prefix use, stale files refused;
 *	  - recall arithmetic on hand-computed cases, ties included;
 *	  - the synthetic generator: same seed, same data (whatever the thread
 *		count and generation order), other seed, other data;
 *	  - dataset specs, vector text, JSON lines, latency percentiles.
 *
 * Built by test/bench/Makefile against bench/libomenbench.a and run by prove
 * through t/01_units.t.  Run from a scratch directory (the first argument,
 * default ".") where it writes its files.
 */
#include "ob.h"
#include "idx.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static int	test_number = 0;
static int	failures = 0;
static const char *scratch = ".";

/* Report one test */
static int
ok(int passed, const char *fmt,...)
{
	va_list		ap;

	test_number++;
	printf("%sok %d - ", passed ? "" : "not ", test_number);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!passed)
		failures++;
	fflush(stdout);
	return passed;
}

/* A diagnostic line (prove shows these for failures) */
static void
diag(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "# ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

/* Path of a scratch file */
static char *
Scratch(const char *name)
{
	return ob_psprintf("%s/%s", scratch, name);
}

/* Write bytes to a file, plain or gzipped */
static void
WriteFile(const char *path, const unsigned char *data, size_t len, bool gz)
{
	if (gz)
	{
		gzFile		f = gzopen(path, "wb");

		gzwrite(f, data, (unsigned) len);
		gzclose(f);
	}
	else
	{
		FILE	   *f = fopen(path, "wb");

		fwrite(data, 1, len, f);
		fclose(f);
	}
}

/* An IDX header: magic 0 0 type ndims, then the dimensions big-endian */
static size_t
IdxHeader(unsigned char *p, int type, int ndims, const uint32_t *dims)
{
	int			i;

	p[0] = 0;
	p[1] = 0;
	p[2] = (unsigned char) type;
	p[3] = (unsigned char) ndims;
	for (i = 0; i < ndims; i++)
	{
		p[4 + 4 * i] = (unsigned char) (dims[i] >> 24);
		p[5 + 4 * i] = (unsigned char) (dims[i] >> 16);
		p[6 + 4 * i] = (unsigned char) (dims[i] >> 8);
		p[7 + 4 * i] = (unsigned char) dims[i];
	}
	return 4 + 4 * (size_t) ndims;
}

/* The IDX reader on hand-made files */
static void
TestIdx(void)
{
	unsigned char buf[4096];
	const uint32_t dims[3] = {3, 2, 2};
	size_t		h = IdxHeader(buf, IDX_UINT8, 3, dims);
	size_t		len;
	int			gz;
	IdxFile		idx;
	float		v[12];
	char	   *path;
	int			i;

	for (i = 0; i < 12; i++)
		buf[h + i] = (unsigned char) (i * 20 + 5);	/* 5, 25, ..., 225 */
	len = h + 12;

	for (gz = 0; gz <= 1; gz++)
	{
		const char *kind = gz ? "gzipped" : "plain";
		bool		same = true;

		path = Scratch(gz ? "u8.idx.gz" : "u8.idx");
		WriteFile(path, buf, len, gz);
		ok(idx_open(&idx, path) == 0, "idx: %s uint8 file opens", kind);
		ok(idx.count == 3 && idx.item_len == 4 && idx.ndims == 3 && idx.type == IDX_UINT8,
		   "idx: %s header: 3 items of 2x2 uint8 (got %zu of %zu)", kind, idx.count, idx.item_len);
		ok(idx_expect(&idx, IDX_UINT8, 3, (const uint32_t[]) {0, 2, 2}) == 0,
		   "idx: %s idx_expect accepts {0, 2, 2}", kind);
		ok(idx_expect(&idx, IDX_UINT8, 3, (const uint32_t[]) {0, 28, 28}) < 0 &&
		   strstr(idx.err, "dimension 1 is 2, expected 28") != NULL,
		   "idx: %s idx_expect refuses 28x28 with a message (%s)", kind, idx.err);
		ok(idx_skip(&idx, 1) == 1, "idx: %s skip one item", kind);
		ok(idx_read_float(&idx, v, 10) == 2, "idx: %s read returns the 2 items left", kind);
		for (i = 0; i < 8; i++)
			if (v[i] != (float) ((i + 4) * 20 + 5))
				same = false;
		ok(same, "idx: %s values after the skip are 85, 105, ... 225", kind);
		ok(idx_read_float(&idx, v, 1) == 0, "idx: %s read at the end returns 0", kind);
		idx_close(&idx);
		free(path);
	}

	/* raw read and float32 big-endian */
	{
		const uint32_t fd[2] = {2, 3};
		float		want[6] = {1.5f, -2.25f, 1e-3f, 3e7f, 0.0f, -0.0f};
		bool		same = true;

		h = IdxHeader(buf, IDX_FLOAT32, 2, fd);
		for (i = 0; i < 6; i++)
		{
			uint32_t	u;

			memcpy(&u, &want[i], 4);
			buf[h + 4 * i] = (unsigned char) (u >> 24);
			buf[h + 4 * i + 1] = (unsigned char) (u >> 16);
			buf[h + 4 * i + 2] = (unsigned char) (u >> 8);
			buf[h + 4 * i + 3] = (unsigned char) u;
		}
		path = Scratch("f32.idx");
		WriteFile(path, buf, h + 24, false);
		ok(idx_open(&idx, path) == 0 && idx_read_float(&idx, v, 2) == 2,
		   "idx: big-endian float32 file reads");
		for (i = 0; i < 6; i++)
			if (memcmp(&v[i], &want[i], 4) != 0)
				same = false;
		ok(same, "idx: float32 values are bit-exact (1.5, -2.25, 1e-3, 3e7, 0, -0)");
		idx_close(&idx);
		free(path);
	}
	{
		const uint32_t sd[1] = {3};
		int16_t		want[3] = {-300, 7, 32000};
		bool		same = true;

		h = IdxHeader(buf, IDX_INT16, 1, sd);
		for (i = 0; i < 3; i++)
		{
			buf[h + 2 * i] = (unsigned char) (((uint16_t) want[i]) >> 8);
			buf[h + 2 * i + 1] = (unsigned char) want[i];
		}
		path = Scratch("i16.idx.gz");
		WriteFile(path, buf, h + 6, true);
		ok(idx_open(&idx, path) == 0 && idx_read_float(&idx, v, 3) == 3,
		   "idx: gzipped big-endian int16 file reads");
		for (i = 0; i < 3; i++)
			if (v[i] != (float) want[i])
				same = false;
		ok(same, "idx: int16 values -300, 7, 32000");
		idx_close(&idx);
		free(path);
	}

	/* truncated: plain is caught at open by size, gzipped when read */
	h = IdxHeader(buf, IDX_UINT8, 3, dims);
	path = Scratch("short.idx");
	WriteFile(path, buf, h + 7, false);
	ok(idx_open(&idx, path) < 0 && strstr(idx.err, "size is") && strstr(idx.err, path),
	   "idx: truncated plain file refused at open, message names the file (%s)", idx.err);
	idx_close(&idx);
	free(path);
	path = Scratch("short.idx.gz");
	WriteFile(path, buf, h + 7, true);
	ok(idx_open(&idx, path) == 0, "idx: truncated gzipped file opens (size unknown)");
	ok(idx_read_float(&idx, v, 3) < 0 && strstr(idx.err, "file ends early"),
	   "idx: reading the truncated gzipped file fails: %s", idx.err);
	idx_close(&idx);
	free(path);
	path = Scratch("header.idx.gz");
	WriteFile(path, buf, 6, true);
	ok(idx_open(&idx, path) < 0 && strstr(idx.err, "file ends early"),
	   "idx: file cut inside the header refused: %s", idx.err);
	idx_close(&idx);
	free(path);

	/* bad magic, bad type, missing file */
	memcpy(buf, "\x1f\x00\x08\x03", 4);
	path = Scratch("magic.idx");
	WriteFile(path, buf, len, false);
	ok(idx_open(&idx, path) < 0 && strstr(idx.err, "not an IDX file"),
	   "idx: bad magic refused: %s", idx.err);
	idx_close(&idx);
	free(path);
	h = IdxHeader(buf, 0x07, 3, dims);
	path = Scratch("type.idx.gz");
	WriteFile(path, buf, len, true);
	ok(idx_open(&idx, path) < 0 && strstr(idx.err, "unknown IDX element type 0x07"),
	   "idx: unknown type code refused: %s", idx.err);
	idx_close(&idx);
	free(path);
	path = Scratch("missing.idx");
	unlink(path);
	ok(idx_open(&idx, path) < 0 && strstr(idx.err, "cannot open"),
	   "idx: missing file: %s", idx.err);
	idx_close(&idx);
	free(path);
}

typedef struct Pair
{
	float		d;
	int64_t		id;
} Pair;

/* qsort order of (distance, id) pairs */
static int
ComparePair(const void *a, const void *b)
{
	const Pair *x = a;
	const Pair *y = b;

	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * Naive ground truth: every distance, NaN as +inf, a full sort by
 * (distance, id), the first depth; padded with -1.
 */
static void
NaiveGt(ObMetric m, int dim, const float *vecs, const int64_t *ids,
		const uint32_t *rows, size_t nrows, const float *q, int depth,
		int64_t *out_ids, float *out_d)
{
	Pair	   *all = ob_malloc(sizeof(Pair) * nrows + 1);
	size_t		i;

	for (i = 0; i < nrows; i++)
	{
		size_t		row = rows ? rows[i] : i;
		float		d = ob_distance(m, q, vecs + row * dim, dim);

		all[i].d = isnan(d) ? INFINITY : d;
		all[i].id = ids ? ids[row] : (int64_t) row;
	}
	qsort(all, nrows, sizeof(Pair), ComparePair);
	for (i = 0; i < (size_t) depth; i++)
	{
		out_ids[i] = i < nrows ? all[i].id : -1;
		out_d[i] = i < nrows ? all[i].d : INFINITY;
	}
	free(all);
}

/* Compare ob_gt_compute with the naive version; returns whether equal */
static bool
GtMatches(ObMetric m, int dim, const float *vecs, const int64_t *ids,
		  const uint32_t *rows, size_t nrows, const float *qs, size_t nq,
		  int depth, int threads, char *why, size_t whylen)
{
	ObGroundTruth gt;
	int64_t    *nid = ob_malloc(sizeof(int64_t) * depth);
	float	   *nd = ob_malloc(sizeof(float) * depth);
	size_t		q;
	int			i;
	bool		same = true;

	ob_gt_compute(&gt, m, dim, vecs, ids, rows, nrows, qs, nq, depth, threads, false);
	for (q = 0; q < nq && same; q++)
	{
		NaiveGt(m, dim, vecs, ids, rows, nrows, qs + q * dim, depth, nid, nd);
		for (i = 0; i < depth; i++)
			if (gt.ids[q * depth + i] != nid[i] ||
				memcmp(&gt.dist[q * depth + i], &nd[i], sizeof(float)) != 0)
			{
				snprintf(why, whylen, "query %zu rank %d: got id %lld d %g, naive id %lld d %g",
						 q, i, (long long) gt.ids[q * depth + i], gt.dist[q * depth + i],
						 (long long) nid[i], nd[i]);
				same = false;
				break;
			}
	}
	ob_gt_free(&gt);
	free(nid);
	free(nd);
	return same;
}

/* Ground truth against brute force */
static void
TestGroundTruth(void)
{
	const ObMetric metrics[3] = {OB_L2, OB_IP, OB_COSINE};
	const int	dims[3] = {1, 7, 37};
	ObRng		rng;
	int			mi,
				di;
	char		why[256];

	ob_rng_seed(&rng, 12345);
	for (mi = 0; mi < 3; mi++)
		for (di = 0; di < 3; di++)
		{
			int			dim = dims[di];
			size_t		n = 600,
						nq = 9,
						i;
			float	   *v = ob_malloc(sizeof(float) * n * dim);
			float	   *q = ob_malloc(sizeof(float) * nq * dim);
			int64_t    *ids = ob_malloc(sizeof(int64_t) * n);
			uint32_t   *rows = ob_malloc(sizeof(uint32_t) * n);
			size_t		nrows = 0;
			char		why2[256] = "";
			bool		same;

			/* small integers: many exact ties; then duplicate rows; one zero row */
			for (i = 0; i < n * dim; i++)
				v[i] = (float) ((int) (ob_rng_uniform(&rng) * 7) - 3);
			for (i = 0; i < 100; i++)
				memcpy(v + (n - 1 - i) * dim, v + i * dim, sizeof(float) * dim);
			memset(v + 5 * dim, 0, sizeof(float) * dim);
			for (i = 0; i < nq * dim; i++)
				q[i] = (float) ((int) (ob_rng_uniform(&rng) * 7) - 3) + (i % 3 == 0 ? 0.5f : 0);
			memcpy(q, v + 3 * dim, sizeof(float) * dim);	/* a query equal to a row */
			for (i = 0; i < n; i++)
			{
				ids[i] = (int64_t) (1000000 - 7 * i);	/* descending, not dense */
				if (i % 3 != 1)
					rows[nrows++] = (uint32_t) i;
			}

			why[0] = '\0';
			same = GtMatches(metrics[mi], dim, v, NULL, NULL, n, q, nq, 100, 1, why, sizeof(why));
			ok(same, "gt: %s dim %d, 600 rows with ties, 1 thread = brute force %s",
			   ob_metric_name(metrics[mi]), dim, why);
			same = GtMatches(metrics[mi], dim, v, ids, rows, nrows, q, nq, 100, 4, why2, sizeof(why2));
			ok(same,
			   "gt: %s dim %d, row subset, descending ids, 4 threads = brute force %s",
			   ob_metric_name(metrics[mi]), dim, why2);
			free(v);
			free(q);
			free(ids);
			free(rows);
		}

	/* depth larger than the rows: padded */
	{
		float		v[3] = {1, 2, 3};
		float		q[1] = {2.2f};
		ObGroundTruth gt;

		ob_gt_compute(&gt, OB_L2, 1, v, NULL, NULL, 3, q, 1, 5, 2, false);
		ok(gt.ids[0] == 1 && gt.ids[1] == 2 && gt.ids[2] == 0 && gt.ids[3] == -1 &&
		   gt.ids[4] == -1 && isinf(gt.dist[4]),
		   "gt: 3 rows, depth 5: ids 1 2 0 -1 -1 (got %lld %lld %lld %lld %lld)",
		   (long long) gt.ids[0], (long long) gt.ids[1], (long long) gt.ids[2],
		   (long long) gt.ids[3], (long long) gt.ids[4]);
		ok(fabsf(gt.dist[0] - 0.04f) < 1e-6 && fabsf(gt.dist[1] - 0.64f) < 1e-6,
		   "gt: L2 distances are squared (0.04, 0.64)");
		ob_gt_free(&gt);
	}
	/* exact ties: equal distances ordered by id */
	{
		float		v[5] = {1, -1, 1, -1, 3};
		float		q[1] = {0};
		int64_t		ids[5] = {50, 40, 30, 20, 10};
		ObGroundTruth gt;

		ob_gt_compute(&gt, OB_L2, 1, v, ids, NULL, 5, q, 1, 4, 1, false);
		ok(gt.ids[0] == 20 && gt.ids[1] == 30 && gt.ids[2] == 40 && gt.ids[3] == 50,
		   "gt: four rows at distance 1 come in id order 20 30 40 50");
		ob_gt_free(&gt);
	}
	/* cosine: what the server computes, NaN for a zero vector sorting last */
	{
		float		a[2] = {1, 0},
					b[2] = {0, 2},
					z[2] = {0, 0},
					c[2] = {-3, 0};

		ok(fabsf(ob_distance(OB_COSINE, a, b, 2) - 1.0f) < 1e-7 &&
		   fabsf(ob_distance(OB_COSINE, a, c, 2) - 2.0f) < 1e-7 &&
		   isnan(ob_distance(OB_COSINE, a, z, 2)),
		   "distance: cosine 1 for orthogonal, 2 for opposite, NaN with a zero vector");
		ok(ob_distance(OB_IP, a, c, 2) == 3.0f && ob_distance(OB_L2, b, c, 2) == 13.0f,
		   "distance: <#> key is -a.b (3), <-> key is squared (13)");
	}
}

/* Save, load, prefix load, stale refusal */
static void
TestGtCache(void)
{
	float		v[200 * 4];
	float		q[10 * 4];
	ObGroundTruth gt,
				back;
	char	   *dir = Scratch("cache");
	char	   *path,
			   *path2;
	ObRng		rng;
	int			i;
	uint64_t	h;

	ob_rng_seed(&rng, 7);
	for (i = 0; i < 800; i++)
		v[i] = (float) ob_rng_gauss(&rng);
	for (i = 0; i < 40; i++)
		q[i] = (float) ob_rng_gauss(&rng);
	h = ob_hash_floats(v, 800);
	ob_gt_compute(&gt, OB_L2, 4, v, NULL, NULL, 200, q, 10, 20, 2, false);
	i = ob_gt_cache_save(&gt, dir, "test key", h, q, 4, &path);
	ok(i == 0, "cache: save to %s", path);
	ok(ob_gt_cache_load(&back, dir, "test key", h, q, 10, 4, 20, &path2) == 1 &&
	   strcmp(path, path2) == 0 &&
	   memcmp(back.ids, gt.ids, sizeof(int64_t) * 200) == 0 &&
	   memcmp(back.dist, gt.dist, sizeof(float) * 200) == 0,
	   "cache: load gives back the same ids and distances");
	ob_gt_free(&back);
	free(path2);
	ok(ob_gt_cache_load(&back, dir, "test key", h, q, 4, 4, 20, &path2) == 1 &&
	   back.nq == 4 && memcmp(back.ids, gt.ids, sizeof(int64_t) * 80) == 0 &&
	   memcmp(back.dist, gt.dist, sizeof(float) * 80) == 0,
	   "cache: a file for 10 queries serves the first 4");
	ob_gt_free(&back);
	free(path2);
	ok(ob_gt_cache_load(&back, dir, "other key", h, q, 10, 4, 20, &path2) == 0,
	   "cache: another key finds nothing");
	free(path2);
	ok(ob_gt_cache_load(&back, dir, "test key", h ^ 1, q, 10, 4, 20, &path2) == 0,
	   "cache: changed base data finds nothing");
	free(path2);
	/* the same file under the name of other base data: the header check refuses it */
	ob_gt_cache_load(&back, dir, "test key", h ^ 1, q, 10, 4, 20, &path2);
	if (link(path, path2) < 0)
		diag("cannot link %s to %s", path, path2);
	ok(ob_gt_cache_load(&back, dir, "test key", h ^ 1, q, 10, 4, 20, &path2) == 0,
	   "cache: a file whose header names other base data is refused");
	unlink(path2);
	free(path2);
	q[5] += 1.0f;
	ok(ob_gt_cache_load(&back, dir, "test key", h, q, 10, 4, 20, &path2) == 0,
	   "cache: a changed query vector makes the file stale");
	free(path2);
	q[5] -= 1.0f;
	ok(ob_gt_cache_load(&back, dir, "test key", h, q, 10, 4, 10, &path2) == 0,
	   "cache: another depth makes the file stale");
	free(path2);
	{
		float		q2[11 * 4];

		memcpy(q2, q, sizeof(q));
		memset(q2 + 40, 0, sizeof(float) * 4);
		ok(ob_gt_cache_load(&back, dir, "test key", h, q2, 11, 4, 20, &path2) == 0,
		   "cache: asking for more queries than the file has finds nothing");
		free(path2);
	}
	/* a corrupted header line */
	{
		FILE	   *f = fopen(path, "r+b");

		fseek(f, 0, SEEK_SET);
		fputc('X', f);
		fclose(f);
		ok(ob_gt_cache_load(&back, dir, "test key", h, q, 10, 4, 20, &path2) == 0,
		   "cache: a file with a damaged magic line is refused");
		free(path2);
	}
	ob_gt_free(&gt);
	free(path);
	free(dir);
}

/* Recall on hand-computed cases */
static void
TestRecall(void)
{
	const int64_t gid[4] = {1, 2, 3, 4};
	const float gd[4] = {1, 2, 3, 4};
	const float tied[4] = {1, 2, 3, 3};

	ok(ob_recall_one((int64_t[]) {1, 2, 3}, 3, NULL, gid, gd, 3) == 1.0,
	   "recall: all three found = 1");
	ok(ob_recall_one((int64_t[]) {3, 1, 2}, 3, NULL, gid, gd, 3) == 1.0,
	   "recall: order does not matter");
	ok(fabs(ob_recall_one((int64_t[]) {1, 2, 4}, 3, (float[]) {1, 2, 4}, gid, gd, 3) - 2.0 / 3) < 1e-12,
	   "recall: the 4th nearest instead of the 3rd = 2/3");
	ok(fabs(ob_recall_one((int64_t[]) {1, 2}, 2, NULL, gid, gd, 3) - 2.0 / 3) < 1e-12,
	   "recall: only two rows returned = 2/3");
	ok(ob_recall_one(NULL, 0, NULL, gid, gd, 3) == 0.0,
	   "recall: nothing returned = 0");
	ok(fabs(ob_recall_one((int64_t[]) {2, 2, 2}, 3, NULL, gid, gd, 3) - 1.0 / 3) < 1e-12,
	   "recall: one id returned three times counts once = 1/3");
	ok(fabs(ob_recall_one((int64_t[]) {1, 9, 2, 3}, 4, NULL, gid, gd, 3) - 2.0 / 3) < 1e-12,
	   "recall: rows beyond k are ignored (1 9 2 | 3 = 2/3)");
	ok(fabs(ob_recall_one((int64_t[]) {4, 9, 8}, 3, (float[]) {4, 9, 8}, gid, gd, 1)) == 0.0 &&
	   ob_recall_one((int64_t[]) {1}, 1, NULL, gid, gd, 1) == 1.0,
	   "recall@1: 0 for a wrong row, 1 for the nearest");
	/* ties at the k-th distance */
	ok(ob_recall_one((int64_t[]) {1, 2, 4}, 3, (float[]) {1, 2, 3}, gid, tied, 3) == 1.0,
	   "recall: a row tied with the 3rd nearest counts (ids 3 and 4 both at 3)");
	ok(ob_recall_one((int64_t[]) {1, 2, 77}, 3, (float[]) {1, 2, 3.00001f}, gid, tied, 3) == 1.0,
	   "recall: a row not in the top 100 but at the k-th distance (within 1e-5 relative) counts");
	ok(fabs(ob_recall_one((int64_t[]) {1, 2, 77}, 3, (float[]) {1, 2, 3.001f}, gid, tied, 3) - 2.0 / 3) < 1e-12,
	   "recall: a row 1e-3 beyond the k-th distance does not count");
	ok(fabs(ob_recall_one((int64_t[]) {1, 2, 77}, 3, (float[]) {1, 2, NAN}, gid, tied, 3) - 2.0 / 3) < 1e-12,
	   "recall: a row of unknown distance counts only if it is a true neighbour");
	ok(fabs(ob_recall_one((int64_t[]) {1, 4, 3}, 3, (float[]) {1, 3, 3}, gid, tied, 2) - 1.0 / 2) < 1e-12,
	   "recall@2: the 3rd row is ignored, the 2nd (distance 3 > 2) is wrong = 1/2");
	/* the zero-distance edge: tolerance is absolute there */
	{
		const float zd[2] = {0, 0};
		const int64_t zid[2] = {5, 6};

		ok(ob_recall_one((int64_t[]) {7, 5}, 2, (float[]) {0, 0}, zid, zd, 2) == 1.0 &&
		   fabs(ob_recall_one((int64_t[]) {7, 5}, 2, (float[]) {1e-3f, 0}, zid, zd, 2) - 0.5) < 1e-12,
		   "recall: duplicates at distance 0 count, a row at 1e-3 does not");
	}
}

/* The generator: deterministic and random-access */
static void
TestSynth(void)
{
	ObSynth		a,
				b,
				c;
	float		r1[33],
				r2[33];
	ObDataset	d1,
				d2;
	char		err[256];
	bool		same = true;
	size_t		i;

	memset(&a, 0, sizeof(a));
	a.n = 100;
	a.dim = 33;
	a.clusters = 5;
	a.sigma = 0.5;
	a.seed = 42;
	b = a;
	c = a;
	c.seed = 43;
	ob_synth_init(&a);
	ob_synth_init(&b);
	ob_synth_init(&c);
	ok(memcmp(a.centers, b.centers, sizeof(float) * 5 * 33) == 0, "synth: same seed, same centres");
	ok(memcmp(a.centers, c.centers, sizeof(float) * 5 * 33) != 0, "synth: another seed, other centres");
	ob_synth_row(&a, OB_SYNTH_BASE, 77, r1);
	ob_synth_row(&a, OB_SYNTH_BASE, 3, r2);
	ob_synth_row(&b, OB_SYNTH_BASE, 77, r2);
	ok(memcmp(r1, r2, sizeof(r1)) == 0, "synth: row 77 is the same whatever was generated before");
	ob_synth_row(&a, OB_SYNTH_QUERY, 77, r2);
	ok(memcmp(r1, r2, sizeof(r1)) != 0, "synth: query 77 differs from row 77");
	ob_synth_row(&c, OB_SYNTH_BASE, 77, r2);
	ok(memcmp(r1, r2, sizeof(r1)) != 0, "synth: row 77 differs with another seed");

	/* whole datasets: threads (>= 10,000 rows) against one row at a time */
	ok(ob_dataset_parse(&d1, "synth:n=12k,dim=9,clusters=7,seed=5", err, sizeof(err)) == 0 &&
	   ob_dataset_parse(&d2, "synth:n=12000,dim=9,clusters=7,seed=5", err, sizeof(err)) == 0,
	   "synth: specs parse (12k = 12000)");
	ob_dataset_load_files(&d1, 20, 1);
	ob_dataset_load_files(&d2, 20, 1);
	ok(d1.n == 12000 && d1.dim == 9 && d1.nq == 20, "synth: 12000 rows of 9, 20 queries");
	ok(d1.base_hash == d2.base_hash && memcmp(d1.base, d2.base, sizeof(float) * 12000 * 9) == 0 &&
	   memcmp(d1.queries, d2.queries, sizeof(float) * 20 * 9) == 0,
	   "synth: generating twice gives identical data");
	for (i = 0; i < d1.n && same; i++)
	{
		float		row[9];

		ob_synth_row(&d1.synth, OB_SYNTH_BASE, i, row);
		if (memcmp(row, d1.base + i * 9, sizeof(row)) != 0)
			same = false;
	}
	ok(same, "synth: the threaded generation equals row-by-row generation");
	{
		double		mean = 0,
					var = 0;
		size_t		nv = d1.n * 9;

		/* sanity of the distribution: centres N(0,1) + noise N(0, 0.25): var ~1.25 */
		for (i = 0; i < nv; i++)
			mean += d1.base[i];
		mean /= nv;
		for (i = 0; i < nv; i++)
			var += (d1.base[i] - mean) * (d1.base[i] - mean);
		var /= nv;
		ok(fabs(mean) < 1.0 && var > 0.2 && var < 5.0,
		   "synth: values look like clustered Gaussians (mean %.3f, variance %.3f)", mean, var);
	}
	{
		ObDataset	d3;

		ob_dataset_parse(&d3, "synth:n=12k,dim=9,clusters=7,seed=6", err, sizeof(err));
		ob_dataset_load_files(&d3, 20, 1);
		ok(d3.base_hash != d1.base_hash, "synth: another seed, another base hash");
		ok(strcmp(d1.desc, d3.desc) != 0 && strstr(d1.desc, "seed=5") != NULL,
		   "synth: the description (cache key) names the seed: %s", d1.desc);
	}
}

/*
 * A Fashion-MNIST directory in miniature: 3 training and 5 test images of
 * 28 x 28.  The first --queries test images query; the rest are the spare
 * rows that inserts add, so inserts are new vectors, not copies of rows.
 */
static void
TestFmnistSpare(void)
{
	const int	px = 28 * 28;
	const uint32_t train_dims[3] = {3, 28, 28};
	const uint32_t test_dims[3] = {5, 28, 28};
	unsigned char *buf = ob_malloc(16 + 5 * px);
	char	   *dir = Scratch("fmnist_mini");
	char		err[256];
	ObDataset	d;
	size_t		h;
	bool		same = true;
	bool		fresh = true;

	mkdir(dir, 0777);
	h = IdxHeader(buf, IDX_UINT8, 3, train_dims);
	for (int i = 0; i < 3 * px; i++)
		buf[h + i] = (unsigned char) (i % 7);	/* image j: pixel p = (j*784+p) % 7 */
	WriteFile(ob_psprintf("%s/train-images-idx3-ubyte.gz", dir), buf, h + 3 * px, true);
	h = IdxHeader(buf, IDX_UINT8, 3, test_dims);
	for (int i = 0; i < 5 * px; i++)
		buf[h + i] = (unsigned char) (100 + i / px);	/* test image j: all 100 + j */
	WriteFile(ob_psprintf("%s/t10k-images-idx3-ubyte.gz", dir), buf, h + 5 * px, true);

	ob_dataset_parse(&d, ob_psprintf("fmnist:dir=%s", dir), err, sizeof(err));
	ob_dataset_load_files(&d, 2, 1);
	ok(d.n == 3 && d.nq == 2 && d.nspare == 3,
	   "fmnist: 3 base rows, 2 queries, 3 spare test images (got %zu, %zu, %zu)",
	   d.n, d.nq, d.nspare);
	for (int j = 0; j < 3; j++)
		for (int p = 0; p < px; p++)
			if (d.spare[j * px + p] != (float) (102 + j))
				same = false;
	ok(same, "fmnist: the spare rows are test images 2, 3, 4 in order");
	same = true;
	for (int q = 0; q < 2; q++)
		if (d.queries[q * px] != (float) (100 + q))
			same = false;
	ok(same, "fmnist: the queries are test images 0 and 1");
	for (int j = 0; j < 3; j++)
		for (int b = 0; b < 3; b++)
			if (memcmp(d.spare + j * px, d.base + b * px, sizeof(float) * px) == 0)
				fresh = false;
	ok(fresh, "fmnist: no spare row equals a base row");
	free(buf);
}

/* Dataset specs and their errors */
static void
TestSpecs(void)
{
	ObDataset	d;
	char		err[256];

	ok(ob_dataset_parse(&d, "fmnist", err, sizeof(err)) == 0 && d.kind == OB_DATA_FMNIST &&
	   strcmp(d.name, "fmnist") == 0, "spec: fmnist");
	ok(ob_dataset_parse(&d, "fmnist:dir=/x/y", err, sizeof(err)) == 0 &&
	   strcmp(d.fmnist_dir, "/x/y") == 0, "spec: fmnist:dir=/x/y");
	ok(ob_dataset_parse(&d, "synth:1mx128", err, sizeof(err)) == 0 && d.n == 1000000 &&
	   d.dim == 128 && strcmp(d.name, "synth_1000000x128") == 0, "spec: synth:1mx128");
	ok(ob_dataset_parse(&d, "table:public.items.emb,id=item_id", err, sizeof(err)) == 0 &&
	   strcmp(d.src_table, "public.items") == 0 && strcmp(d.src_column, "emb") == 0 &&
	   strcmp(d.src_id, "item_id") == 0 && strcmp(d.name, "copy_items") == 0,
	   "spec: table:public.items.emb,id=item_id");
	ok(ob_dataset_parse(&d, "nonsense", err, sizeof(err)) < 0 && strstr(err, "unknown dataset"),
	   "spec: unknown kind refused: %s", err);
	ok(ob_dataset_parse(&d, "synth:n=0", err, sizeof(err)) < 0 && strstr(err, "bad dataset option"),
	   "spec: synth:n=0 refused: %s", err);
	ok(ob_dataset_parse(&d, "synth:dim=20000", err, sizeof(err)) < 0,
	   "spec: more than 16,000 dimensions refused");
	ok(ob_dataset_parse(&d, "table:items", err, sizeof(err)) < 0 && strstr(err, "TABLE.COLUMN"),
	   "spec: table without a column refused: %s", err);
}

/* Vector text reads back exactly */
static void
TestVectorText(void)
{
	float		v[6] = {0, 255, -3, 0.1f, 1.17549435e-38f, -123456.789f};
	char		buf[200];
	char	   *p;
	int			i = 0;
	bool		same = true;

	ob_format_vector(buf, v, 6);
	ok(strncmp(buf, "[0,255,-3,0.100000001,", 22) == 0, "vector text: integers plain, others %%.9g: %s", buf);
	for (p = buf + 1; i < 6; i++)
	{
		char	   *end;
		float		f = strtof(p, &end);

		if (f != v[i])
			same = false;
		p = end + 1;
	}
	ok(same, "vector text: every element reads back to the same float");
}

/* JSON lines: emit with escapes, parse back */
static void
TestJson(void)
{
	ObJson		j;
	ObRecord	r;
	char		err[128];

	ob_json_begin(&j, "query");
	ob_json_str(&j, "label", "a \"quoted\"\\ name\n\tx");
	ob_json_num(&j, "recall", 0.9375);
	ob_json_num(&j, "nan", NAN);
	ob_json_int(&j, "clients", 4);
	ob_json_bool(&j, "used", false);
	ob_json_end(&j);
	ok(ob_json_parse_line(j.buf, &r, err, sizeof(err)) == 0, "json: own line parses back");
	ok(strcmp(ob_record_get(&r, "kind"), "query") == 0 &&
	   strcmp(ob_record_get(&r, "label"), "a \"quoted\"\\ name\n\tx") == 0 &&
	   strcmp(ob_record_get(&r, "recall"), "0.9375") == 0 &&
	   strcmp(ob_record_get(&r, "nan"), "null") == 0 &&
	   strcmp(ob_record_get(&r, "clients"), "4") == 0 &&
	   strcmp(ob_record_get(&r, "used"), "false") == 0 &&
	   ob_record_get(&r, "time") != NULL,
	   "json: values survive: escapes, numbers, NaN as null, booleans, time stamp");
	ob_record_free(&r);
	free(j.buf);
	ok(ob_json_parse_line("{\"a\":1,}", &r, err, sizeof(err)) < 0 &&
	   ob_json_parse_line("{\"a\" 1}", &r, err, sizeof(err)) < 0 &&
	   ob_json_parse_line("[1]", &r, err, sizeof(err)) < 0 &&
	   ob_json_parse_line("{\"a\":\"x}", &r, err, sizeof(err)) < 0 &&
	   ob_json_parse_line("{\"a\":1} x", &r, err, sizeof(err)) < 0,
	   "json: malformed lines are refused");
}

/* Nearest-rank percentiles */
static void
TestLatency(void)
{
	double		ms[100];
	double		one[1] = {7};
	ObLatency	l;
	int			i;

	for (i = 0; i < 100; i++)
		ms[i] = 100 - i;		/* 100 .. 1, unsorted */
	ob_latency_stats(ms, 100, &l);
	ok(l.p50_ms == 50 && l.p99_ms == 99 && l.min_ms == 1 && l.max_ms == 100 && l.mean_ms == 50.5,
	   "latency: 1..100: p50 50, p99 99, mean 50.5 (got %g %g %g)", l.p50_ms, l.p99_ms, l.mean_ms);
	ob_latency_stats(ms, 10, &l);
	ok(l.p50_ms == 5 && l.p99_ms == 10, "latency: 1..10: p50 5, p99 10 (got %g %g)", l.p50_ms, l.p99_ms);
	ob_latency_stats(one, 1, &l);
	ok(l.p50_ms == 7 && l.p99_ms == 7, "latency: one value is every percentile");
}

/* id -> row maps */
static void
TestIdMap(void)
{
	int64_t		ids[5] = {40, -3, 1000000000000LL, 7, 8};
	ObIdMap		m;

	ob_idmap_build(&m, ids, 5);
	ok(ob_idmap_find(&m, 40) == 0 && ob_idmap_find(&m, -3) == 1 &&
	   ob_idmap_find(&m, 1000000000000LL) == 2 && ob_idmap_find(&m, 8) == 4 &&
	   ob_idmap_find(&m, 9) == -1, "idmap: finds rows of sparse ids, -1 for unknown");
	ob_idmap_free(&m);
	ob_idmap_build(&m, NULL, 5);
	ok(ob_idmap_find(&m, 4) == 4 && ob_idmap_find(&m, 5) == -1 && ob_idmap_find(&m, -1) == -1,
	   "idmap: identity map for row-numbered tables");
}

/* Run every group of tests; argv[1] is the scratch directory */
int
main(int argc, char **argv)
{
	if (argc > 1)
		scratch = argv[1];
	mkdir(scratch, 0777);
	OmenSimdInit();
	ob_quiet = true;
	diag("distance kernels: %s", omen_kernels->name);
	TestIdx();
	TestGroundTruth();
	TestGtCache();
	TestRecall();
	TestSynth();
	TestSpecs();
	TestFmnistSpare();
	TestVectorText();
	TestJson();
	TestLatency();
	TestIdMap();
	printf("1..%d\n", test_number);
	return failures > 0;
}

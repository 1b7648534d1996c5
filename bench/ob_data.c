/*
 * ob_data.c
 *	  omen-bench datasets: Fashion-MNIST from the Debian package, synthetic
 *	  clustered Gaussian vectors, and (with ob_pg.c) a user's table.
 *
 * Dataset specs on the command line:
 *	  fmnist[:dir=DIR]
 *		  the 60,000 training images are the base rows (id = image number),
 *		  the first --queries of the 10,000 test images the queries.
 *	  synth:n=N,dim=D[,clusters=C][,sigma=S][,seed=X]
 *		  N rows of D dimensions around C centres (default 100) drawn from
 *		  N(0, 1) per coordinate; each row is a centre plus N(0, S^2) noise
 *		  per coordinate (S default 0.5).  N accepts k and m suffixes.
 *	  table:[SCHEMA.]TABLE.COLUMN[,id=IDCOL][,queries=[SCHEMA.]TABLE.COLUMN]
 *		  the rows of a user's table (read with COPY ... TO STDOUT; never
 *		  changed), queries sampled from its rows unless a query table is
 *		  given.
 *
 * The synthetic generator is deterministic and random-access: row i of a
 * stream depends only on (seed, stream, i), so the same seed gives the same
 * data on any number of threads, queries are a prefix-stable sequence, and
 * the streaming workload can draw fresh rows n, n+1, ... from the same
 * distribution.  Normal deviates come from Box-Muller over xoshiro256**
 * seeded through splitmix64.
 */
#include "ob.h"
#include "idx.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

/* splitmix64: advances *state and returns a well-mixed 64-bit value */
uint64_t
ob_splitmix64(uint64_t *state)
{
	uint64_t	z = (*state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Seed a xoshiro256** generator from one 64-bit value */
void
ob_rng_seed(ObRng *rng, uint64_t seed)
{
	uint64_t	st = seed;
	int			i;

	for (i = 0; i < 4; i++)
		rng->s[i] = ob_splitmix64(&st);
	rng->has_spare = false;
	rng->spare = 0;
}

/* Rotate left by k bits */
static inline uint64_t
Rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: the next 64 random bits */
uint64_t
ob_rng_next(ObRng *rng)
{
	uint64_t   *s = rng->s;
	uint64_t	result = Rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = Rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1), 53 random bits */
double
ob_rng_uniform(ObRng *rng)
{
	return (double) (ob_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal deviate (Box-Muller, both values used) */
double
ob_rng_gauss(ObRng *rng)
{
	double		u1,
				u2,
				r;

	if (rng->has_spare)
	{
		rng->has_spare = false;
		return rng->spare;
	}
	do
		u1 = ob_rng_uniform(rng);
	while (u1 <= 0.0);
	u2 = ob_rng_uniform(rng);
	r = sqrt(-2.0 * log(u1));
	rng->spare = r * sin(2.0 * M_PI * u2);
	rng->has_spare = true;
	return r * cos(2.0 * M_PI * u2);
}

/* The seed of row i of a stream: depends on nothing else */
static uint64_t
RowSeed(uint64_t seed, int stream, uint64_t i)
{
	uint64_t	st = seed ^ ((uint64_t) stream << 56);
	uint64_t	a = ob_splitmix64(&st);

	st = a ^ (i * 0xD1B54A32D192ED03ULL);
	return ob_splitmix64(&st);
}

/* Draw the cluster centres of a synthetic dataset (stream 0) */
void
ob_synth_init(ObSynth *s)
{
	ObRng		rng;
	size_t		i;

	s->centers = ob_malloc(sizeof(float) * (size_t) s->clusters * s->dim);
	ob_rng_seed(&rng, RowSeed(s->seed, 0, 0));
	for (i = 0; i < (size_t) s->clusters * s->dim; i++)
		s->centers[i] = (float) ob_rng_gauss(&rng);
}

/* Row i of a stream: a random centre plus Gaussian noise */
void
ob_synth_row(const ObSynth *s, int stream, uint64_t i, float *out)
{
	ObRng		rng;
	const float *c;
	int			d;

	ob_rng_seed(&rng, RowSeed(s->seed, stream, i));
	c = s->centers + (size_t) (ob_rng_next(&rng) % (uint64_t) s->clusters) * s->dim;
	for (d = 0; d < s->dim; d++)
		out[d] = c[d] + (float) (s->sigma * ob_rng_gauss(&rng));
}

typedef struct SynthJob
{
	const ObSynth *s;
	int			stream;
	uint64_t	first;
	size_t		count;
	float	   *out;
} SynthJob;

/* Thread body: generate a job's rows */
static void *
SynthThread(void *arg)
{
	SynthJob   *job = arg;
	size_t		i;

	for (i = 0; i < job->count; i++)
		ob_synth_row(job->s, job->stream, job->first + i,
					 job->out + i * (size_t) job->s->dim);
	return NULL;
}

/* Generate rows [first, first + count) of a stream on all CPUs */
static void
SynthRows(const ObSynth *s, int stream, uint64_t first, size_t count, float *out)
{
	int			nthreads = ob_ncpus();
	pthread_t  *th;
	SynthJob   *jobs;
	size_t		per;
	int			t;

	if (count < 10000)
		nthreads = 1;
	th = ob_malloc(sizeof(pthread_t) * nthreads);
	jobs = ob_malloc(sizeof(SynthJob) * nthreads);
	per = (count + nthreads - 1) / nthreads;
	for (t = 0; t < nthreads; t++)
	{
		size_t		lo = per * t < count ? per * t : count;
		size_t		hi = lo + per < count ? lo + per : count;

		jobs[t].s = s;
		jobs[t].stream = stream;
		jobs[t].first = first + lo;
		jobs[t].count = hi - lo;
		jobs[t].out = out + lo * (size_t) s->dim;
		if (pthread_create(&th[t], NULL, SynthThread, &jobs[t]) != 0)
			ob_die("cannot start a thread");
	}
	for (t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	free(th);
	free(jobs);
}

/* Parse a size with an optional k/m suffix; -1 if malformed */
static long long
ParseCount(const char *s)
{
	char	   *end;
	double		v = strtod(s, &end);

	if (end == s || v < 0)
		return -1;
	if (*end == 'k' || *end == 'K')
	{
		v *= 1e3;
		end++;
	}
	else if (*end == 'm' || *end == 'M')
	{
		v *= 1e6;
		end++;
	}
	if (*end != '\0' || v != floor(v) || v > 4e9)
		return -1;
	return (long long) v;
}

/* Split "[schema.]table.column" at the last dot */
static int
SplitTableColumn(const char *s, char **table, char **column)
{
	const char *dot = strrchr(s, '.');

	if (dot == NULL || dot == s || dot[1] == '\0')
		return -1;
	*table = ob_strdup(s);
	(*table)[dot - s] = '\0';
	*column = ob_strdup(dot + 1);
	return 0;
}

/*
 * Parse a dataset spec (see the file header) into ds; the data itself is
 * read later.  Returns 0, or -1 with a message in err.
 */
int
ob_dataset_parse(ObDataset *ds, const char *spec, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	size_t		kindlen = colon ? (size_t) (colon - spec) : strlen(spec);
	char	   *opts = ob_strdup(colon ? colon + 1 : "");
	char	   *tok,
			   *save = NULL;
	bool		first = true;

	memset(ds, 0, sizeof(*ds));
	if ((kindlen == 6 && strncmp(spec, "fmnist", 6) == 0) ||
		(kindlen == 13 && strncmp(spec, "fashion-mnist", 13) == 0))
	{
		ds->kind = OB_DATA_FMNIST;
		ds->fmnist_dir = ob_strdup(FMNIST_DEFAULT_DIR);
		ds->dim = 784;
		snprintf(ds->name, sizeof(ds->name), "fmnist");
	}
	else if (kindlen == 5 && strncmp(spec, "synth", 5) == 0)
	{
		ds->kind = OB_DATA_SYNTH;
		ds->synth.n = 100000;
		ds->synth.dim = 128;
		ds->synth.clusters = 100;
		ds->synth.sigma = 0.5;
		ds->synth.seed = 42;
	}
	else if (kindlen == 5 && strncmp(spec, "table", 5) == 0)
		ds->kind = OB_DATA_TABLE;
	else
	{
		snprintf(err, errlen, "unknown dataset \"%s\": use fmnist, synth:n=N,dim=D[,seed=S] or table:TABLE.COLUMN", spec);
		free(opts);
		return -1;
	}

	for (tok = strtok_r(opts, ",", &save); tok; tok = strtok_r(NULL, ",", &save), first = false)
	{
		char	   *eq = strchr(tok, '=');
		const char *key = tok;
		const char *val = eq ? eq + 1 : "";
		long long	num;

		if (eq)
			*eq = '\0';
		if (ds->kind == OB_DATA_TABLE && first && !eq)
		{
			if (SplitTableColumn(tok, &ds->src_table, &ds->src_column) < 0)
			{
				snprintf(err, errlen, "table dataset \"%s\": want table:TABLE.COLUMN (e.g. table:items.embedding)", spec);
				free(opts);
				return -1;
			}
			continue;
		}
		if (ds->kind == OB_DATA_SYNTH && first && !eq && strchr(tok, 'x'))
		{
			/* synth:NxD shorthand */
			char	   *x = strchr(tok, 'x');

			*x = '\0';
			num = ParseCount(tok);
			ds->synth.n = num > 0 ? (size_t) num : 0;
			num = ParseCount(x + 1);
			ds->synth.dim = num > 0 && num <= 16000 ? (int) num : 0;
			if (ds->synth.n == 0 || ds->synth.dim == 0)
			{
				snprintf(err, errlen, "synth:%sx%s: want synth:ROWSxDIMS, e.g. synth:100kx128", tok, x + 1);
				free(opts);
				return -1;
			}
			continue;
		}
		if (!eq)
		{
			snprintf(err, errlen, "dataset option \"%s\" has no value (want name=value)", tok);
			free(opts);
			return -1;
		}
		if (ds->kind == OB_DATA_FMNIST && strcmp(key, "dir") == 0)
		{
			free(ds->fmnist_dir);
			ds->fmnist_dir = ob_strdup(val);
		}
		else if (ds->kind == OB_DATA_SYNTH && strcmp(key, "n") == 0 &&
				 (num = ParseCount(val)) > 0)
			ds->synth.n = (size_t) num;
		else if (ds->kind == OB_DATA_SYNTH && strcmp(key, "dim") == 0 &&
				 (num = ParseCount(val)) > 0 && num <= 16000)
			ds->synth.dim = (int) num;
		else if (ds->kind == OB_DATA_SYNTH && strcmp(key, "clusters") == 0 &&
				 (num = ParseCount(val)) > 0 && num <= 1000000)
			ds->synth.clusters = (int) num;
		else if (ds->kind == OB_DATA_SYNTH && strcmp(key, "sigma") == 0 &&
				 atof(val) >= 0)
			ds->synth.sigma = atof(val);
		else if (ds->kind == OB_DATA_SYNTH && strcmp(key, "seed") == 0 &&
				 (num = ParseCount(val)) >= 0)
			ds->synth.seed = (uint64_t) num;
		else if (ds->kind == OB_DATA_TABLE && strcmp(key, "id") == 0 && *val)
			ds->src_id = ob_strdup(val);
		else if (ds->kind == OB_DATA_TABLE && strcmp(key, "queries") == 0)
		{
			if (SplitTableColumn(val, &ds->q_table, &ds->q_column) < 0)
			{
				snprintf(err, errlen, "queries=%s: want queries=TABLE.COLUMN", val);
				free(opts);
				return -1;
			}
		}
		else
		{
			snprintf(err, errlen, "bad dataset option \"%s=%s\" for %.*s", key, val, (int) kindlen, spec);
			free(opts);
			return -1;
		}
	}
	free(opts);

	if (ds->kind == OB_DATA_SYNTH)
	{
		ds->dim = ds->synth.dim;
		ds->n = ds->synth.n;
		snprintf(ds->name, sizeof(ds->name), "synth_%zux%d", ds->synth.n, ds->synth.dim);
		ds->desc = ob_psprintf("synth n=%zu dim=%d clusters=%d sigma=%g seed=%llu",
							   ds->synth.n, ds->synth.dim, ds->synth.clusters,
							   ds->synth.sigma, (unsigned long long) ds->synth.seed);
	}
	else if (ds->kind == OB_DATA_FMNIST)
		ds->desc = ob_psprintf("fmnist train/t10k dir=%s", ds->fmnist_dir);
	else
	{
		const char *t;
		char	   *p;

		if (ds->src_table == NULL)
		{
			snprintf(err, errlen, "table dataset needs TABLE.COLUMN, e.g. table:items.embedding");
			return -1;
		}
		if (ds->src_id == NULL)
			ds->src_id = ob_strdup("id");
		t = strrchr(ds->src_table, '.');
		t = t ? t + 1 : ds->src_table;
		snprintf(ds->name, sizeof(ds->name), "copy_%s", t);
		for (p = ds->name; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
				*p = '_';
		ds->desc = ob_psprintf("table %s.%s id=%s%s%s%s", ds->src_table, ds->src_column,
							   ds->src_id, ds->q_table ? " queries=" : "",
							   ds->q_table ? ds->q_table : "",
							   ds->q_table ? "" : " (queries sampled from the rows)");
	}
	return 0;
}

/* Open one Fashion-MNIST image file, or die with what to do */
static void
OpenImages(IdxFile *idx, const char *dir, const char *set)
{
	char	   *path = ob_psprintf("%s/%s-images-idx3-ubyte.gz", dir, set);
	const uint32_t dims[3] = {0, 28, 28};

	if (idx_open(idx, path) < 0)
		ob_die("%s; install the Debian package dataset-fashion-mnist (scripts/deps.sh does) or point fmnist:dir=DIR at the IDX files", idx->err);
	if (idx_expect(idx, IDX_UINT8, 3, dims) < 0)
		ob_die("%s: not Fashion-MNIST images", idx->err);
	free(path);
}

/* Read n images (n = 0: all) into fresh memory */
static float *
ReadImages(IdxFile *idx, size_t n, size_t *got)
{
	float	   *v;
	long		r;

	if (n == 0 || n > idx->count)
		n = idx->count;
	v = ob_malloc(sizeof(float) * n * idx->item_len);
	r = idx_read_float(idx, v, n);
	if (r < 0 || (size_t) r != n)
		ob_die("%s", idx->err[0] ? idx->err : "short read of the images");
	*got = n;
	return v;
}

/*
 * Read or generate the base rows and the first want_queries queries of a
 * file or synthetic dataset, and hash the base.  (Table datasets are read
 * by the caller through ob_read_table.)
 */
void
ob_dataset_load_files(ObDataset *ds, size_t want_queries, uint64_t seed)
{
	(void) seed;
	if (ds->kind == OB_DATA_FMNIST)
	{
		IdxFile		train,
					test;
		size_t		ntest;

		OpenImages(&train, ds->fmnist_dir, "train");
		OpenImages(&test, ds->fmnist_dir, "t10k");
		ds->base = ReadImages(&train, 0, &ds->n);

		/*
		 * All test images, in one array: the first want_queries query, the
		 * rest are the spare rows inserts add
		 */
		ds->queries = ReadImages(&test, 0, &ntest);
		ds->nq = (want_queries == 0 || want_queries > ntest) ? ntest : want_queries;
		ds->nspare = ntest - ds->nq;
		ds->spare = ds->queries + ds->nq * (size_t) ds->dim;
		idx_close(&train);
		idx_close(&test);
	}
	else if (ds->kind == OB_DATA_SYNTH)
	{
		ob_synth_init(&ds->synth);
		ds->base = ob_malloc(sizeof(float) * ds->n * ds->dim);
		SynthRows(&ds->synth, OB_SYNTH_BASE, 0, ds->n, ds->base);
		ds->nq = want_queries;
		ds->queries = ob_malloc(sizeof(float) * ds->nq * ds->dim);
		SynthRows(&ds->synth, OB_SYNTH_QUERY, 0, ds->nq, ds->queries);
	}
	ds->base_hash = ob_hash_floats(ds->base, ds->n * (size_t) ds->dim);
	ds->base_hash = ob_hash_bytes(ds->base_hash, &ds->dim, sizeof(ds->dim));
}

/*
 * A 64-bit hash over bytes: FNV-1a style over 8-byte words (and the tail
 * bytewise), with a final mix.  Not cryptographic; it only has to tell a
 * changed dataset from the one a cache file was made for.
 */
uint64_t
ob_hash_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t		i = 0;

	if (h == 0)
		h = 0xCBF29CE484222325ULL;
	for (; i + 8 <= len; i += 8)
	{
		uint64_t	w;

		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001B3ULL;
		h ^= h >> 29;
	}
	for (; i < len; i++)
		h = (h ^ p[i]) * 0x100000001B3ULL;
	return h;
}

/* Hash of n floats (their bytes) */
uint64_t
ob_hash_floats(const float *v, size_t n)
{
	uint64_t	st = ob_hash_bytes(0, v, n * sizeof(float)) ^ n;

	return ob_splitmix64(&st);
}

/* Longest text ob_format_vector can write for dim elements, with the NUL */
size_t
ob_vector_text_max(int dim)
{
	return (size_t) dim * 17 + 3;
}

/*
 * Write a vector as "[a,b,...]": integers as integers, other values with 9
 * significant digits, which reads back to the same float.
 */
void
ob_format_vector(char *out, const float *v, int dim)
{
	char	   *p = out;
	int			i;

	*p++ = '[';
	for (i = 0; i < dim; i++)
	{
		float		f = v[i];

		if (i > 0)
			*p++ = ',';
		if (f == floorf(f) && fabsf(f) < 1e7f)
		{
			long		x = (long) f;
			char		tmp[16];
			int			n = 0;

			if (x < 0 || (x == 0 && signbit(f)))
			{
				*p++ = '-';
				x = -x;
			}
			do
			{
				tmp[n++] = (char) ('0' + x % 10);
				x /= 10;
			} while (x > 0);
			while (n > 0)
				*p++ = tmp[--n];
		}
		else
			p += sprintf(p, "%.9g", f);
	}
	*p++ = ']';
	*p = '\0';
}

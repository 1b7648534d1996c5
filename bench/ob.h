/*
 * ob.h
 *	  Shared declarations of omen-bench, the benchmark tool of omen.
 *
 * The tool is split by concern:
 *	  ob_util.c		errors, clocks, progress lines, small string helpers
 *	  ob_data.c		datasets (Fashion-MNIST, synthetic, a user's table),
 *					the synthetic generator, content hashes
 *	  ob_gt.c		exact ground truth with omen's SIMD kernels, its cache,
 *					recall arithmetic
 *	  ob_pg.c		libpq helpers: connections, settings, COPY load, tables
 *					the tool owns, index builds with progress, EXPLAIN
 *	  ob_query.c	timed query runs (one or many clients), the round-trip floor
 *	  ob_report.c	terminal table, JSON lines, plots with gnuplot
 *	  omen_bench.c	command line and the commands
 *
 * Everything here is standalone C with libpq and pthreads; the distance
 * kernels are compiled in from ../src/simd/.
 */
#ifndef OMEN_BENCH_H
#define OMEN_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "simd/omen_simd.h"

/* Ground truth depth: neighbours kept per query */
#define OB_GT_DEPTH 100

/* Tables the tool creates are named OB_TABLE_PREFIX<name> */
#define OB_TABLE_PREFIX "omen_bench_"

/* Every table the tool creates carries a comment starting with this */
#define OB_COMMENT_TAG "omen-bench:"

/* Relative tolerance for ties at the k-th distance (see ob_recall_one) */
#define OB_RECALL_EPS 1e-5

typedef enum ObMetric
{
	OB_L2 = 0,					/* <->, ordered by squared distance */
	OB_IP,						/* <#>, negative inner product */
	OB_COSINE					/* <=>, 1 - cos */
} ObMetric;

/* ---- ob_util.c ---- */

extern const char *ob_progname;
extern bool ob_quiet;

extern void ob_die(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));
extern void ob_usage_error(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));
extern void ob_warn(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern void ob_note(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern void *ob_malloc(size_t size);
extern void *ob_calloc(size_t n, size_t size);
extern void *ob_realloc(void *p, size_t size);
extern char *ob_strdup(const char *s);
extern char *ob_psprintf(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern double ob_now(void);
extern void ob_progress(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern void ob_progress_done(void);
extern int	ob_ncpus(void);
extern const char *ob_metric_name(ObMetric m);
extern const char *ob_metric_op(ObMetric m);
extern int	ob_parse_metric(const char *s, ObMetric *m);
extern char *ob_first_line(const char *msg);
extern int	ob_mkdir_p(const char *path);

/* ---- ob_data.c ---- */

/* splitmix64: the seed mixer; xoshiro256** state for streams */
typedef struct ObRng
{
	uint64_t	s[4];
	double		spare;			/* second Box-Muller value */
	bool		has_spare;
} ObRng;

extern uint64_t ob_splitmix64(uint64_t *state);
extern void ob_rng_seed(ObRng *rng, uint64_t seed);
extern uint64_t ob_rng_next(ObRng *rng);
extern double ob_rng_uniform(ObRng *rng);
extern double ob_rng_gauss(ObRng *rng);

typedef struct ObSynth
{
	size_t		n;
	int			dim;
	int			clusters;
	double		sigma;			/* within-cluster standard deviation */
	uint64_t	seed;
	float	   *centers;		/* clusters * dim */
} ObSynth;

extern void ob_synth_init(ObSynth *s);
extern void ob_synth_row(const ObSynth *s, int stream, uint64_t i, float *out);

#define OB_SYNTH_BASE	1		/* stream of base (and later inserted) rows */
#define OB_SYNTH_QUERY	2		/* stream of query vectors */

typedef enum ObDataKind
{
	OB_DATA_FMNIST,
	OB_DATA_SYNTH,
	OB_DATA_TABLE
} ObDataKind;

typedef struct ObDataset
{
	ObDataKind	kind;
	char		name[64];		/* table name suffix: fmnist, synth_2000x16 */
	char	   *desc;			/* canonical description: cache and table key */
	int			dim;
	size_t		n;				/* base rows */
	float	   *base;			/* n * dim */
	int64_t    *ids;			/* NULL: row i has id i */
	size_t		nq;				/* query vectors */
	float	   *queries;		/* nq * dim */
	size_t		nspare;			/* fmnist: test images after the queries */
	float	   *spare;			/* nspare * dim, after queries: new rows for inserts */
	uint64_t	base_hash;		/* hash of dim and the base vectors */
	/* kind-specific */
	char	   *fmnist_dir;
	ObSynth		synth;
	char	   *src_table;		/* OB_DATA_TABLE: [schema.]table */
	char	   *src_column;
	char	   *src_id;
	char	   *q_table;		/* optional query table and column */
	char	   *q_column;
} ObDataset;

extern int	ob_dataset_parse(ObDataset *ds, const char *spec, char *err, size_t errlen);
extern void ob_dataset_load_files(ObDataset *ds, size_t want_queries, uint64_t seed);
extern uint64_t ob_hash_bytes(uint64_t h, const void *data, size_t len);
extern uint64_t ob_hash_floats(const float *v, size_t n);
extern void ob_format_vector(char *out, const float *v, int dim);
extern size_t ob_vector_text_max(int dim);

/* ---- ob_gt.c ---- */

typedef struct ObGroundTruth
{
	int			depth;			/* neighbours per query */
	size_t		nq;
	int64_t    *ids;			/* nq * depth, nearest first */
	float	   *dist;			/* nq * depth: squared L2, -ip or cosine distance */
} ObGroundTruth;

extern float ob_distance(ObMetric m, const float *a, const float *b, int dim);
extern void ob_gt_compute(ObGroundTruth *gt, ObMetric m, int dim,
						  const float *vecs, const int64_t *ids,
						  const uint32_t *rows, size_t nrows,
						  const float *queries, size_t nq, int depth,
						  int nthreads, bool show_progress);
extern void ob_gt_free(ObGroundTruth *gt);
extern int	ob_gt_cache_load(ObGroundTruth *gt, const char *dir, const char *key,
							 uint64_t base_hash, const float *queries, size_t nq,
							 int dim, int depth, char **path_out);
extern int	ob_gt_cache_save(const ObGroundTruth *gt, const char *dir, const char *key,
							 uint64_t base_hash, const float *queries, int dim,
							 char **path_out);
extern double ob_recall_one(const int64_t *ret, int nret, const float *ret_dist,
							const int64_t *gt_ids, const float *gt_dist, int k);

/* id -> row lookup (ids need not be dense) */
typedef struct ObIdMap
{
	size_t		n;
	int64_t    *ids;			/* sorted */
	uint32_t   *rows;
	bool		identity;		/* row == id for 0 <= id < n */
} ObIdMap;

extern void ob_idmap_build(ObIdMap *map, const int64_t *ids, size_t n);
extern long ob_idmap_find(const ObIdMap *map, int64_t id);
extern void ob_idmap_free(ObIdMap *map);

/* ---- ob_pg.c ---- */

typedef struct pg_conn PGconn;

typedef struct ObSetting
{
	char	   *name;
	char	   *value;
} ObSetting;

extern PGconn *ob_connect(const char *conninfo);
extern void ob_exec(PGconn *conn, const char *sql);
extern char *ob_query_value(PGconn *conn, const char *sql);
extern char *ob_query_value_params(PGconn *conn, const char *sql, int nparams,
								   const char *const *params);
extern char *ob_quote_ident(PGconn *conn, const char *s);
extern char *ob_quote_literal(PGconn *conn, const char *s);
extern void ob_apply_settings(PGconn *conn, const ObSetting *set, int nset);
extern void ob_check_settings(PGconn *conn, const ObSetting *set, int nset);
extern void ob_check_vector_type(PGconn *conn);
extern const char *ob_conn_describe(PGconn *conn);

typedef struct ObTableState
{
	bool		exists;
	bool		ours;			/* comment starts with OB_COMMENT_TAG */
	char	   *comment;
} ObTableState;

extern void ob_table_state(PGconn *conn, const char *table, ObTableState *st);
extern void ob_table_create(PGconn *conn, const char *table, int dim, const char *comment);
extern void ob_table_set_comment(PGconn *conn, const char *table, const char *comment);
extern void ob_table_drop(PGconn *conn, const char *table);
extern double ob_copy_load(PGconn *conn, const char *table, const float *vecs,
						   const int64_t *ids, size_t n, int dim, size_t first_id);
extern void ob_read_table(PGconn *conn, const char *table, const char *column,
						  const char *idcol, int64_t **ids, float **vecs,
						  size_t *n, int *dim);
extern int64_t ob_relation_size(PGconn *conn, const char *func, const char *rel);

typedef struct ObPlan
{
	char		node[128];		/* first scan node, e.g. "Index Scan" */
	char		index[128];		/* the index it uses, or "" */
	bool		uses_index;
	char	   *text;			/* the whole plan */
} ObPlan;

extern void ob_explain(PGconn *conn, const char *stmt, const char *vec, int k, ObPlan *plan);
extern double ob_build_index(const char *conninfo, PGconn *conn, const char *sql,
							 const char *table, char **index_name);
extern void ob_table_indexes(PGconn *conn, const char *table, char ***names, int *n);

/* ---- ob_query.c ---- */

typedef struct ObLatency
{
	double		p50_ms;
	double		p99_ms;
	double		mean_ms;
	double		min_ms;
	double		max_ms;
} ObLatency;

typedef enum ObRunMode
{
	OB_RUN_SEARCH,			/* $1 vector, $2 limit: keeps the returned ids */
	OB_RUN_FLOOR,			/* $1 vector only: the round-trip floor */
	OB_RUN_INSERT			/* $1 id, $2 vector */
} ObRunMode;

typedef struct ObRunSpec
{
	ObRunMode	mode;
	const char *conninfo;
	const char *sql;			/* the statement to prepare */
	char	  **qtext;			/* vectors as text, one per statement */
	const int64_t *insert_ids;	/* OB_RUN_INSERT: the id of each row */
	size_t		nq;				/* statements to run */
	int			k;				/* OB_RUN_SEARCH: LIMIT */
	bool		const_limit;	/* OB_RUN_SEARCH: sql says LIMIT k itself; $1 only */
	bool		spin;			/* wait for results busy, not asleep in poll() */
	int			clients;
	int			warmup;			/* untimed runs per client first */
	const char *warm_key;		/* warm pass: what the connection is warmed for */
	double		warm_seconds;	/* warm pass time limit per connection */
	struct ObPool *pool;		/* connections to use (NULL: fresh ones) */
	const ObSetting *settings;
	int			nsettings;
	bool		explain;		/* EXPLAIN after warm-up (client 0) */
} ObRunSpec;

/* Connections kept across measurements, warmed once per warm key */
typedef struct ObPool
{
	char	   *conninfo;
	int			n;
	PGconn	  **conns;
	char	  **warm_keys;		/* per connection: what it was warmed for, or NULL */
} ObPool;

extern ObPool *ob_pool_create(const char *conninfo);
extern void ob_pool_free(ObPool *pool);

typedef struct ObRunResult
{
	double		seconds;		/* wall time of the timed part */
	double		qps;
	ObLatency	lat;
	int64_t    *ids;			/* nq * k returned ids, -1 padding */
	int		   *nret;			/* per query, rows returned */
	ObPlan		plan;
} ObRunResult;

extern void ob_run_queries(const ObRunSpec *spec, ObRunResult *res);
extern void ob_run_result_free(ObRunResult *res);
extern void ob_latency_stats(double *ms, size_t n, ObLatency *out);

/* ---- ob_report.c ---- */

typedef struct ObJson
{
	char	   *buf;
	size_t		len;
	size_t		cap;
	bool		first;
} ObJson;

extern void ob_json_begin(ObJson *j, const char *kind);
extern void ob_json_str(ObJson *j, const char *key, const char *val);
extern void ob_json_num(ObJson *j, const char *key, double val);
extern void ob_json_int(ObJson *j, const char *key, long long val);
extern void ob_json_bool(ObJson *j, const char *key, bool val);
extern void ob_json_end(ObJson *j);
extern void ob_json_emit(ObJson *j);
extern void ob_output_open(const char *json_path, bool json_stdout);
extern void ob_output_close(void);
extern FILE *ob_table_out(void);

/* flat JSON objects read back for plots */
typedef struct ObRecord
{
	int			nfields;
	char	  **keys;
	char	  **vals;			/* strings unquoted; numbers as text */
} ObRecord;

extern int	ob_json_parse_line(const char *line, ObRecord *rec, char *err, size_t errlen);
extern const char *ob_record_get(const ObRecord *rec, const char *key);
extern void ob_record_free(ObRecord *rec);
extern void ob_records_add(const ObJson *j);
extern int	ob_plot(const ObRecord *recs, int nrecs, const char *dir, const char *title,
					char ***made, int *nmade);
extern void ob_plot_own(const char *dir, const char *title);
extern void ob_table_header(int k);
extern void ob_table_row(const char *what, const char *setting, int clients, double recall,
						 double qps, const ObLatency *lat, const char *plan);

#endif							/* OMEN_BENCH_H */

/*
 * omen_bench.c
 *	  omen-bench: recall, speed, cost and update stability of any vector
 *	  index on a PostgreSQL server.  The command line and the commands; see
 *	  Usage() below and README.md, "Benchmarks".
 *
 * A run goes: dataset (Fashion-MNIST, synthetic, or a user's table) ->
 * exact ground truth (cached) -> the table omen_bench_<name> (loaded with
 * COPY unless it already holds exactly this data) -> round-trip floor ->
 * exact scan -> index build or an existing index -> search sweep; the write
 * workloads (insert, stream) change the table and mark it so the next run
 * loads it again.
 */
#include "ob.h"

#include <getopt.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SETTINGS 64

typedef enum Command
{
	CMD_RUN,
	CMD_EXACT,
	CMD_FLOOR,
	CMD_LOAD,
	CMD_GT,
	CMD_INSERT,
	CMD_STREAM,
	CMD_PLOT,
	CMD_CLEAN
} Command;

typedef struct Options
{
	Command		cmd;
	const char *cmdname;
	const char *dataset;
	const char *conninfo;
	size_t		nqueries;
	int			k;
	ObMetric	metric;
	const char *name;
	bool		in_place;
	bool		reload;
	const char *cache_dir;
	int			threads;
	uint64_t	seed;
	const char *index_sql;
	const char *use_index;
	ObSetting	settings[MAX_SETTINGS];
	int			nsettings;
	char	   *sweep_name;
	char	  **sweep_values;
	int			nsweep;
	int		   *clients;
	int			nclients;
	int			passes;
	int			warmup;
	double		warm_time;
	size_t		exact_queries;
	bool		no_exact;
	bool		const_limit;
	bool		spin;
	bool		no_floor;
	const char *label;
	size_t		rows;
	int			rounds;
	double		fraction;
	const char *json_path;
	bool		json_stdout;
	const char *plot_dir;
	char	  **files;			/* plot: input files */
	int			nfiles;
	bool		verbose;
} Options;

typedef struct Ctx
{
	Options    *opt;
	ObDataset	ds;
	ObGroundTruth gt;
	PGconn	   *conn;
	char	   *table;			/* unquoted name: omen_bench_x, or the user's */
	char	   *qtable;			/* quoted for SQL */
	char	   *qvcol;			/* quoted vector column */
	char	   *qidcol;			/* quoted id column */
	bool		ids_are_rows;	/* returned ids are row numbers (our tables) */
	char	  **qtext;			/* query vectors as text */
	char	   *search_sql;
	char	   *server_line;
	int			depth;
	ObPool	   *pool;			/* search connections, kept warm across measurements */
} Ctx;

/* The --help text */
static void
Usage(FILE *out)
{
	fprintf(out,
			"omen-bench: recall, speed, cost and update stability of vector indexes on PostgreSQL\n"
			"\n"
			"usage: omen-bench COMMAND [OPTIONS]\n"
			"\n"
			"Commands:\n"
			"  run      load the dataset, ground truth, round-trip floor, exact scan, then build\n"
			"           the index (--index) or take one (--use-index) and sweep a search setting\n"
			"  exact    load, ground truth, round-trip floor and exact (sequential) scan only\n"
			"  floor    only the round-trip floor: SELECT $1::vector IS NOT NULL, prepared\n"
			"  load     only load the dataset into omen_bench_NAME\n"
			"  gt       only compute (or find cached) the exact top-100 ground truth\n"
			"  insert   insert throughput into the indexed table (one client, then the largest\n"
			"           --clients count), then DELETE and VACUUM times; the rows are new\n"
			"           vectors (fmnist: test images that are not queries; synth: fresh rows)\n"
			"  stream   streaming runbook: --rounds times delete --fraction of the rows, VACUUM,\n"
			"           insert as many new ones, and measure recall against fresh ground truth\n"
			"  plot     draw PNGs from JSON lines files: omen-bench plot FILE... --plot DIR\n"
			"  clean    drop the tables omen-bench created (omen_bench_*, with its comment)\n"
			"\n"
			"Dataset:\n"
			"  -d, --dataset SPEC     fmnist[:dir=DIR]  Fashion-MNIST, 60,000 x 784 (default)\n"
			"                         synth:n=N,dim=D[,clusters=C][,sigma=S][,seed=X]\n"
			"                             clustered Gaussian (defaults n=100k dim=128 clusters=100\n"
			"                             sigma=0.5 seed=42; n takes k/m: synth:n=1m,dim=128)\n"
			"                         table:[SCHEMA.]TABLE.COLUMN[,id=COL][,queries=QTABLE.QCOLUMN]\n"
			"                             your table (only read); copied into omen_bench_copy_TABLE\n"
			"                             unless --in-place; queries sampled from its rows\n"
			"  -q, --queries N        query vectors (default 1000; Fashion-MNIST has 10,000)\n"
			"  -k, --k K              neighbours per query: LIMIT K and recall@K (default 10, max 100)\n"
			"  -m, --metric M         l2 (<->, default), ip (<#>) or cosine (<=>)\n"
			"      --name NAME        the table is omen_bench_NAME (default: from the dataset)\n"
			"      --in-place         table datasets: query your table itself (read only;\n"
			"                         only with --use-index or no index)\n"
			"      --reload           load the table again even if it already holds the data\n"
			"      --cache-dir DIR    ground truth cache (default $OMEN_BENCH_CACHE, else\n"
			"                         ~/.cache/omen-bench)\n"
			"      --threads N        threads for the ground truth (default: CPUs)\n"
			"      --seed S           seed for sampling queries and rows to delete (default 1)\n"
			"\n"
			"Server:\n"
			"  -c, --conn CONNINFO    libpq connection string, e.g. \"host=/tmp port=5432 dbname=x\"\n"
			"                         (default: the PGHOST, PGPORT, ... environment)\n"
			"\n"
			"Index and search:\n"
			"  -i, --index SQL        CREATE INDEX statement, %%t stands for the table and %%c for\n"
			"                         the vector column, e.g.\n"
			"                         \"CREATE INDEX ON %%t USING omen_hnsw (v vector_l2_ops)\"\n"
			"      --use-index NAME   measure an index that exists on the table already\n"
			"  -s, --set NAME=VALUE   setting for every search session (repeatable), e.g.\n"
			"                         --set max_parallel_workers_per_gather=0\n"
			"  -S, --sweep NAME=V1,V2,...  measure once per value, e.g.\n"
			"                         --sweep omen.hnsw_ef_search=10,20,40,80\n"
			"  -C, --clients LIST     client counts, each a thread with its own connection\n"
			"                         (default 1,4)\n"
			"      --passes P         run the query list P times per measurement (default 1)\n"
			"      --warmup N         untimed queries per client before each measurement\n"
			"                         (default 10)\n"
			"      --warm-time S      a connection's first measurement of an index (or of the\n"
			"                         exact scan) with each setting, and in each stream round,\n"
			"                         starts with the query list once, untimed, for at most S\n"
			"                         seconds (default 10; 0: measure cold backends)\n"
			"      --exact-queries N  queries for the exact scan (default: --queries, at most 200)\n"
			"      --no-exact         skip the exact scan\n"
			"      --const-limit      LIMIT K written into the statement, not a parameter\n"
			"                         (with LIMIT $2 every execution is planned again)\n"
			"      --spin             wait for each result on a busy CPU, not asleep in poll():\n"
			"                         in a VM, waking a halted client CPU costs more than the\n"
			"                         round trip itself (the floor and searches both spin;\n"
			"                         a spinning client takes a whole CPU, so keep clients\n"
			"                         fewer than the CPUs the server does not use)\n"
			"      --no-floor         skip the round-trip floor\n"
			"      --label TEXT       name of the index in tables and plots\n"
			"                         (default: access method and options)\n"
			"\n"
			"Write workloads:\n"
			"      --rows N           insert: rows per phase (default 1000)\n"
			"      --rounds R         stream: rounds (default 5)\n"
			"      --fraction F       stream: share of rows replaced per round (default 0.1)\n"
			"\n"
			"Output:\n"
			"  -o, --json FILE        append one JSON line per measurement to FILE (- = stdout;\n"
			"                         the table then goes to stderr)\n"
			"  -p, --plot DIR         draw recall-qps.png / stream-recall.png into DIR (gnuplot)\n"
			"  -v, --verbose          print the EXPLAIN output of every measurement\n"
			"      --quiet            no progress lines\n"
			"  -h, --help             this text\n"
			"\n"
			"Recall@K is |returned ids among the true K nearest| / K, averaged over the\n"
			"queries; a returned row whose true distance ties the K-th nearest (within a\n"
			"relative 1e-5) counts as correct.  Latencies are client-side (CLOCK_MONOTONIC\n"
			"around each prepared statement execution); p50/p99 are nearest-rank.\n"
			"\n"
			"Examples:\n"
			"  omen-bench exact --queries 200 --clients 1\n"
			"  omen-bench run -d synth:n=1m,dim=128 \\\n"
			"      --index \"CREATE INDEX ON %%t USING omen_hnsw (v vector_l2_ops) WITH (m=16)\" \\\n"
			"      --sweep omen.hnsw_ef_search=10,20,40,80 --json results.jsonl --plot plots\n"
			"  omen-bench stream -d synth:n=100k,dim=128 --index \"...\" --rounds 10 --plot plots\n"
			"  omen-bench plot a.jsonl b.jsonl --plot plots\n"
			"scripts/bench.sh ARGS... runs omen-bench ARGS... against a throwaway server.\n");
}

/* Parse a positive integer option or exit */
static long long
PositiveInt(const char *opt, const char *s, long long max)
{
	char	   *end;
	long long	v = strtoll(s, &end, 10);

	if (end == s || *end != '\0' || v < 1 || v > max)
		ob_usage_error("%s wants a whole number from 1 to %lld, not \"%s\"", opt, max, s);
	return v;
}

/* Split NAME=VALUE; exits on a malformed one */
static void
SplitSetting(const char *opt, const char *s, char **name, char **value)
{
	const char *eq = strchr(s, '=');

	if (eq == NULL || eq == s)
		ob_usage_error("%s wants NAME=VALUE, not \"%s\"", opt, s);
	*name = ob_strdup(s);
	(*name)[eq - s] = '\0';
	*value = ob_strdup(eq + 1);
}

/* Parse the command line into opt */
static void
ParseArgs(int argc, char **argv, Options *opt)
{
	enum
	{
		OPT_NAME = 1000, OPT_IN_PLACE, OPT_RELOAD, OPT_CACHE, OPT_THREADS, OPT_SEED,
		OPT_USE_INDEX, OPT_PASSES, OPT_WARMUP, OPT_WARM_TIME, OPT_EXACTQ, OPT_NO_EXACT, OPT_NO_FLOOR, OPT_CONST_LIMIT, OPT_SPIN,
		OPT_LABEL, OPT_ROWS, OPT_ROUNDS, OPT_FRACTION, OPT_QUIET
	};
	static const struct option longopts[] = {
		{"dataset", required_argument, NULL, 'd'},
		{"queries", required_argument, NULL, 'q'},
		{"k", required_argument, NULL, 'k'},
		{"metric", required_argument, NULL, 'm'},
		{"name", required_argument, NULL, OPT_NAME},
		{"in-place", no_argument, NULL, OPT_IN_PLACE},
		{"reload", no_argument, NULL, OPT_RELOAD},
		{"cache-dir", required_argument, NULL, OPT_CACHE},
		{"threads", required_argument, NULL, OPT_THREADS},
		{"seed", required_argument, NULL, OPT_SEED},
		{"conn", required_argument, NULL, 'c'},
		{"index", required_argument, NULL, 'i'},
		{"use-index", required_argument, NULL, OPT_USE_INDEX},
		{"set", required_argument, NULL, 's'},
		{"sweep", required_argument, NULL, 'S'},
		{"clients", required_argument, NULL, 'C'},
		{"passes", required_argument, NULL, OPT_PASSES},
		{"warmup", required_argument, NULL, OPT_WARMUP},
		{"warm-time", required_argument, NULL, OPT_WARM_TIME},
		{"exact-queries", required_argument, NULL, OPT_EXACTQ},
		{"no-exact", no_argument, NULL, OPT_NO_EXACT},
		{"const-limit", no_argument, NULL, OPT_CONST_LIMIT},
		{"spin", no_argument, NULL, OPT_SPIN},
		{"no-floor", no_argument, NULL, OPT_NO_FLOOR},
		{"label", required_argument, NULL, OPT_LABEL},
		{"rows", required_argument, NULL, OPT_ROWS},
		{"rounds", required_argument, NULL, OPT_ROUNDS},
		{"fraction", required_argument, NULL, OPT_FRACTION},
		{"json", required_argument, NULL, 'o'},
		{"plot", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, OPT_QUIET},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	static const struct
	{
		const char *name;
		Command		cmd;
	}			cmds[] = {
		{"run", CMD_RUN}, {"exact", CMD_EXACT}, {"floor", CMD_FLOOR}, {"load", CMD_LOAD},
		{"gt", CMD_GT}, {"insert", CMD_INSERT}, {"stream", CMD_STREAM}, {"plot", CMD_PLOT},
		{"clean", CMD_CLEAN}
	};
	int			c,
				i;
	bool		have_cmd = false;
	const char *clients = "1,4";
	char	   *copy,
			   *tok,
			   *save;
	const char *exactq = NULL;

	memset(opt, 0, sizeof(*opt));
	opt->dataset = "fmnist";
	opt->conninfo = "";
	opt->nqueries = 1000;
	opt->k = 10;
	opt->metric = OB_L2;
	opt->threads = ob_ncpus();
	opt->seed = 1;
	opt->passes = 1;
	opt->warmup = 10;
	opt->warm_time = 10;
	opt->rows = 1000;
	opt->rounds = 5;
	opt->fraction = 0.1;
	opt->files = ob_calloc(argc + 1, sizeof(char *));

	while ((c = getopt_long(argc, argv, "-d:q:k:m:c:i:s:S:C:o:p:vh", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 1:				/* a non-option: the command, or a plot input */
				if (!have_cmd)
				{
					for (i = 0; i < (int) (sizeof(cmds) / sizeof(cmds[0])); i++)
						if (strcmp(optarg, cmds[i].name) == 0)
						{
							opt->cmd = cmds[i].cmd;
							opt->cmdname = cmds[i].name;
							have_cmd = true;
						}
					if (!have_cmd)
						ob_usage_error("unknown command \"%s\" (commands: run, exact, floor, load, gt, insert, stream, plot, clean)", optarg);
				}
				else if (opt->cmd == CMD_PLOT)
					opt->files[opt->nfiles++] = optarg;
				else
					ob_usage_error("unexpected argument \"%s\"", optarg);
				break;
			case 'd':
				opt->dataset = optarg;
				break;
			case 'q':
				opt->nqueries = (size_t) PositiveInt("--queries", optarg, 10000000);
				break;
			case 'k':
				opt->k = (int) PositiveInt("--k", optarg, OB_GT_DEPTH);
				break;
			case 'm':
				if (ob_parse_metric(optarg, &opt->metric) < 0)
					ob_usage_error("unknown metric \"%s\": use l2, ip or cosine", optarg);
				break;
			case OPT_NAME:
				opt->name = optarg;
				for (i = 0; optarg[i]; i++)
					if (!((optarg[i] >= 'a' && optarg[i] <= 'z') ||
						  (optarg[i] >= '0' && optarg[i] <= '9') || optarg[i] == '_'))
						ob_usage_error("--name wants lower-case letters, digits and _, not \"%s\"", optarg);
				if (i == 0 || i > 40)
					ob_usage_error("--name wants 1 to 40 characters");
				break;
			case OPT_IN_PLACE:
				opt->in_place = true;
				break;
			case OPT_RELOAD:
				opt->reload = true;
				break;
			case OPT_CACHE:
				opt->cache_dir = optarg;
				break;
			case OPT_THREADS:
				opt->threads = (int) PositiveInt("--threads", optarg, 1024);
				break;
			case OPT_SEED:
				opt->seed = (uint64_t) PositiveInt("--seed", optarg, INT64_MAX);
				break;
			case 'c':
				opt->conninfo = optarg;
				break;
			case 'i':
				opt->index_sql = optarg;
				break;
			case OPT_USE_INDEX:
				opt->use_index = optarg;
				break;
			case 's':
				if (opt->nsettings == MAX_SETTINGS)
					ob_usage_error("too many --set options");
				SplitSetting("--set", optarg, &opt->settings[opt->nsettings].name,
							 &opt->settings[opt->nsettings].value);
				opt->nsettings++;
				break;
			case 'S':
				{
					char	   *values;

					if (opt->sweep_name)
						ob_usage_error("only one --sweep per run (run again for another setting)");
					SplitSetting("--sweep", optarg, &opt->sweep_name, &values);
					opt->sweep_values = ob_calloc(strlen(values) + 2, sizeof(char *));
					for (tok = strtok_r(values, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
						opt->sweep_values[opt->nsweep++] = tok;
					if (opt->nsweep == 0)
						ob_usage_error("--sweep %s= has no values", opt->sweep_name);
					break;
				}
			case 'C':
				clients = optarg;
				break;
			case OPT_PASSES:
				opt->passes = (int) PositiveInt("--passes", optarg, 1000);
				break;
			case OPT_WARMUP:
				opt->warmup = strcmp(optarg, "0") == 0 ? 0 :
					(int) PositiveInt("--warmup", optarg, 1000000);
				break;
			case OPT_WARM_TIME:
				{
					char	   *end;

					opt->warm_time = strtod(optarg, &end);
					if (end == optarg || *end || !(opt->warm_time >= 0 && opt->warm_time <= 86400))
						ob_usage_error("--warm-time wants seconds, not \"%s\"", optarg);
					break;
				}
			case OPT_EXACTQ:
				exactq = optarg;
				break;
			case OPT_NO_EXACT:
				opt->no_exact = true;
				break;
			case OPT_CONST_LIMIT:
				opt->const_limit = true;
				break;
			case OPT_SPIN:
				opt->spin = true;
				break;
			case OPT_NO_FLOOR:
				opt->no_floor = true;
				break;
			case OPT_LABEL:
				opt->label = optarg;
				break;
			case OPT_ROWS:
				opt->rows = (size_t) PositiveInt("--rows", optarg, 100000000);
				break;
			case OPT_ROUNDS:
				opt->rounds = (int) PositiveInt("--rounds", optarg, 10000);
				break;
			case OPT_FRACTION:
				{
					char	   *end;

					opt->fraction = strtod(optarg, &end);
					if (end == optarg || *end || !(opt->fraction > 0 && opt->fraction <= 1))
						ob_usage_error("--fraction wants a number in (0, 1], not \"%s\"", optarg);
					break;
				}
			case 'o':
				if (strcmp(optarg, "-") == 0)
					opt->json_stdout = true;
				else
					opt->json_path = optarg;
				break;
			case 'p':
				opt->plot_dir = optarg;
				break;
			case 'v':
				opt->verbose = true;
				break;
			case OPT_QUIET:
				ob_quiet = true;
				break;
			case 'h':
				Usage(stdout);
				exit(0);
			default:
				fprintf(stderr, "%s --help shows the options\n", ob_progname);
				exit(2);
		}
	}
	if (!have_cmd)
		ob_usage_error("no command given (run, exact, floor, load, gt, insert, stream, plot, clean)");

	copy = ob_strdup(clients);
	opt->clients = ob_calloc(strlen(clients) + 1, sizeof(int));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		opt->clients[opt->nclients++] = (int) PositiveInt("--clients", tok, 1000);
	if (opt->nclients == 0)
		ob_usage_error("--clients wants a list like 1,4");

	opt->exact_queries = exactq ? (size_t) PositiveInt("--exact-queries", exactq, 10000000) :
		(opt->nqueries < 200 ? opt->nqueries : 200);
	if (opt->exact_queries > opt->nqueries)
		opt->exact_queries = opt->nqueries;
	if (opt->index_sql && opt->use_index)
		ob_usage_error("give --index (build one) or --use-index (take one), not both");
	if (opt->cmd == CMD_PLOT && (opt->nfiles == 0 || opt->plot_dir == NULL))
		ob_usage_error("plot wants JSON lines files and --plot DIR: omen-bench plot results.jsonl --plot plots");
	if ((opt->cmd == CMD_INSERT || opt->cmd == CMD_STREAM) && opt->in_place)
		ob_usage_error("%s changes the table, so it never runs --in-place on yours: leave out --in-place to work on a copy",
					   opt->cmdname);
	if (opt->cache_dir == NULL)
	{
		const char *env = getenv("OMEN_BENCH_CACHE");
		const char *home = getenv("HOME");

		if (env && *env)
			opt->cache_dir = env;
		else
			opt->cache_dir = ob_psprintf("%s/.cache/omen-bench", home && *home ? home : ".");
	}
}

/* Shared fields of every JSON line of a run */
static void
JsonCommon(Ctx *c, ObJson *j, const char *kind)
{
	ob_json_begin(j, kind);
	ob_json_str(j, "dataset", c->ds.name);
	if (c->ds.n > 0)
	{
		/* known once the data is read (the server line comes before) */
		ob_json_int(j, "n", (long long) c->ds.n);
		ob_json_int(j, "dim", c->ds.dim);
	}
	ob_json_str(j, "metric", ob_metric_name(c->opt->metric));
	if (c->table)
		ob_json_str(j, "table", c->table);
}

/* "12.3 MB" */
static const char *
Bytes(int64_t b)
{
	static char bufs[4][32];
	static int	next = 0;
	char	   *buf = bufs[next++ % 4];

	if (b < 0)
		snprintf(buf, 32, "?");
	else if (b < 10 * 1024)
		snprintf(buf, 32, "%lld bytes", (long long) b);
	else if (b < 10 * 1024 * 1024)
		snprintf(buf, 32, "%.0f kB", b / 1024.0);
	else if (b < 10LL * 1024 * 1024 * 1024)
		snprintf(buf, 32, "%.0f MB", b / 1048576.0);
	else
		snprintf(buf, 32, "%.1f GB", b / 1073741824.0);
	return buf;
}

/* Pick nq distinct rows of n (seeded partial Fisher-Yates), in pick order */
static size_t *
SampleRows(size_t n, size_t nq, uint64_t seed)
{
	size_t	   *perm = ob_malloc(sizeof(size_t) * n);
	size_t	   *out = ob_malloc(sizeof(size_t) * nq + 1);
	ObRng		rng;
	size_t		i;

	ob_rng_seed(&rng, seed);
	for (i = 0; i < n; i++)
		perm[i] = i;
	for (i = 0; i < nq; i++)
	{
		size_t		j = i + (size_t) (ob_rng_next(&rng) % (n - i));
		size_t		t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
		out[i] = perm[i];
	}
	free(perm);
	return out;
}

/* Connect once, check the vector type, print what the server is */
static void
Connect(Ctx *c)
{
	ObJson		j;
	const char *names[] = {"server_version", "shared_buffers", "work_mem",
		"maintenance_work_mem", "max_parallel_workers_per_gather", "jit",
	"wal_consistency_checking", "fsync"};
	char		line[1024];
	char	   *simd;
	int			i;

	if (c->conn)
		return;
	c->conn = ob_connect(c->opt->conninfo);
	ob_check_vector_type(c->conn);
	simd = NULL;
	if (ob_query_value(c->conn, "SELECT to_regproc('omen_simd_level')") != NULL)
		simd = ob_query_value(c->conn, "SELECT omen_simd_level()");

	JsonCommon(c, &j, "server");
	snprintf(line, sizeof(line), "server: %s", ob_conn_describe(c->conn));
	for (i = 0; i < (int) (sizeof(names) / sizeof(names[0])); i++)
	{
		const char *p[1] = {names[i]};
		char	   *v = ob_query_value_params(c->conn, "SELECT current_setting($1, true)", 1, p);

		ob_json_str(&j, names[i], v);
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s %s=%s",
				 i == 0 ? "," : "", i == 0 ? "PostgreSQL" : names[i], v ? v : "?");
		free(v);
	}
	if (simd)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), " omen_simd_level=%s", simd);
	ob_json_str(&j, "omen_simd_level", simd);
	ob_json_str(&j, "tool_simd_level", omen_kernels->name);
	ob_json_end(&j);
	ob_json_emit(&j);
	fprintf(ob_table_out(), "%s\n", line);
	c->server_line = ob_strdup(line);
	free(simd);
}

/* Parse the dataset spec (no data read yet) */
static void
ParseDataset(Ctx *c)
{
	Options    *opt = c->opt;
	ObDataset  *ds = &c->ds;
	char		err[512];

	if (ob_dataset_parse(ds, opt->dataset, err, sizeof(err)) < 0)
		ob_usage_error("%s", err);
	if (opt->name)
		snprintf(ds->name, sizeof(ds->name), "%s", opt->name);
	if (opt->in_place && ds->kind != OB_DATA_TABLE)
		ob_usage_error("--in-place is for table:... datasets (the others are always loaded into omen_bench_NAME)");
}

/* Read or generate the dataset and its queries */
static void
PrepareDataset(Ctx *c)
{
	Options    *opt = c->opt;
	ObDataset  *ds = &c->ds;
	double		t0 = ob_now();

	if (ds->kind == OB_DATA_TABLE)
	{
		Connect(c);
		ob_read_table(c->conn, ds->src_table, ds->src_column, ds->src_id,
					  &ds->ids, &ds->base, &ds->n, &ds->dim);
		if (ds->q_table)
		{
			int64_t    *qids;
			int			qdim;

			ob_read_table(c->conn, ds->q_table, ds->q_column, ds->src_id,
						  &qids, &ds->queries, &ds->nq, &qdim);
			if (qdim != ds->dim)
				ob_die("query vectors in %s.%s have %d dimensions, the table's have %d",
					   ds->q_table, ds->q_column, qdim, ds->dim);
			if (ds->nq > opt->nqueries)
				ds->nq = opt->nqueries;
			free(qids);
		}
		else
		{
			size_t		nq = opt->nqueries < ds->n ? opt->nqueries : ds->n;
			size_t	   *pick = SampleRows(ds->n, nq, opt->seed);
			size_t		i;

			ds->nq = nq;
			ds->queries = ob_malloc(sizeof(float) * nq * ds->dim + 1);
			for (i = 0; i < nq; i++)
				memcpy(ds->queries + i * ds->dim, ds->base + pick[i] * ds->dim,
					   sizeof(float) * ds->dim);
			free(pick);
		}
		ds->base_hash = ob_hash_floats(ds->base, ds->n * (size_t) ds->dim);
		ds->base_hash = ob_hash_bytes(ds->base_hash, ds->ids, sizeof(int64_t) * ds->n);
	}
	else
	{
		ob_dataset_load_files(ds, opt->nqueries, opt->seed);
		if (ds->kind == OB_DATA_SYNTH)
			ob_note("generated %zu x %d synthetic rows and %zu queries in %.1f s",
					ds->n, ds->dim, ds->nq, ob_now() - t0);
	}
	if (ds->nq < opt->nqueries)
		ob_note("dataset %s has %zu queries; using those", ds->name, ds->nq);
	if (opt->exact_queries > ds->nq)
		opt->exact_queries = ds->nq;
	c->depth = ds->n < OB_GT_DEPTH ? (int) ds->n : OB_GT_DEPTH;
	if (opt->k > c->depth)
		ob_usage_error("--k %d is more than the %zu rows of the dataset", opt->k, ds->n);
	c->ids_are_rows = !(opt->in_place);
}

/* The ground truth of the dataset: from the cache, or computed and cached */
static void
GroundTruth(Ctx *c)
{
	ObDataset  *ds = &c->ds;
	char	   *key = ob_psprintf("%s metric=%s depth=%d ids=%s", ds->desc,
								  ob_metric_name(c->opt->metric), c->depth,
								  c->ids_are_rows ? "rows" : "table");
	char	   *path;
	double		t0 = ob_now();
	ObJson		j;
	bool		cached;

	cached = ob_gt_cache_load(&c->gt, c->opt->cache_dir, key, ds->base_hash,
							  ds->queries, ds->nq, ds->dim, c->depth, &path) == 1;
	if (!cached)
	{
		free(path);
		ob_gt_compute(&c->gt, c->opt->metric, ds->dim, ds->base,
					  c->ids_are_rows ? NULL : ds->ids, NULL, ds->n,
					  ds->queries, ds->nq, c->depth, c->opt->threads, true);
		if (ob_gt_cache_save(&c->gt, c->opt->cache_dir, key, ds->base_hash,
							 ds->queries, ds->dim, &path) < 0)
			ob_warn("cannot write the ground truth cache %s: %m (use --cache-dir DIR); going on", path);
	}
	fprintf(ob_table_out(), "ground truth: top %d of %zu queries over %zu rows (%s), %s %s (%.1f s)\n",
			c->depth, ds->nq, ds->n, ob_metric_name(c->opt->metric),
			cached ? "cached in" : "computed with omen's kernels, saved to",
			path, ob_now() - t0);
	JsonCommon(c, &j, "gt");
	ob_json_int(&j, "queries", (long long) ds->nq);
	ob_json_int(&j, "depth", c->depth);
	ob_json_bool(&j, "cached", cached);
	ob_json_num(&j, "seconds", ob_now() - t0);
	ob_json_int(&j, "threads", c->opt->threads);
	ob_json_str(&j, "cache_file", path);
	ob_json_end(&j);
	ob_json_emit(&j);
	free(path);
	free(key);
}

/* The marker comment of a pristine table holding this dataset */
static char *
ExpectedComment(Ctx *c)
{
	return ob_psprintf("%s %s base=%016llx rows=%zu", OB_COMMENT_TAG, c->ds.desc,
					   (unsigned long long) c->ds.base_hash, c->ds.n);
}

/*
 * Make omen_bench_<name> hold the dataset: reuse it if its comment says it
 * does (and nothing changed it since), otherwise (re)create and load it.
 * In --in-place mode, use the user's table as it is.
 */
static void
EnsureTable(Ctx *c)
{
	ObTableState st;
	char	   *expect;
	ObJson		j;
	double		t0,
				load_s,
				pk_s,
				vac_s;
	char	   *sql;

	Connect(c);
	if (c->opt->in_place)
	{
		const char *p[1] = {c->ds.src_table};

		c->table = ob_query_value_params(c->conn, "SELECT to_regclass($1)::text", 1, p);
		c->qtable = ob_strdup(c->table);
		c->qvcol = ob_quote_ident(c->conn, c->ds.src_column);
		c->qidcol = ob_quote_ident(c->conn, c->ds.src_id);
		fprintf(ob_table_out(), "table %s: yours, queried in place (omen-bench only reads it)\n", c->table);
		return;
	}
	c->table = ob_psprintf(OB_TABLE_PREFIX "%s", c->ds.name);
	c->qtable = ob_quote_ident(c->conn, c->table);
	c->qvcol = ob_strdup("v");
	c->qidcol = ob_strdup("id");
	expect = ExpectedComment(c);
	ob_table_state(c->conn, c->table, &st);
	if (st.exists && !st.ours)
		ob_die("table %s exists but omen-bench did not create it (no \"%s\" comment), so it is left alone: drop it yourself or pick another name with --name",
			   c->table, OB_COMMENT_TAG);
	if (st.exists && !c->opt->reload && strcmp(st.comment, expect) == 0)
	{
		char	   *cnt;

		sql = ob_psprintf("SELECT count(*) FROM %s", c->qtable);
		cnt = ob_query_value(c->conn, sql);
		free(sql);
		if (cnt && (size_t) atoll(cnt) == c->ds.n)
		{
			fprintf(ob_table_out(), "table %s: already holds this dataset (%zu rows, %s); reusing it (--reload loads it again)\n",
					c->table, c->ds.n, Bytes(ob_relation_size(c->conn, "pg_table_size", c->table)));
			free(cnt);
			free(expect);
			return;
		}
		free(cnt);
	}
	if (st.exists)
	{
		ob_table_drop(c->conn, c->table);
		fprintf(ob_table_out(), "table %s: dropped (omen-bench made it; %s)\n", c->table,
				c->opt->reload ? "--reload" : "it held other or changed data");
	}
	ob_table_create(c->conn, c->table, c->ds.dim, ob_psprintf("%s loading", OB_COMMENT_TAG));
	fprintf(ob_table_out(), "table %s: created by omen-bench (id int PRIMARY KEY, v vector(%d)) WITH (toast_tuple_target = 8160)\n",
			c->table, c->ds.dim);
	load_s = ob_copy_load(c->conn, c->table, c->ds.base, NULL, c->ds.n, c->ds.dim, 0);
	t0 = ob_now();
	ob_progress("adding the primary key");
	sql = ob_psprintf("ALTER TABLE %s ADD PRIMARY KEY (id)", c->qtable);
	ob_exec(c->conn, sql);
	free(sql);
	pk_s = ob_now() - t0;
	t0 = ob_now();
	ob_progress("VACUUM ANALYZE");
	sql = ob_psprintf("VACUUM ANALYZE %s", c->qtable);
	ob_exec(c->conn, sql);
	free(sql);
	vac_s = ob_now() - t0;
	ob_progress_done();
	ob_table_set_comment(c->conn, c->table, expect);
	fprintf(ob_table_out(), "table %s: loaded %zu rows with COPY in %.1f s (%.0f rows/s); primary key %.1f s, VACUUM ANALYZE %.1f s; heap %s, total %s\n",
			c->table, c->ds.n, load_s, c->ds.n / load_s, pk_s, vac_s,
			Bytes(ob_relation_size(c->conn, "pg_table_size", c->table)),
			Bytes(ob_relation_size(c->conn, "pg_total_relation_size", c->table)));
	JsonCommon(c, &j, "load");
	ob_json_int(&j, "rows", (long long) c->ds.n);
	ob_json_num(&j, "seconds", load_s);
	ob_json_num(&j, "rows_per_s", c->ds.n / load_s);
	ob_json_num(&j, "primary_key_s", pk_s);
	ob_json_num(&j, "vacuum_analyze_s", vac_s);
	ob_json_int(&j, "table_bytes", ob_relation_size(c->conn, "pg_table_size", c->table));
	ob_json_int(&j, "total_bytes", ob_relation_size(c->conn, "pg_total_relation_size", c->table));
	ob_json_end(&j);
	ob_json_emit(&j);
	free(expect);
}

/* Mark our table as changed, so the next run loads it again */
static void
MarkChanged(Ctx *c, const char *why)
{
	char	   *comment = ob_psprintf("%s changed by %s; the next run loads it again", OB_COMMENT_TAG, why);

	ob_table_set_comment(c->conn, c->table, comment);
	free(comment);
}

/* The query vectors as text, and the search statement */
static void
PrepareQueries(Ctx *c)
{
	size_t		i;
	size_t		len = ob_vector_text_max(c->ds.dim);
	char	   *buf = ob_malloc(len);

	c->qtext = ob_malloc(sizeof(char *) * c->ds.nq + 1);
	for (i = 0; i < c->ds.nq; i++)
	{
		ob_format_vector(buf, c->ds.queries + i * c->ds.dim, c->ds.dim);
		c->qtext[i] = ob_strdup(buf);
	}
	free(buf);
	if (c->opt->const_limit)
		c->search_sql = ob_psprintf("SELECT %s FROM %s ORDER BY %s %s $1 LIMIT %d",
									c->qidcol, c->qtable, c->qvcol,
									ob_metric_op(c->opt->metric), c->opt->k);
	else
		c->search_sql = ob_psprintf("SELECT %s FROM %s ORDER BY %s %s $1 LIMIT $2",
									c->qidcol, c->qtable, c->qvcol,
									ob_metric_op(c->opt->metric));
}

/* The query texts repeated to n entries (pointers only) */
static char **
Repeat(char **texts, size_t ntexts, size_t n)
{
	char	  **out = ob_malloc(sizeof(char *) * n + 1);
	size_t		i;

	for (i = 0; i < n; i++)
		out[i] = texts[i % ntexts];
	return out;
}

/*
 * Mean recall@k of a search run over total executions of queries
 * (execution i ran query i % nq), against gt; vecs/map give the true
 * distance of any returned id for the tie rule.
 */
static double
RunRecall(Ctx *c, const ObRunResult *res, size_t total, const ObGroundTruth *gt,
		  const float *vecs, const ObIdMap *map)
{
	int			k = c->opt->k;
	int			dim = c->ds.dim;
	float	   *rd = ob_malloc(sizeof(float) * k);
	double		sum = 0;
	size_t		i;

	for (i = 0; i < total; i++)
	{
		size_t		q = i % gt->nq;
		const int64_t *ret = res->ids + i * k;
		int			r;

		for (r = 0; r < res->nret[i]; r++)
		{
			long		row = ob_idmap_find(map, ret[r]);

			rd[r] = row >= 0 ? ob_distance(c->opt->metric, c->ds.queries + q * dim,
										   vecs + (size_t) row * dim, dim) : NAN;
		}
		sum += ob_recall_one(ret, res->nret[i], rd, gt->ids + q * gt->depth,
							 gt->dist + q * gt->depth, k);
	}
	free(rd);
	return total ? sum / total : 0;
}

/* Settings of a measurement: --set, then extra ones */
static ObSetting *
MergeSettings(Ctx *c, const ObSetting *extra, int nextra, int *n)
{
	ObSetting  *s = ob_malloc(sizeof(ObSetting) * (c->opt->nsettings + nextra + 1));

	memcpy(s, c->opt->settings, sizeof(ObSetting) * c->opt->nsettings);
	memcpy(s + c->opt->nsettings, extra, sizeof(ObSetting) * nextra);
	*n = c->opt->nsettings + nextra;
	return s;
}

/* Check every setting name and value the run will use, once, up front */
static void
CheckAllSettings(Ctx *c)
{
	int			i;

	ob_check_settings(c->conn, c->opt->settings, c->opt->nsettings);
	for (i = 0; i < c->opt->nsweep; i++)
	{
		ObSetting	s = {c->opt->sweep_name, c->opt->sweep_values[i]};

		ob_check_settings(c->conn, &s, 1);
	}
}

/* The round-trip floor: a prepared statement that takes the vector and does nothing */
static void
Floor(Ctx *c)
{
	size_t		total = c->ds.nq * c->opt->passes;
	char	  **texts;
	int			ci;

	if (total < 5000)
		total = 5000;
	texts = Repeat(c->qtext, c->ds.nq, total);
	for (ci = 0; ci < c->opt->nclients; ci++)
	{
		ObRunSpec	spec;
		ObRunResult res;
		ObJson		j;

		memset(&spec, 0, sizeof(spec));
		spec.mode = OB_RUN_FLOOR;
		spec.conninfo = c->opt->conninfo;
		spec.spin = c->opt->spin;
		spec.sql = "SELECT $1::vector IS NOT NULL";
		spec.qtext = texts;
		spec.nq = total;
		spec.clients = c->opt->clients[ci];
		spec.warmup = c->opt->warmup;
		spec.warm_key = "floor";
		spec.warm_seconds = c->opt->warm_time;
		spec.pool = c->pool;
		spec.settings = c->opt->settings;
		spec.nsettings = c->opt->nsettings;
		ob_progress("round-trip floor, %d client(s)", spec.clients);
		ob_run_queries(&spec, &res);
		ob_progress_done();
		ob_table_row("round trip (SELECT $1)", "", spec.clients, -1, res.qps, &res.lat, "-");
		JsonCommon(c, &j, "floor");
		ob_json_str(&j, "label", "round trip");
		ob_json_str(&j, "sql", spec.sql);
		ob_json_int(&j, "clients", spec.clients);
		ob_json_bool(&j, "spin", spec.spin);
		ob_json_int(&j, "statements", (long long) total);
		ob_json_num(&j, "seconds", res.seconds);
		ob_json_num(&j, "qps", res.qps);
		ob_json_num(&j, "p50_ms", res.lat.p50_ms);
		ob_json_num(&j, "p99_ms", res.lat.p99_ms);
		ob_json_num(&j, "mean_ms", res.lat.mean_ms);
		ob_json_end(&j);
		ob_json_emit(&j);
		ob_run_result_free(&res);
	}
	free(texts);
}

/*
 * One search measurement: nq queries (times --passes) with the settings,
 * over the given number of clients; prints the row, emits the JSON line,
 * checks the plan.  index is the index that should be used (NULL for the
 * exact scan, which must not use one).  Returns the recall.
 */
static double
Search(Ctx *c, const char *what, const char *label, const char *index, size_t nq, int clients,
	   const ObSetting *settings, int nsettings, const char *setting_text,
	   const ObGroundTruth *gt, const float *vecs, const ObIdMap *map,
	   const char *kind, int round, ObJson *extra)
{
	ObRunSpec	spec;
	ObRunResult res;
	size_t		total = nq * c->opt->passes;
	char	  **texts = Repeat(c->qtext, nq, total);
	double		recall;
	ObJson		j;
	char		plan[300];
	char		warm_key[300];
	bool		plan_ok;

	memset(&spec, 0, sizeof(spec));
	spec.mode = OB_RUN_SEARCH;
	spec.conninfo = c->opt->conninfo;
	spec.sql = c->search_sql;
	spec.qtext = texts;
	spec.nq = total;
	spec.k = c->opt->k;
	spec.const_limit = c->opt->const_limit;
	spec.spin = c->opt->spin;
	spec.clients = clients;
	spec.warmup = c->opt->warmup;
	/*
	 * Warm up once per index, setting and stream round: a wider search
	 * touches pages a narrower one did not, and a round changes the index
	 * (without this, each sweep value after the first and each round after
	 * the first measured first-touch faults too)
	 */
	snprintf(warm_key, sizeof(warm_key), "%s|%s|%d", index ? index : "exact",
			 setting_text ? setting_text : "", round);
	spec.warm_key = warm_key;
	spec.warm_seconds = c->opt->warm_time;
	spec.pool = c->pool;
	spec.settings = settings;
	spec.nsettings = nsettings;
	spec.explain = true;
	ob_progress("%s%s%s: %zu queries, %d client(s)", label, setting_text ? ", " : "",
				setting_text ? setting_text : "", total, clients);
	ob_run_queries(&spec, &res);
	ob_progress_done();
	recall = RunRecall(c, &res, total, gt, vecs, map);

	if (res.plan.uses_index)
		snprintf(plan, sizeof(plan), "%s using %s", res.plan.node, res.plan.index);
	else
		snprintf(plan, sizeof(plan), "%s", res.plan.node);
	plan_ok = index ? (res.plan.uses_index && strcmp(res.plan.index, index) == 0) :
		!res.plan.uses_index;
	ob_table_row(what, setting_text, clients, recall, res.qps, &res.lat, plan);
	if (!plan_ok && index)
		ob_warn("the plan does not use index %s (it is: %s), so this row measures that plan, not the index; check that the index's operator class matches --metric %s (%s), and see the plan with --verbose",
				index, plan, ob_metric_name(c->opt->metric), ob_metric_op(c->opt->metric));
	else if (!plan_ok)
		ob_warn("the exact-scan plan uses index %s: this row is not an exact scan", res.plan.index);
	if (c->opt->verbose)
		fprintf(ob_table_out(), "%s", res.plan.text);

	JsonCommon(c, &j, kind);
	ob_json_str(&j, "label", label);
	ob_json_str(&j, "index", index);
	ob_json_str(&j, "setting", setting_text);
	ob_json_int(&j, "clients", clients);
	ob_json_int(&j, "k", c->opt->k);
	ob_json_int(&j, "queries", (long long) nq);
	ob_json_int(&j, "passes", c->opt->passes);
	ob_json_bool(&j, "const_limit", c->opt->const_limit);
	ob_json_bool(&j, "spin", c->opt->spin);
	if (round >= 0)
		ob_json_int(&j, "round", round);
	ob_json_num(&j, "recall", recall);
	ob_json_num(&j, "qps", res.qps);
	ob_json_num(&j, "p50_ms", res.lat.p50_ms);
	ob_json_num(&j, "p99_ms", res.lat.p99_ms);
	ob_json_num(&j, "mean_ms", res.lat.mean_ms);
	ob_json_num(&j, "max_ms", res.lat.max_ms);
	ob_json_num(&j, "seconds", res.seconds);
	ob_json_str(&j, "plan", plan);
	ob_json_bool(&j, "index_used", res.plan.uses_index);
	ob_json_bool(&j, "plan_as_expected", plan_ok);
	if (extra && extra->buf && extra->len > 2)
	{
		/* splice extra fields: extra->buf is "{...}"-less field text */
		ObJson	   *e = extra;

		j.buf = ob_realloc(j.buf, j.len + e->len + 4);
		j.buf[j.len++] = ',';
		memcpy(j.buf + j.len, e->buf, e->len);
		j.len += e->len;
		j.buf[j.len] = '\0';
	}
	ob_json_end(&j);
	ob_json_emit(&j);
	ob_run_result_free(&res);
	free(texts);
	return recall;
}

/* Exact scans: index scans disabled, so the server compares every row */
static void
Exact(Ctx *c)
{
	ObSetting	off[] = {{"enable_indexscan", "off"}, {"enable_indexonlyscan", "off"},
	{"enable_bitmapscan", "off"}};
	int			n;
	ObSetting  *s = MergeSettings(c, off, 3, &n);
	ObIdMap		map;
	int			ci;

	ob_idmap_build(&map, c->ids_are_rows ? NULL : c->ds.ids, c->ds.n);
	for (ci = 0; ci < c->opt->nclients; ci++)
		Search(c, "exact", "exact", NULL, c->opt->exact_queries, c->opt->clients[ci], s, n, NULL,
			   &c->gt, c->ds.base, &map, "query", -1, NULL);
	ob_idmap_free(&map);
	free(s);
}

/* "omen_hnsw (m=16)": the index's access method and options */
static char *
IndexLabel(Ctx *c, const char *index)
{
	const char *p[1] = {index};
	char	   *am = ob_query_value_params(c->conn,
										   "SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = to_regclass($1)",
										   1, p);
	char	   *opts = ob_query_value_params(c->conn,
											 "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = to_regclass($1)",
											 1, p);
	char	   *label = ob_psprintf("%s%s%s%s", am ? am : "index", opts && *opts ? " (" : "",
									opts && *opts ? opts : "", opts && *opts ? ")" : "");

	free(am);
	free(opts);
	return label;
}

/* Replace %t (table), %c (vector column) and %% in a --index statement */
static char *
ExpandIndexSql(Ctx *c, const char *tmpl)
{
	size_t		cap = strlen(tmpl) + strlen(c->qtable) * 8 + 64;
	char	   *out = ob_malloc(cap);
	char	   *p = out;
	const char *s;
	bool		has_t = false;

	for (s = tmpl; *s; s++)
	{
		const char *rep = NULL;

		if (s[0] == '%' && s[1] == 't')
		{
			rep = c->qtable;
			has_t = true;
		}
		else if (s[0] == '%' && s[1] == 'c')
			rep = c->qvcol;
		else if (s[0] == '%' && s[1] == '%')
			rep = "%";
		if (rep)
		{
			size_t		n = strlen(rep);

			if ((size_t) (p - out) + n + strlen(s) + 1 > cap)
			{
				size_t		off = p - out;

				cap = cap * 2 + n;
				out = ob_realloc(out, cap);
				p = out + off;
			}
			memcpy(p, rep, n);
			p += n;
			s++;
		}
		else
			*p++ = *s;
	}
	*p = '\0';
	if (!has_t)
		ob_usage_error("the --index statement must name the table as %%t, e.g. \"CREATE INDEX ON %%t USING omen_hnsw (v vector_l2_ops)\"");
	return out;
}

/*
 * The index to measure: build it from --index (after dropping indexes left
 * on our table by earlier runs) or check --use-index.  Returns its name, or
 * NULL if neither was given.
 */
static char *
PrepareIndex(Ctx *c)
{
	char	   *name = NULL;
	ObJson		j;

	if (c->opt->index_sql)
	{
		char	   *sql;
		char	  **old;
		int			nold,
					i;
		double		secs;
		char	   *def;
		const char *p[1];

		if (c->opt->in_place)
			ob_usage_error("--index would change your table %s: leave out --in-place to work on a copy, or measure an existing index with --use-index NAME",
						   c->table);
		sql = ExpandIndexSql(c, c->opt->index_sql);
		ob_table_indexes(c->conn, c->table, &old, &nold);
		for (i = 0; i < nold; i++)
		{
			char	   *qi = ob_quote_ident(c->conn, old[i]);
			char	   *drop = ob_psprintf("DROP INDEX %s", qi);

			ob_exec(c->conn, drop);
			fprintf(ob_table_out(), "index %s: dropped (left on %s by an earlier run)\n", old[i], c->table);
			free(drop);
			free(qi);
			free(old[i]);
		}
		free(old);
		secs = ob_build_index(c->opt->conninfo, c->conn, sql, c->table, &name);

		/*
		 * Write the build's dirty pages now: otherwise the checkpointer
		 * writes them while the queries are timed (spread over minutes),
		 * and measured QPS drifts down by a quarter.  Needs superuser or
		 * pg_checkpoint; without, say so and go on.
		 */
		{
			PGresult   *res = PQexec(c->conn, "CHECKPOINT");

			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				fprintf(ob_table_out(), "note: CHECKPOINT after the build failed (%s); the build's writes may overlap the measurements\n",
						PQresultErrorMessage(res));
			PQclear(res);
		}
		p[0] = name;
		def = ob_query_value_params(c->conn, "SELECT pg_get_indexdef(to_regclass($1))", 1, p);
		fprintf(ob_table_out(), "index %s: built in %.1f s, %s (table heap %s, total with indexes %s)\n  %s\n",
				name, secs, Bytes(ob_relation_size(c->conn, "pg_relation_size", name)),
				Bytes(ob_relation_size(c->conn, "pg_table_size", c->table)),
				Bytes(ob_relation_size(c->conn, "pg_total_relation_size", c->table)), def);
		JsonCommon(c, &j, "build");
		ob_json_str(&j, "index", name);
		ob_json_str(&j, "label", c->opt->label ? c->opt->label : IndexLabel(c, name));
		ob_json_str(&j, "sql", sql);
		ob_json_str(&j, "definition", def);
		ob_json_num(&j, "seconds", secs);
		ob_json_num(&j, "rows_per_s", c->ds.n / secs);
		ob_json_int(&j, "index_bytes", ob_relation_size(c->conn, "pg_relation_size", name));
		ob_json_int(&j, "table_bytes", ob_relation_size(c->conn, "pg_table_size", c->table));
		ob_json_int(&j, "total_bytes", ob_relation_size(c->conn, "pg_total_relation_size", c->table));
		ob_json_end(&j);
		ob_json_emit(&j);
		free(def);
		free(sql);
	}
	else if (c->opt->use_index)
	{
		const char *p[2] = {c->opt->use_index, c->table};
		char	   *found = ob_query_value_params(c->conn,
												  "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
												  "WHERE i.indexrelid = to_regclass($1) AND i.indrelid = to_regclass($2)",
												  2, p);

		if (found == NULL)
			ob_die("index \"%s\" does not exist on table %s: \\d %s lists its indexes; or build one with --index \"CREATE INDEX ON %%t USING ...\"",
				   c->opt->use_index, c->table, c->table);
		name = found;
		fprintf(ob_table_out(), "index %s: using it as it is, %s\n", name,
				Bytes(ob_relation_size(c->conn, "pg_relation_size", name)));
	}
	return name;
}

/* The sweep over the index: each value of --sweep (or none) x each client count */
static void
Sweep(Ctx *c, const char *index)
{
	char	   *label = c->opt->label ? ob_strdup(c->opt->label) : IndexLabel(c, index);
	ObIdMap		map;
	int			v,
				ci;
	int			nvals = c->opt->nsweep > 0 ? c->opt->nsweep : 1;

	ob_idmap_build(&map, c->ids_are_rows ? NULL : c->ds.ids, c->ds.n);
	for (v = 0; v < nvals; v++)
	{
		ObSetting	sw;
		ObSetting  *s;
		int			n;
		char	   *text = NULL;

		if (c->opt->nsweep > 0)
		{
			sw.name = c->opt->sweep_name;
			sw.value = c->opt->sweep_values[v];
			s = MergeSettings(c, &sw, 1, &n);
			text = ob_psprintf("%s=%s", sw.name, sw.value);
		}
		else
			s = MergeSettings(c, NULL, 0, &n);
		for (ci = 0; ci < c->opt->nclients; ci++)
			Search(c, label, label, index, c->ds.nq, c->opt->clients[ci], s, n, text,
				   &c->gt, c->ds.base, &map, "query", -1, NULL);
		free(s);
		free(text);
	}
	ob_idmap_free(&map);
	free(label);
}

/*
 * The new vectors for ids first..first+count-1: fresh rows for a synthetic
 * dataset; otherwise copies of src rows reuse[i]; without reuse, the
 * dataset's spare rows (Fashion-MNIST's test images that are not queries,
 * so inserts add new vectors, not duplicates an index may only link to),
 * cycling, or else copies of base rows cycling from first.
 */
static float *
NewRows(Ctx *c, size_t first, size_t count, const float *src, const uint32_t *reuse)
{
	float	   *v = ob_malloc(sizeof(float) * count * c->ds.dim + 1);
	size_t		i;

	for (i = 0; i < count; i++)
	{
		float	   *out = v + i * c->ds.dim;

		if (c->ds.kind == OB_DATA_SYNTH)
			ob_synth_row(&c->ds.synth, OB_SYNTH_BASE, first + i, out);
		else
			memcpy(out, reuse ? src + (size_t) reuse[i] * c->ds.dim :
				   c->ds.nspare > 0 ?
				   c->ds.spare + ((first + i) % c->ds.nspare) * c->ds.dim :
				   c->ds.base + ((first + i) % c->ds.n) * c->ds.dim,
				   sizeof(float) * c->ds.dim);
	}
	return v;
}

/*
 * Insert count rows with single-row INSERTs over clients connections;
 * returns the run result (rows per second in qps).
 */
static void
InsertRows(Ctx *c, const int64_t *ids, const float *vecs, size_t count, int clients,
		   ObRunResult *res)
{
	ObRunSpec	spec;
	char	  **texts = ob_malloc(sizeof(char *) * count + 1);
	char	   *buf = ob_malloc(ob_vector_text_max(c->ds.dim));
	char	   *sql = ob_psprintf("INSERT INTO %s (id, v) VALUES ($1, $2)", c->qtable);
	size_t		i;

	for (i = 0; i < count; i++)
	{
		ob_format_vector(buf, vecs + i * c->ds.dim, c->ds.dim);
		texts[i] = ob_strdup(buf);
	}
	memset(&spec, 0, sizeof(spec));
	spec.mode = OB_RUN_INSERT;
	spec.conninfo = c->opt->conninfo;
	spec.sql = sql;
	spec.qtext = texts;
	spec.insert_ids = ids;
	spec.nq = count;
	spec.clients = clients;
	spec.settings = c->opt->settings;
	spec.nsettings = c->opt->nsettings;
	ob_progress("inserting %zu rows, %d client(s)", count, clients);
	ob_run_queries(&spec, res);
	ob_progress_done();
	for (i = 0; i < count; i++)
		free(texts[i]);
	free(texts);
	free(buf);
	free(sql);
}

/* Run a statement and time it */
static double
Timed(Ctx *c, const char *sql)
{
	double		t0 = ob_now();

	ob_exec(c->conn, sql);
	return ob_now() - t0;
}

/* The insert workload: single and concurrent inserts, then DELETE + VACUUM */
static void
InsertWorkload(Ctx *c, const char *index)
{
	size_t		m = c->opt->rows;
	int			maxc = 1,
				ci,
				phase;
	char	   *label = index ? (c->opt->label ? ob_strdup(c->opt->label) : IndexLabel(c, index)) :
		ob_strdup("no index");
	FILE	   *out = ob_table_out();
	char	   *sql;
	double		del_s,
				vac_s;
	ObJson		j;

	for (ci = 0; ci < c->opt->nclients; ci++)
		if (c->opt->clients[ci] > maxc)
			maxc = c->opt->clients[ci];
	MarkChanged(c, "the insert workload");
	fprintf(out, "\n%-36s %7s %8s %10s %9s %9s\n", "insert into", "clients", "rows", "rows/s", "p50 ms", "p99 ms");
	for (phase = 0; phase < (maxc > 1 ? 2 : 1); phase++)
	{
		int			clients = phase == 0 ? 1 : maxc;
		size_t		first = c->ds.n + phase * m;
		int64_t    *ids = ob_malloc(sizeof(int64_t) * m);
		float	   *vecs = NewRows(c, first, m, NULL, NULL);
		ObRunResult res;
		size_t		i;

		for (i = 0; i < m; i++)
			ids[i] = (int64_t) (first + i);
		InsertRows(c, ids, vecs, m, clients, &res);
		fprintf(out, "%-36.36s %7d %8zu %10.1f %9.3f %9.3f\n", label, clients, m, res.qps,
				res.lat.p50_ms, res.lat.p99_ms);
		JsonCommon(c, &j, "insert");
		ob_json_str(&j, "label", label);
		ob_json_str(&j, "index", index);
		ob_json_int(&j, "clients", clients);
		ob_json_int(&j, "rows", (long long) m);
		ob_json_num(&j, "seconds", res.seconds);
		ob_json_num(&j, "rows_per_s", res.qps);
		ob_json_num(&j, "p50_ms", res.lat.p50_ms);
		ob_json_num(&j, "p99_ms", res.lat.p99_ms);
		ob_json_end(&j);
		ob_json_emit(&j);
		ob_run_result_free(&res);
		free(ids);
		free(vecs);
	}
	sql = ob_psprintf("DELETE FROM %s WHERE id >= %zu", c->qtable, c->ds.n);
	ob_progress("DELETE");
	del_s = Timed(c, sql);
	free(sql);
	sql = ob_psprintf("VACUUM %s", c->qtable);
	ob_progress("VACUUM");
	vac_s = Timed(c, sql);
	ob_progress_done();
	free(sql);
	fprintf(out, "delete the %zu inserted rows: %.3f s; VACUUM: %.3f s; index now %s\n",
			m * (maxc > 1 ? 2 : 1), del_s, vac_s,
			index ? Bytes(ob_relation_size(c->conn, "pg_relation_size", index)) : "-");
	JsonCommon(c, &j, "delete");
	ob_json_str(&j, "label", label);
	ob_json_int(&j, "rows", (long long) (m * (maxc > 1 ? 2 : 1)));
	ob_json_num(&j, "seconds", del_s);
	ob_json_num(&j, "vacuum_s", vac_s);
	if (index)
		ob_json_int(&j, "index_bytes", ob_relation_size(c->conn, "pg_relation_size", index));
	ob_json_end(&j);
	ob_json_emit(&j);
	free(label);
}

/*
 * The streaming runbook: each round deletes --fraction of the live rows
 * (chosen at random), VACUUMs, inserts as many new rows (synthetic: fresh
 * rows from the generator; other datasets: the deleted vectors again under
 * new ids), computes the ground truth of the live rows and measures recall.
 */
static void
StreamWorkload(Ctx *c, const char *index)
{
	size_t		n = c->ds.n;
	int			rounds = c->opt->rounds;
	size_t		per = (size_t) llround(c->opt->fraction * n);
	size_t		cap = n + (size_t) rounds * per;
	float	   *pool = ob_malloc(sizeof(float) * cap * c->ds.dim + 1);
	uint32_t   *live = ob_malloc(sizeof(uint32_t) * n + 1);
	size_t		next_id = n;
	size_t		row;
	char	   *label = index ? (c->opt->label ? ob_strdup(c->opt->label) : IndexLabel(c, index)) :
		ob_strdup("no index (exact)");
	ObSetting  *s;
	int			ns,
				r;
	ObSetting	sw;
	char	   *text = NULL;
	ObIdMap		map;
	ObRng		rng;
	FILE	   *out = ob_table_out();

	if (cap > UINT32_MAX)
		ob_die("the stream workload's rows exceed 2^32: use fewer rounds or a smaller --fraction");
	if (per == 0)
		ob_usage_error("--fraction %g of %zu rows is no row", c->opt->fraction, n);
	memcpy(pool, c->ds.base, sizeof(float) * n * c->ds.dim);
	for (row = 0; row < n; row++)
		live[row] = (uint32_t) row;
	if (c->opt->nsweep > 0)
	{
		sw.name = c->opt->sweep_name;
		sw.value = c->opt->sweep_values[0];
		s = MergeSettings(c, &sw, 1, &ns);
		text = ob_psprintf("%s=%s", sw.name, sw.value);
		if (c->opt->nsweep > 1)
			ob_note("stream measures with the first --sweep value only: %s", text);
	}
	else
		s = MergeSettings(c, NULL, 0, &ns);
	if (!index)
	{
		ObSetting	off[] = {{"enable_indexscan", "off"}, {"enable_indexonlyscan", "off"},
		{"enable_bitmapscan", "off"}};
		ObSetting  *s2 = ob_malloc(sizeof(ObSetting) * (ns + 3));

		memcpy(s2, s, sizeof(ObSetting) * ns);
		memcpy(s2 + ns, off, sizeof(off));
		free(s);
		s = s2;
		ns += 3;
	}
	MarkChanged(c, "the stream workload");
	ob_rng_seed(&rng, c->opt->seed ^ 0x5354524541ULL);
	fprintf(out, "\nstream: %d rounds; each deletes %zu rows (%.0f%%), VACUUMs, inserts %zu new ones, then\nmeasures recall@%d against the ground truth of the live rows: %s%s%s, one client\n",
			rounds, per, 100 * c->opt->fraction, per, c->opt->k, label,
			text ? ", " : "", text ? text : "");

	for (r = 0; r <= rounds; r++)
	{
		ObGroundTruth gt;
		ObGroundTruth *gtp = &c->gt;
		double		del_s = 0,
					vac_s = 0,
					ins_s = 0,
					ins_rate = 0;
		ObJson		extra;
		int64_t		idx_bytes = index ? ob_relation_size(c->conn, "pg_relation_size", index) : -1;

		if (r > 0)
		{
			uint32_t   *gone = ob_malloc(sizeof(uint32_t) * per);
			int64_t    *ids = ob_malloc(sizeof(int64_t) * per);
			float	   *vecs;
			ObRunResult res;
			size_t		i,
						b;
			double		t0;

			/* pick per live rows: partial Fisher-Yates moves them to the end */
			for (i = 0; i < per; i++)
			{
				size_t		hi = n - 1 - i;
				size_t		j = (size_t) (ob_rng_next(&rng) % (hi + 1));
				uint32_t	t = live[j];

				live[j] = live[hi];
				live[hi] = t;
				gone[i] = t;
			}
			t0 = ob_now();
			ob_progress("round %d: DELETE %zu rows", r, per);
			for (b = 0; b < per; b += 10000)
			{
				size_t		e = b + 10000 < per ? b + 10000 : per;
				size_t		len = 16;
				char	   *arr,
						   *p;
				const char *params[1];
				PGresult   *res2;
				char	   *sql = ob_psprintf("DELETE FROM %s WHERE id = ANY($1::int[])", c->qtable);

				arr = ob_malloc(len + (e - b) * 12);
				p = arr;
				*p++ = '{';
				for (i = b; i < e; i++)
					p += sprintf(p, "%s%u", i > b ? "," : "", gone[i]);
				*p++ = '}';
				*p = '\0';
				params[0] = arr;
				res2 = PQexecParams(c->conn, sql, 1, NULL, params, NULL, NULL, 0);
				if (PQresultStatus(res2) != PGRES_COMMAND_OK)
					ob_die("DELETE failed: %s", ob_first_line(PQerrorMessage(c->conn)));
				PQclear(res2);
				free(arr);
				free(sql);
			}
			del_s = ob_now() - t0;
			{
				char	   *sql = ob_psprintf("VACUUM %s", c->qtable);

				ob_progress("round %d: VACUUM", r);
				vac_s = Timed(c, sql);
				free(sql);
			}
			/* new rows: fresh synthetic rows, or the deleted vectors under new ids */
			vecs = NewRows(c, next_id, per, pool, gone);
			for (i = 0; i < per; i++)
			{
				ids[i] = (int64_t) (next_id + i);
				memcpy(pool + (next_id + i) * c->ds.dim, vecs + i * c->ds.dim,
					   sizeof(float) * c->ds.dim);
				live[n - per + i] = (uint32_t) (next_id + i);
			}
			InsertRows(c, ids, vecs, per, 1, &res);
			ins_s = res.seconds;
			ins_rate = res.qps;
			ob_run_result_free(&res);
			next_id += per;
			free(vecs);
			free(ids);
			free(gone);
			idx_bytes = index ? ob_relation_size(c->conn, "pg_relation_size", index) : -1;

			ob_gt_compute(&gt, c->opt->metric, c->ds.dim, pool, NULL, live, n,
						  c->ds.queries, c->ds.nq, c->depth, c->opt->threads, true);
			gtp = &gt;
		}
		if (r == 0 || r == 1)
			ob_table_header(c->opt->k);
		ob_idmap_build(&map, NULL, next_id);
		memset(&extra, 0, sizeof(extra));
		extra.first = true;
		ob_json_int(&extra, "live_rows", (long long) n);
		ob_json_int(&extra, "replaced", r > 0 ? (long long) per : 0);
		ob_json_num(&extra, "delete_s", del_s);
		ob_json_num(&extra, "vacuum_s", vac_s);
		ob_json_num(&extra, "insert_s", ins_s);
		ob_json_num(&extra, "insert_rows_per_s", ins_rate);
		if (idx_bytes >= 0)
			ob_json_int(&extra, "index_bytes", idx_bytes);
		{
			char		what[64];

			snprintf(what, sizeof(what), "round %d", r);
			if (r > 0)
				fprintf(out, "round %d: DELETE %.2f s, VACUUM %.2f s, INSERT %.2f s (%.0f rows/s)%s%s\n",
						r, del_s, vac_s, ins_s, ins_rate, index ? ", index " : "",
						index ? Bytes(idx_bytes) : "");
			Search(c, what, label, index, c->ds.nq, 1, s, ns, text, gtp, pool, &map, "stream", r, &extra);
		}
		free(extra.buf);
		ob_idmap_free(&map);
		if (r > 0)
			ob_gt_free(&gt);
	}
	/* Search() labels stream rows "round N"; the plot groups them by label */
	free(s);
	free(text);
	free(pool);
	free(live);
	free(label);
}

/* clean: drop every table omen-bench made in this database */
static void
Clean(Ctx *c)
{
	PGresult   *res;
	int			i,
				dropped = 0;

	c->conn = ob_connect(c->opt->conninfo);
	res = PQexec(c->conn,
				 "SELECT c.oid::regclass::text, coalesce(obj_description(c.oid, 'pg_class'), '') LIKE 'omen-bench:%' "
				 "FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'omen\\_bench\\_%' "
				 "AND pg_table_is_visible(c.oid) ORDER BY 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		ob_die("cannot list tables: %s", ob_first_line(PQerrorMessage(c->conn)));
	for (i = 0; i < PQntuples(res); i++)
	{
		const char *name = PQgetvalue(res, i, 0);

		if (strcmp(PQgetvalue(res, i, 1), "t") == 0)
		{
			char	   *sql = ob_psprintf("DROP TABLE %s", name);

			ob_exec(c->conn, sql);
			printf("dropped table %s (created by omen-bench)\n", name);
			free(sql);
			dropped++;
		}
		else
			printf("left alone: table %s (has the prefix but not omen-bench's comment)\n", name);
	}
	if (dropped == 0)
		printf("no omen-bench tables in %s\n", ob_conn_describe(c->conn));
	PQclear(res);
}

/* plot: read JSON lines files and draw */
static void
PlotFiles(Options *opt)
{
	ObRecord   *recs = NULL;
	int			nrecs = 0,
				i,
				nmade;
	char	  **made;
	char	   *title = NULL;

	for (i = 0; i < opt->nfiles; i++)
	{
		FILE	   *f = fopen(opt->files[i], "r");
		char	   *line = NULL;
		size_t		cap = 0;
		ssize_t		len;
		int			lineno = 0;

		if (f == NULL)
			ob_die("cannot open %s: %m", opt->files[i]);
		while ((len = getline(&line, &cap, f)) >= 0)
		{
			char		err[256];

			lineno++;
			while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			if (len == 0)
				continue;
			recs = ob_realloc(recs, sizeof(ObRecord) * (nrecs + 1));
			if (ob_json_parse_line(line, &recs[nrecs], err, sizeof(err)) < 0)
				ob_die("%s:%d: not an omen-bench JSON line (%s)", opt->files[i], lineno, err);
			nrecs++;
		}
		free(line);
		fclose(f);
	}
	for (i = 0; i < nrecs && title == NULL; i++)
		if (ob_record_get(&recs[i], "dataset") && ob_record_get(&recs[i], "n") &&
			ob_record_get(&recs[i], "kind") && strcmp(ob_record_get(&recs[i], "kind"), "server") != 0)
			title = ob_psprintf("%s: %s rows x %s dims, %s", ob_record_get(&recs[i], "dataset"),
								ob_record_get(&recs[i], "n"), ob_record_get(&recs[i], "dim"),
								ob_record_get(&recs[i], "metric"));
	if (ob_plot(recs, nrecs, opt->plot_dir, title ? title : "omen-bench", &made, &nmade) == 0)
		ob_die("no query or stream measurements in the input: nothing to plot");
	for (i = 0; i < nmade; i++)
		printf("plot: %s\n", made[i]);
}

/* The banner line of a command */
static void
Banner(Ctx *c)
{
	fprintf(ob_table_out(), "== omen-bench %s: %s, %zu x %d, metric %s (%s), %zu queries, k=%d ==\n",
			c->opt->cmdname, c->ds.desc, c->ds.n, c->ds.dim, ob_metric_name(c->opt->metric),
			ob_metric_op(c->opt->metric), c->ds.nq, c->opt->k);
}

/* Entry point */
int
main(int argc, char **argv)
{
	Options		opt;
	Ctx			c;
	char	   *index = NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	OmenSimdInit();
	ParseArgs(argc, argv, &opt);
	memset(&c, 0, sizeof(c));
	c.opt = &opt;

	if (opt.cmd == CMD_PLOT)
	{
		PlotFiles(&opt);
		return 0;
	}
	if (opt.cmd == CMD_CLEAN)
	{
		Clean(&c);
		return 0;
	}
	ob_output_open(opt.json_path, opt.json_stdout);

	/* a failing connection is reported before minutes of ground truth */
	ParseDataset(&c);
	if (opt.cmd != CMD_GT)
		Connect(&c);
	PrepareDataset(&c);
	Banner(&c);
	if (opt.cmd != CMD_FLOOR && opt.cmd != CMD_LOAD)
		GroundTruth(&c);
	if (opt.cmd == CMD_GT)
	{
		ob_output_close();
		return 0;
	}
	EnsureTable(&c);
	if (opt.cmd == CMD_LOAD)
	{
		ob_output_close();
		return 0;
	}
	CheckAllSettings(&c);
	PrepareQueries(&c);
	c.pool = ob_pool_create(opt.conninfo);

	switch (opt.cmd)
	{
		case CMD_FLOOR:
			ob_table_header(opt.k);
			Floor(&c);
			break;
		case CMD_EXACT:
		case CMD_RUN:
			ob_table_header(opt.k);
			if (!opt.no_floor)
				Floor(&c);
			if (!opt.no_exact)
				Exact(&c);
			if (opt.cmd == CMD_RUN)
			{
				index = PrepareIndex(&c);
				if (index)
					Sweep(&c, index);
				else if (opt.nsweep > 0)
					ob_warn("--sweep without --index or --use-index: nothing to sweep");
			}
			break;
		case CMD_INSERT:
			index = PrepareIndex(&c);
			InsertWorkload(&c, index);
			break;
		case CMD_STREAM:
			index = PrepareIndex(&c);
			StreamWorkload(&c, index);
			break;
		default:
			break;
	}
	if (opt.plot_dir)
	{
		char	   *title = ob_psprintf("%s: %zu x %d, %s, %zu queries", c.ds.name, c.ds.n, c.ds.dim,
										ob_metric_name(opt.metric), c.ds.nq);

		ob_plot_own(opt.plot_dir, title);
		free(title);
	}
	if (opt.json_path)
		fprintf(ob_table_out(), "JSON lines appended to %s\n", opt.json_path);
	ob_output_close();
	ob_pool_free(c.pool);
	PQfinish(c.conn);
	return 0;
}

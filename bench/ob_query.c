/*
 * ob_query.c
 *	  omen-bench timed statement runs: N clients, each a thread with its own
 *	  libpq connection, working through one list of queries.
 *
 * Every client takes a connection (its own, or one kept in a pool across
 * measurements), resets it (RESET ALL, DEALLOCATE ALL: a cached plan would
 * otherwise survive a change of planner settings), applies the settings
 * (set_config), prepares the statement and runs untimed warm-up executions
 * before a barrier; the clock starts when all are ready.
 *
 * Warm-up comes in two parts.  A connection's first measurement of a kind
 * (the warm key: the exact scan, an index, the floor) starts with a warm
 * pass: the query list once, untimed, for at most warm_seconds.  A backend
 * pays a minor page fault the first time it touches each shared buffer
 * page, which on this VM makes a fresh connection's index scans about twice
 * as slow as the same scans repeated; the pass measures the steady state.
 * Then every measurement runs spec->warmup queries after its settings.  Then each client takes the next
 * query from a shared counter until the list is done, timing every
 * execution on the client (CLOCK_MONOTONIC around PQexecPrepared, so the
 * latency includes the network round trip and the result transfer).  The
 * same runner serves searches ($1 vector, $2 limit; the returned ids are
 * kept for recall), the round-trip floor ($1 vector only) and inserts
 * ($1 id, $2 vector).
 */
#include "ob.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STMT_NAME "omen_bench_q"

typedef struct RunShared
{
	const ObRunSpec *spec;
	pthread_barrier_t ready;
	size_t		next;			/* next query to run (atomic) */
	double	   *lat_ms;			/* per query */
	double	   *end;			/* per client: when it ran out of work */
	ObRunResult *res;
} RunShared;

typedef struct RunClient
{
	RunShared  *sh;
	int			no;
	pthread_t	th;
} RunClient;

/*
 * PQexecPrepared, waiting for the result on a busy CPU (--spin): libpq's
 * socket is non-blocking, so PQconsumeInput returns at once.  The result
 * is the last one the statement gave (one, for these statements).
 */
static PGresult *
ExecSpinning(PGconn *conn, int nparams, const char *const *params)
{
	PGresult   *res = NULL;
	PGresult   *r;

	if (!PQsendQueryPrepared(conn, STMT_NAME, nparams, params, NULL, NULL, 0))
		return PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
	for (;;)
	{
		while (PQisBusy(conn))
		{
			if (!PQconsumeInput(conn))
			{
				if (res)
					PQclear(res);
				return PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
			}
		}
		r = PQgetResult(conn);
		if (r == NULL)
			break;
		if (res)
			PQclear(res);
		res = r;
	}
	return res ? res : PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
}

/* Run query i on conn; store latency and (for searches) the ids */
static void
RunOne(RunShared *sh, PGconn *conn, size_t i, bool timed)
{
	const ObRunSpec *spec = sh->spec;
	char		kbuf[32];
	char		idbuf[32];
	const char *params[2];
	PGresult   *res;
	int			nparams;
	double		t0,
				t1;
	ExecStatusType want = spec->mode == OB_RUN_INSERT ? PGRES_COMMAND_OK : PGRES_TUPLES_OK;

	if (spec->mode == OB_RUN_INSERT)
	{
		snprintf(idbuf, sizeof(idbuf), "%lld", (long long) spec->insert_ids[i]);
		params[0] = idbuf;
		params[1] = spec->qtext[i];
	}
	else
	{
		snprintf(kbuf, sizeof(kbuf), "%d", spec->k);
		params[0] = spec->qtext[i];
		params[1] = kbuf;
	}
	nparams = spec->mode == OB_RUN_FLOOR ||
		(spec->mode == OB_RUN_SEARCH && spec->const_limit) ? 1 : 2;
	t0 = ob_now();
	if (spec->spin)
		res = ExecSpinning(conn, nparams, params);
	else
		res = PQexecPrepared(conn, STMT_NAME, nparams, params, NULL, NULL, 0);
	t1 = ob_now();
	if (PQresultStatus(res) != want)
	{
		char	   *msg = ob_first_line(PQerrorMessage(conn));

		ob_die("%s failed: %s (statement: %s)",
			   spec->mode == OB_RUN_INSERT ? "insert" : "query", msg, spec->sql);
	}
	if (timed)
	{
		sh->lat_ms[i] = (t1 - t0) * 1000.0;
		if (spec->mode == OB_RUN_SEARCH && sh->res->ids)
		{
			int			n = PQntuples(res);
			int			r;

			if (n > spec->k)
				n = spec->k;
			sh->res->nret[i] = n;
			for (r = 0; r < n; r++)
				sh->res->ids[i * spec->k + r] = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		}
	}
	PQclear(res);
}

/* One client: connect, set up, warm up, wait, run its share, note the end */
static void *
ClientThread(void *arg)
{
	RunClient  *cl = arg;
	RunShared  *sh = cl->sh;
	const ObRunSpec *spec = sh->spec;
	ObPool	   *pool = spec->pool;
	PGconn	   *conn = pool ? pool->conns[cl->no] : ob_connect(spec->conninfo);
	PGresult   *res;
	int			w;

	if (pool)
	{
		ob_exec(conn, "RESET ALL");
		ob_exec(conn, "DEALLOCATE ALL");
	}
	ob_apply_settings(conn, spec->settings, spec->nsettings);
	res = PQprepare(conn, STMT_NAME, spec->sql, 0, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		char	   *msg = ob_first_line(PQerrorMessage(conn));

		ob_die("cannot prepare the statement: %s (statement: %s)", msg, spec->sql);
	}
	PQclear(res);
	if (spec->warm_key && spec->warm_seconds > 0 &&
		!(pool && pool->warm_keys[cl->no] && strcmp(pool->warm_keys[cl->no], spec->warm_key) == 0))
	{
		double		t0 = ob_now();
		size_t		i;

		for (i = 0; i < spec->nq && ob_now() - t0 < spec->warm_seconds; i++)
			RunOne(sh, conn, (i + (size_t) cl->no * 7919) % spec->nq, false);
		if (pool)
		{
			free(pool->warm_keys[cl->no]);
			pool->warm_keys[cl->no] = ob_strdup(spec->warm_key);
		}
	}
	for (w = 0; w < spec->warmup && spec->nq > 0; w++)
		RunOne(sh, conn, (size_t) (cl->no * 7919 + w) % spec->nq, false);
	if (cl->no == 0 && spec->explain)
		ob_explain(conn, STMT_NAME, spec->qtext[0], spec->const_limit ? -1 : spec->k,
				   &sh->res->plan);

	pthread_barrier_wait(&sh->ready);
	for (;;)
	{
		size_t		i = __atomic_fetch_add(&sh->next, 1, __ATOMIC_RELAXED);

		if (i >= spec->nq)
			break;
		RunOne(sh, conn, i, true);
	}
	sh->end[cl->no] = ob_now();
	if (!pool)
		PQfinish(conn);
	return NULL;
}

/* An empty pool; connections are made as measurements need them */
ObPool *
ob_pool_create(const char *conninfo)
{
	ObPool	   *pool = ob_calloc(1, sizeof(ObPool));

	pool->conninfo = ob_strdup(conninfo ? conninfo : "");
	return pool;
}

/* Close a pool's connections */
void
ob_pool_free(ObPool *pool)
{
	int			i;

	if (pool == NULL)
		return;
	for (i = 0; i < pool->n; i++)
	{
		PQfinish(pool->conns[i]);
		free(pool->warm_keys[i]);
	}
	free(pool->conns);
	free(pool->warm_keys);
	free(pool->conninfo);
	free(pool);
}

/* Make sure a pool has at least n connections */
static void
PoolGrow(ObPool *pool, int n)
{
	if (n <= pool->n)
		return;
	pool->conns = ob_realloc(pool->conns, sizeof(PGconn *) * n);
	pool->warm_keys = ob_realloc(pool->warm_keys, sizeof(char *) * n);
	for (; pool->n < n; pool->n++)
	{
		pool->conns[pool->n] = ob_connect(pool->conninfo);
		pool->warm_keys[pool->n] = NULL;
	}
}

/*
 * Run spec->nq statements over spec->clients connections and fill res:
 * wall time, statements per second, latency percentiles, and for searches
 * the returned ids (res->ids[i * k + r], res->nret[i]) and the plan.
 */
void
ob_run_queries(const ObRunSpec *spec, ObRunResult *res)
{
	RunShared	sh;
	RunClient  *cl;
	double		t0,
				t1;
	int			c;

	memset(res, 0, sizeof(*res));
	memset(&sh, 0, sizeof(sh));
	sh.spec = spec;
	sh.res = res;
	sh.lat_ms = ob_calloc(spec->nq + 1, sizeof(double));
	sh.end = ob_calloc(spec->clients, sizeof(double));
	if (spec->mode == OB_RUN_SEARCH)
	{
		size_t		i;

		res->ids = ob_malloc(sizeof(int64_t) * spec->nq * spec->k + 1);
		res->nret = ob_calloc(spec->nq + 1, sizeof(int));
		for (i = 0; i < spec->nq * (size_t) spec->k; i++)
			res->ids[i] = -1;
	}
	if (spec->pool)
		PoolGrow(spec->pool, spec->clients);
	pthread_barrier_init(&sh.ready, NULL, spec->clients + 1);
	cl = ob_calloc(spec->clients, sizeof(RunClient));
	for (c = 0; c < spec->clients; c++)
	{
		cl[c].sh = &sh;
		cl[c].no = c;
		if (pthread_create(&cl[c].th, NULL, ClientThread, &cl[c]) != 0)
			ob_die("cannot start a client thread");
	}
	pthread_barrier_wait(&sh.ready);
	t0 = ob_now();
	for (c = 0; c < spec->clients; c++)
		pthread_join(cl[c].th, NULL);
	t1 = t0;
	for (c = 0; c < spec->clients; c++)
		if (sh.end[c] > t1)
			t1 = sh.end[c];
	pthread_barrier_destroy(&sh.ready);

	res->seconds = t1 - t0;
	res->qps = res->seconds > 0 ? spec->nq / res->seconds : 0;
	ob_latency_stats(sh.lat_ms, spec->nq, &res->lat);
	free(sh.lat_ms);
	free(sh.end);
	free(cl);
}

/* Free a result's arrays */
void
ob_run_result_free(ObRunResult *res)
{
	free(res->ids);
	free(res->nret);
	free(res->plan.text);
	res->ids = NULL;
	res->nret = NULL;
	res->plan.text = NULL;
}

/* qsort order of doubles, ascending */
static int
CompareDouble(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/*
 * Latency statistics of n values (sorted in place): p50 and p99 by the
 * nearest-rank method (the value below which that share of the runs fall),
 * mean, min, max.
 */
void
ob_latency_stats(double *ms, size_t n, ObLatency *out)
{
	size_t		i;
	double		sum = 0;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return;
	qsort(ms, n, sizeof(double), CompareDouble);
	for (i = 0; i < n; i++)
		sum += ms[i];
	out->mean_ms = sum / n;
	out->min_ms = ms[0];
	out->max_ms = ms[n - 1];
	/* nearest rank: ceil(p * n), 1-based */
	out->p50_ms = ms[(size_t) ((n * 50 + 99) / 100) - 1];
	out->p99_ms = ms[(size_t) ((n * 99 + 99) / 100) - 1];
}

/*
 * ob_pg.c
 *	  omen-bench's side of libpq: connections, settings, the tables the tool
 *	  owns, COPY in and out, index builds with progress, EXPLAIN.
 *
 * The tool changes nothing in a database but tables named omen_bench_* that
 * carry a comment starting with "omen-bench:" (which it wrote when it
 * created them).  A user's table given as a dataset is only read.
 */
#include "ob.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

/* Pass server WARNINGs on (one line); drop NOTICEs ("skipping" and such) */
static void
NoticeProcessor(void *arg, const char *message)
{
	(void) arg;
	if (strncmp(message, "WARNING:", 8) == 0)
	{
		char	   *line = ob_first_line(message + 8);
		char	   *p = line;

		while (*p == ' ')
			p++;
		ob_warn("server says: %s", p);
		free(line);
	}
}

/*
 * Connect, or exit with one line saying what to do.  An empty conninfo means
 * libpq's defaults (PGHOST, PGPORT, PGDATABASE, ...).
 */
PGconn *
ob_connect(const char *conninfo)
{
	PGconn	   *conn = PQconnectdb(conninfo ? conninfo : "");
	PGresult   *res;

	if (conn == NULL)
		ob_die("cannot connect: out of memory");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = ob_first_line(PQerrorMessage(conn));

		ob_die("cannot connect to the server (%s): start one (scripts/bench.sh runs omen-bench against a throwaway server) or give --conn \"host=... port=... dbname=...\"",
			   msg);
	}
	PQsetNoticeProcessor(conn, NoticeProcessor, NULL);
	/* no server-side JIT surprises in the tool's own housekeeping queries */
	res = PQexec(conn, "SET application_name = 'omen-bench'");
	PQclear(res);
	return conn;
}

/* Exit with the server's error for a statement */
static void
SqlFailed(PGconn *conn, const char *sql)
{
	char	   *msg = ob_first_line(PQerrorMessage(conn));
	char		shortsql[200];

	snprintf(shortsql, sizeof(shortsql), "%s", sql);
	if (strlen(sql) >= sizeof(shortsql))
		strcpy(shortsql + sizeof(shortsql) - 4, "...");
	ob_die("%s (in: %s)", msg, shortsql);
}

/* Run a statement that returns nothing of interest; exit on error */
void
ob_exec(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		SqlFailed(conn, sql);
	PQclear(res);
}

/* The first value of a query's result (fresh memory), NULL for SQL NULL or no row */
char *
ob_query_value_params(PGconn *conn, const char *sql, int nparams,
					  const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	char	   *val = NULL;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		SqlFailed(conn, sql);
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		val = ob_strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return val;
}

/* Same without parameters */
char *
ob_query_value(PGconn *conn, const char *sql)
{
	return ob_query_value_params(conn, sql, 0, NULL);
}

/* An identifier quoted for SQL (fresh memory) */
char *
ob_quote_ident(PGconn *conn, const char *s)
{
	char	   *q = PQescapeIdentifier(conn, s, strlen(s));
	char	   *r;

	if (q == NULL)
		ob_die("cannot quote identifier \"%s\"", s);
	r = ob_strdup(q);
	PQfreemem(q);
	return r;
}

/* A literal quoted for SQL (fresh memory) */
char *
ob_quote_literal(PGconn *conn, const char *s)
{
	char	   *q = PQescapeLiteral(conn, s, strlen(s));
	char	   *r;

	if (q == NULL)
		ob_die("cannot quote literal");
	r = ob_strdup(q);
	PQfreemem(q);
	return r;
}

/* "database postgres on /tmp/sock:5432" for messages */
const char *
ob_conn_describe(PGconn *conn)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "database \"%s\" on %s:%s", PQdb(conn),
			 PQhost(conn) ? PQhost(conn) : "?", PQport(conn) ? PQport(conn) : "?");
	return buf;
}

/*
 * Make sure the vector type exists in this database and its library is
 * loaded in this session (so the extension's settings are known).
 */
void
ob_check_vector_type(PGconn *conn)
{
	char	   *ok = ob_query_value(conn, "SELECT to_regtype('vector') IS NOT NULL");
	PGresult   *res;

	if (ok == NULL || strcmp(ok, "t") != 0)
		ob_die("type \"vector\" does not exist in %s: run CREATE EXTENSION omen; there first (scripts/bench.sh does this on its throwaway server)",
			   ob_conn_describe(conn));
	free(ok);
	res = PQexec(conn, "SELECT '[1]'::vector");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		SqlFailed(conn, "SELECT '[1]'::vector");
	PQclear(res);
}

/* SET each setting for this session (set_config, so values need no quoting) */
void
ob_apply_settings(PGconn *conn, const ObSetting *set, int nset)
{
	int			i;

	for (i = 0; i < nset; i++)
	{
		const char *params[2] = {set[i].name, set[i].value};
		PGresult   *res = PQexecParams(conn, "SELECT set_config($1, $2, false)",
									   2, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			char	   *msg = ob_first_line(PQerrorMessage(conn));

			ob_die("cannot set %s = '%s': %s", set[i].name, set[i].value, msg);
		}
		PQclear(res);
	}
}

/*
 * Check that the server knows each setting (after ob_check_vector_type has
 * loaded the extension's library) and accepts its value.  Unknown names
 * would otherwise be accepted silently as placeholders.
 */
void
ob_check_settings(PGconn *conn, const ObSetting *set, int nset)
{
	int			i;

	for (i = 0; i < nset; i++)
	{
		const char *params[1] = {set[i].name};
		char	   *found = ob_query_value_params(conn,
												  "SELECT name FROM pg_settings WHERE name = lower($1)",
												  1, params);

		if (found == NULL)
			ob_die("the server has no setting \"%s\": check the spelling (SHOW ALL lists the settings; an index's settings exist once the extension that has it is installed)",
				   set[i].name);
		free(found);
	}
	ob_exec(conn, "BEGIN");
	ob_apply_settings(conn, set, nset);
	ob_exec(conn, "ROLLBACK");
}

/* Whether a table exists and whether omen-bench made it (its comment) */
void
ob_table_state(PGconn *conn, const char *table, ObTableState *st)
{
	const char *params[1] = {table};
	PGresult   *res = PQexecParams(conn,
								   "SELECT c.relkind, obj_description(c.oid, 'pg_class') "
								   "FROM pg_class c WHERE c.oid = to_regclass($1)",
								   1, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		SqlFailed(conn, "to_regclass");
	memset(st, 0, sizeof(*st));
	if (PQntuples(res) > 0)
	{
		st->exists = true;
		if (!PQgetisnull(res, 0, 1))
		{
			st->comment = ob_strdup(PQgetvalue(res, 0, 1));
			st->ours = strncmp(st->comment, OB_COMMENT_TAG, strlen(OB_COMMENT_TAG)) == 0 &&
				strcmp(PQgetvalue(res, 0, 0), "r") == 0;
		}
	}
	PQclear(res);
}

/* Set the marker comment on one of the tool's tables */
void
ob_table_set_comment(PGconn *conn, const char *table, const char *comment)
{
	char	   *qt = ob_quote_ident(conn, table);
	char	   *qc = ob_quote_literal(conn, comment);
	char	   *sql = ob_psprintf("COMMENT ON TABLE %s IS %s", qt, qc);

	ob_exec(conn, sql);
	free(sql);
	free(qt);
	free(qc);
}

/*
 * Create one of the tool's tables, id int and v vector(dim), with rows kept
 * inline and uncompressed (toast_tuple_target = 8160: compressed rows make
 * every exact scan decompress every row).  The primary key comes after the
 * load.
 */
void
ob_table_create(PGconn *conn, const char *table, int dim, const char *comment)
{
	char	   *qt = ob_quote_ident(conn, table);
	char	   *sql = ob_psprintf("CREATE TABLE %s (id int NOT NULL, v vector(%d) NOT NULL) "
								  "WITH (toast_tuple_target = 8160)", qt, dim);

	ob_exec(conn, sql);
	ob_table_set_comment(conn, table, comment);
	free(sql);
	free(qt);
}

/* Drop one of the tool's tables (the caller has checked it is ours) */
void
ob_table_drop(PGconn *conn, const char *table)
{
	char	   *qt = ob_quote_ident(conn, table);
	char	   *sql = ob_psprintf("DROP TABLE IF EXISTS %s", qt);

	ob_exec(conn, sql);
	free(sql);
	free(qt);
}

/* Append a big-endian int16 to a buffer; returns the end */
static inline char *
Put16(char *p, int v)
{
	uint16_t	x = htons((uint16_t) v);

	memcpy(p, &x, 2);
	return p + 2;
}

/* Append a big-endian int32 */
static inline char *
Put32(char *p, uint32_t v)
{
	uint32_t	x = htonl(v);

	memcpy(p, &x, 4);
	return p + 4;
}

/* Append a float4 in network byte order */
static inline char *
PutFloat(char *p, float f)
{
	uint32_t	u;

	memcpy(&u, &f, 4);
	return Put32(p, u);
}

/*
 * COPY n rows (id, v) into a table with the binary format (exact floats,
 * no text parsing).  Row i gets id ids[i], or first_id + i with ids NULL.
 * Shows progress; returns the seconds taken.
 */
double
ob_copy_load(PGconn *conn, const char *table, const float *vecs,
			 const int64_t *ids, size_t n, int dim, size_t first_id)
{
	char	   *qt = ob_quote_ident(conn, table);
	char	   *sql = ob_psprintf("COPY %s (id, v) FROM STDIN (FORMAT binary)", qt);
	PGresult   *res;
	size_t		rowlen = 2 + 4 + 4 + 4 + 4 + 4 * (size_t) dim;
	size_t		cap = 1 << 20;
	char	   *buf;
	char	   *p;
	size_t		i;
	double		t0 = ob_now();
	static const char sig[11] = "PGCOPY\n\377\r\n";	/* + the NUL */

	if (cap < rowlen * 4)
		cap = rowlen * 4;
	buf = ob_malloc(cap);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN)
		SqlFailed(conn, sql);
	PQclear(res);

	p = buf;
	memcpy(p, sig, 11);
	p += 11;
	p = Put32(p, 0);			/* flags */
	p = Put32(p, 0);			/* header extension length */
	for (i = 0; i < n; i++)
	{
		const float *v = vecs + i * (size_t) dim;
		int64_t		id = ids ? ids[i] : (int64_t) (first_id + i);
		int			d;

		if ((size_t) (p - buf) + rowlen + 2 > cap)
		{
			if (PQputCopyData(conn, buf, (int) (p - buf)) != 1)
				SqlFailed(conn, sql);
			p = buf;
			ob_progress("loading %s: %zu of %zu rows (%.0f%%), %.0f rows/s",
						table, i, n, 100.0 * i / n, i / (ob_now() - t0));
		}
		p = Put16(p, 2);
		p = Put32(p, 4);
		p = Put32(p, (uint32_t) (int32_t) id);
		p = Put32(p, (uint32_t) (4 + 4 * dim));
		p = Put16(p, dim);
		p = Put16(p, 0);
		for (d = 0; d < dim; d++)
			p = PutFloat(p, v[d]);
	}
	p = Put16(p, -1);
	if (PQputCopyData(conn, buf, (int) (p - buf)) != 1 || PQputCopyEnd(conn, NULL) != 1)
		SqlFailed(conn, sql);
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		SqlFailed(conn, sql);
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	ob_progress_done();
	free(buf);
	free(sql);
	free(qt);
	return ob_now() - t0;
}

/* Read a big-endian int32 */
static int32_t
Get32(const char *p)
{
	uint32_t	x;

	memcpy(&x, p, 4);
	return (int32_t) ntohl(x);
}

/* Read a big-endian int16 */
static int16_t
Get16(const char *p)
{
	uint16_t	x;

	memcpy(&x, p, 2);
	return (int16_t) ntohs(x);
}

/*
 * Read a user's table: (id, vector) of every row whose vector is not NULL,
 * in id order, with COPY (SELECT ...) TO STDOUT in binary.  Only reads.
 * Exits with what to do if the table, the columns or their types are wrong.
 */
void
ob_read_table(PGconn *conn, const char *table, const char *column,
			  const char *idcol, int64_t **ids_out, float **vecs_out,
			  size_t *n_out, int *dim_out)
{
	const char *p1[1] = {table};
	char	   *reg = ob_query_value_params(conn, "SELECT to_regclass($1)::text", 1, p1);
	const char *p2[3];
	char	   *vtype,
			   *itype,
			   *qc,
			   *qi,
			   *sql;
	PGresult   *res;
	size_t		n = 0,
				cap = 1024,
				r;
	int			dim = -1;
	int64_t    *ids;
	float	   *vecs = NULL;
	char	   *row;
	int			len;
	bool		header = true;
	double		t0 = ob_now();

	if (reg == NULL)
		ob_die("table \"%s\" does not exist in %s (give the dataset as table:[SCHEMA.]TABLE.COLUMN; \\dt lists tables)",
			   table, ob_conn_describe(conn));
	p2[0] = reg;
	p2[1] = column;
	vtype = ob_query_value_params(conn,
								  "SELECT format_type(atttypid, NULL) FROM pg_attribute "
								  "WHERE attrelid = $1::regclass AND attname = $2 AND attnum > 0 AND NOT attisdropped",
								  2, p2);
	if (vtype == NULL)
		ob_die("table %s has no column \"%s\" (\\d %s lists its columns)", reg, column, reg);
	if (strcmp(vtype, "vector") != 0)
		ob_die("column %s.%s is of type %s, not vector", reg, column, vtype);
	p2[1] = idcol;
	itype = ob_query_value_params(conn,
								  "SELECT format_type(atttypid, NULL) FROM pg_attribute "
								  "WHERE attrelid = $1::regclass AND attname = $2 AND attnum > 0 AND NOT attisdropped",
								  2, p2);
	if (itype == NULL)
		ob_die("table %s has no column \"%s\" for the row ids: name the id column with table:%s.%s,id=COLUMN",
			   reg, idcol, table, column);
	if (strcmp(itype, "integer") != 0 && strcmp(itype, "bigint") != 0 && strcmp(itype, "smallint") != 0)
		ob_die("id column %s.%s is of type %s: omen-bench needs an integer id column (name one with ,id=COLUMN)",
			   reg, idcol, itype);

	qc = ob_quote_ident(conn, column);
	qi = ob_quote_ident(conn, idcol);
	sql = ob_psprintf("COPY (SELECT %s::int8, %s FROM %s WHERE %s IS NOT NULL ORDER BY 1) TO STDOUT (FORMAT binary)",
					  qi, qc, reg, qc);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT)
		SqlFailed(conn, sql);
	PQclear(res);
	ids = ob_malloc(sizeof(int64_t) * cap);
	while ((len = PQgetCopyData(conn, &row, 0)) > 0)
	{
		const char *p = row;
		int			nf,
					vlen,
					d;
		uint32_t	hi,
					lo;

		if (header)
		{
			p += 11 + 4;
			p += 4 + Get32(p);
			header = false;
		}
		nf = Get16(p);
		p += 2;
		if (nf == -1)
		{
			PQfreemem(row);
			continue;
		}
		if (nf != 2 || Get32(p) != 8)
			ob_die("unexpected COPY data from %s", reg);
		hi = (uint32_t) Get32(p + 4);
		lo = (uint32_t) Get32(p + 8);
		p += 12;
		vlen = Get32(p);
		p += 4;
		d = Get16(p);
		if (dim < 0)
		{
			dim = d;
			vecs = ob_malloc(sizeof(float) * cap * dim);
		}
		else if (d != dim)
			ob_die("column %s.%s mixes dimensions (%d and %d): omen-bench needs vectors of one length",
				   reg, column, dim, d);
		if (vlen != 4 + 4 * d)
			ob_die("unexpected vector data from %s", reg);
		p += 4;
		if (n == cap)
		{
			cap *= 2;
			ids = ob_realloc(ids, sizeof(int64_t) * cap);
			vecs = ob_realloc(vecs, sizeof(float) * cap * dim);
		}
		ids[n] = (int64_t) (((uint64_t) hi << 32) | lo);
		for (d = 0; d < dim; d++)
		{
			uint32_t	u = (uint32_t) Get32(p + 4 * d);

			memcpy(&vecs[n * dim + d], &u, 4);
		}
		n++;
		if (n % 10000 == 0)
			ob_progress("reading %s: %zu rows", reg, n);
		PQfreemem(row);
	}
	if (len == -2)
		SqlFailed(conn, sql);
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		SqlFailed(conn, sql);
	PQclear(res);
	ob_progress_done();
	if (n == 0)
		ob_die("table %s has no rows with a non-NULL %s", reg, column);
	for (r = 1; r < n; r++)
		if (ids[r] == ids[r - 1])
			ob_die("id column %s.%s is not unique (id %lld repeats): name a unique one with ,id=COLUMN",
				   reg, idcol, (long long) ids[r]);
	ob_note("read %zu rows of %d dimensions from %s in %.1f s", n, dim, reg, ob_now() - t0);
	*ids_out = ids;
	*vecs_out = vecs;
	*n_out = n;
	*dim_out = dim;
	free(sql);
	free(qc);
	free(qi);
	free(vtype);
	free(itype);
	free(reg);
}

/* pg_relation_size and friends of a relation, in bytes (-1 if unknown) */
int64_t
ob_relation_size(PGconn *conn, const char *func, const char *rel)
{
	char	   *sql = ob_psprintf("SELECT %s(to_regclass($1))", func);
	const char *params[1] = {rel};
	char	   *v = ob_query_value_params(conn, sql, 1, params);
	int64_t		r = v ? atoll(v) : -1;

	free(v);
	free(sql);
	return r;
}

/* Copy the text between s and the first of the stop strings (or the end) */
static void
CopyUntil(char *dst, size_t len, const char *s, const char *stop1, const char *stop2)
{
	const char *e1 = stop1 ? strstr(s, stop1) : NULL;
	const char *e2 = stop2 ? strstr(s, stop2) : NULL;
	const char *e = s + strlen(s);
	size_t		n;

	if (e1 && e1 < e)
		e = e1;
	if (e2 && e2 < e)
		e = e2;
	n = (size_t) (e - s);
	if (n >= len)
		n = len - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/*
 * Append a plan line to text, with long vector literals cut to their first
 * elements: '[1,2,3,...]'
 */
static void
AppendPlanLine(char *text, const char *line)
{
	char	   *p = text + strlen(text);
	const char *s = line;

	while (*s)
	{
		const char *end;

		if (s[0] == '\'' && s[1] == '[' && (end = strstr(s, "]'")) != NULL && end - s > 40)
		{
			memcpy(p, s, 30);
			p += 30;
			memcpy(p, "...]'", 5);
			p += 5;
			s = end + 2;
		}
		else
			*p++ = *s++;
	}
	*p++ = '\n';
	*p = '\0';
}

/*
 * EXPLAIN a prepared search statement for one query vector (and LIMIT k,
 * unless k < 0: the statement has its own) and find the scan that feeds
 * it: "Seq Scan", "Index Scan" (with the index's name), ...
 */
void
ob_explain(PGconn *conn, const char *stmt, const char *vec, int k, ObPlan *plan)
{
	char	   *lit = ob_quote_literal(conn, vec);
	char	   *sql = k < 0 ?
		ob_psprintf("EXPLAIN (COSTS off) EXECUTE %s(%s)", stmt, lit) :
		ob_psprintf("EXPLAIN (COSTS off) EXECUTE %s(%s, %d)", stmt, lit, k);
	PGresult   *res = PQexec(conn, sql);
	size_t		textlen = 0;
	int			i;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		SqlFailed(conn, "EXPLAIN EXECUTE ...");
	memset(plan, 0, sizeof(*plan));
	for (i = 0; i < PQntuples(res); i++)
		textlen += strlen(PQgetvalue(res, i, 0)) + 1;
	plan->text = ob_malloc(textlen + 1);
	plan->text[0] = '\0';
	for (i = 0; i < PQntuples(res); i++)
	{
		const char *line = PQgetvalue(res, i, 0);
		const char *s = line;
		const char *scan;

		AppendPlanLine(plan->text, line);
		while (*s == ' ')
			s++;
		if (strncmp(s, "->", 2) == 0)
			s += 2;
		while (*s == ' ')
			s++;
		scan = strstr(s, "Scan");
		if (scan == NULL)
			continue;
		if (plan->node[0] == '\0')
			CopyUntil(plan->node, sizeof(plan->node), s, " using ", " on ");
		if (plan->index[0] == '\0' && strstr(s, " using "))
			CopyUntil(plan->index, sizeof(plan->index), strstr(s, " using ") + 7, " on ", NULL);
		else if (plan->index[0] == '\0' && strncmp(s, "Bitmap Index Scan on ", 21) == 0)
			CopyUntil(plan->index, sizeof(plan->index), s + 21, " ", NULL);
	}
	if (plan->node[0] == '\0')
		snprintf(plan->node, sizeof(plan->node), "no scan");
	plan->uses_index = plan->index[0] != '\0';
	PQclear(res);
	free(sql);
	free(lit);
}

/* Names of the indexes on a table other than its primary key */
void
ob_table_indexes(PGconn *conn, const char *table, char ***names, int *n)
{
	const char *params[1] = {table};
	PGresult   *res = PQexecParams(conn,
								   "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
								   "WHERE i.indrelid = to_regclass($1) AND NOT i.indisprimary ORDER BY c.oid",
								   1, NULL, params, NULL, NULL, 0);
	int			i;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		SqlFailed(conn, "list indexes");
	*n = PQntuples(res);
	*names = ob_malloc(sizeof(char *) * (*n + 1));
	for (i = 0; i < *n; i++)
		(*names)[i] = ob_strdup(PQgetvalue(res, i, 0));
	PQclear(res);
}

/* Whether name is in the list */
static bool
InList(char **list, int n, const char *name)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/*
 * Run a CREATE INDEX statement on conn, showing the build's phase from
 * pg_stat_progress_create_index (polled from a second connection) while it
 * runs.  Returns the seconds taken and the new index's name.  Exits with the
 * server's message if the statement fails.
 */
double
ob_build_index(const char *conninfo, PGconn *conn, const char *sql,
			   const char *table, char **index_name)
{
	PGconn	   *mon = ob_connect(conninfo);
	char		pidbuf[32];
	const char *params[1] = {pidbuf};
	char	  **before,
			  **after;
	int			nbefore,
				nafter,
				i;
	double		t0 = ob_now();
	PGresult   *res;
	PGresult   *failed = NULL;
	int			sock = PQsocket(conn);

	ob_table_indexes(conn, table, &before, &nbefore);
	snprintf(pidbuf, sizeof(pidbuf), "%d", PQbackendPID(conn));
	if (!PQsendQuery(conn, sql))
		SqlFailed(conn, sql);
	for (;;)
	{
		fd_set		rfds;
		struct timeval tv = {0, 500 * 1000};

		FD_ZERO(&rfds);
		FD_SET(sock, &rfds);
		if (select(sock + 1, &rfds, NULL, NULL, &tv) > 0)
		{
			if (!PQconsumeInput(conn))
				SqlFailed(conn, sql);
			if (!PQisBusy(conn))
				break;
			continue;
		}
		res = PQexecParams(mon,
						   "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total "
						   "FROM pg_stat_progress_create_index WHERE pid = $1",
						   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		{
			double		bd = atof(PQgetvalue(res, 0, 1)),
						bt = atof(PQgetvalue(res, 0, 2)),
						td = atof(PQgetvalue(res, 0, 3)),
						tt = atof(PQgetvalue(res, 0, 4));
			char		detail[128] = "";

			if (tt > 0)
				snprintf(detail, sizeof(detail), ", tuples %.0f of %.0f", td, tt);
			else if (bt > 0)
				snprintf(detail, sizeof(detail), ", blocks %.0f of %.0f", bd, bt);
			else if (td > 0)
				snprintf(detail, sizeof(detail), ", tuples %.0f", td);
			ob_progress("CREATE INDEX: %s%s, %.0f s", PQgetvalue(res, 0, 0), detail,
						ob_now() - t0);
		}
		PQclear(res);
	}
	while ((res = PQgetResult(conn)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_COMMAND_OK && failed == NULL)
			failed = res;
		else
			PQclear(res);
	}
	ob_progress_done();
	PQfinish(mon);
	if (failed)
	{
		char	   *msg = ob_first_line(PQresultErrorMessage(failed));
		const char *hint = "";

		if (strstr(msg, "access method") && strstr(msg, "does not exist"))
			hint = " (SELECT amname FROM pg_am lists the index types this server has)";
		else if (strstr(msg, "operator class"))
			hint = " (the operator class must match the column type and --metric)";
		ob_die("CREATE INDEX failed: %s%s; statement: %s", msg, hint, sql);
	}

	ob_table_indexes(conn, table, &after, &nafter);
	*index_name = NULL;
	for (i = 0; i < nafter; i++)
		if (!InList(before, nbefore, after[i]))
			*index_name = ob_strdup(after[i]);
	if (*index_name == NULL)
		ob_die("the statement ran but made no new index on %s: the --index statement must be CREATE INDEX ... ON %%t ... (%%t stands for the table); statement: %s",
			   table, sql);
	for (i = 0; i < nbefore; i++)
		free(before[i]);
	for (i = 0; i < nafter; i++)
		free(after[i]);
	free(before);
	free(after);
	return ob_now() - t0;
}

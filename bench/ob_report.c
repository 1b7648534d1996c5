/*
 * ob_report.c
 *	  omen-bench output: the terminal table, JSON lines, and plots.
 *
 * Every measurement becomes one JSON object on one line, written to the
 * --json file (appended) and/or stdout, and kept in memory for the plots.
 * Objects are flat: string, number, boolean or null values, no nesting,
 * which is also all ob_json_parse_line reads back (for "omen-bench plot").
 *
 * Plots are PNGs drawn by gnuplot (Debian package gnuplot-nox) from a script
 * the tool writes next to each image (NAME.gp), so a plot can be restyled
 * and redrawn by hand:
 *	  recall-qps.png	 recall@k against queries per second (log scale), one
 *						 line per index and client count: the ann-benchmarks
 *						 picture; the exact scan is the point at recall 1
 *	  stream-recall.png  recall and queries per second after each round of
 *						 the streaming workload
 */
#include "ob.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

static FILE *json_file = NULL;
static bool json_to_stdout = false;
static ObRecord *own_recs = NULL;
static int	own_nrecs = 0;

/* Open the JSON outputs: a file (appended) and/or stdout */
void
ob_output_open(const char *json_path, bool json_stdout)
{
	json_to_stdout = json_stdout;
	if (json_path)
	{
		json_file = fopen(json_path, "a");
		if (json_file == NULL)
			ob_die("cannot open %s for the JSON lines: %m; give --json a writable path", json_path);
	}
}

/* Flush and close the JSON file */
void
ob_output_close(void)
{
	if (json_file && fclose(json_file) != 0)
		ob_die("cannot write the JSON lines: %m");
	json_file = NULL;
	fflush(stdout);
}

/* Where the human-readable table goes: stderr when stdout carries JSON */
FILE *
ob_table_out(void)
{
	return json_to_stdout ? stderr : stdout;
}

/* Append raw text to a JSON buffer */
static void
JsonPut(ObJson *j, const char *s, size_t n)
{
	if (j->len + n + 2 > j->cap)
	{
		j->cap = (j->len + n + 2) * 2;
		j->buf = ob_realloc(j->buf, j->cap);
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

/* Append a JSON string literal */
static void
JsonString(ObJson *j, const char *s)
{
	JsonPut(j, "\"", 1);
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;
		char		esc[8];

		if (c == '"' || c == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) c;
			JsonPut(j, esc, 2);
		}
		else if (c == '\n')
			JsonPut(j, "\\n", 2);
		else if (c == '\t')
			JsonPut(j, "\\t", 2);
		else if (c < 0x20)
		{
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			JsonPut(j, esc, 6);
		}
		else
			JsonPut(j, (const char *) &c, 1);
	}
	JsonPut(j, "\"", 1);
}

/* Start a key: a comma if needed, the quoted key, a colon */
static void
JsonKey(ObJson *j, const char *key)
{
	if (!j->first)
		JsonPut(j, ",", 1);
	j->first = false;
	JsonString(j, key);
	JsonPut(j, ":", 1);
}

/* Start an object with "kind" and a UTC timestamp */
void
ob_json_begin(ObJson *j, const char *kind)
{
	char		ts[64];
	time_t		now = time(NULL);
	struct tm	tm;

	memset(j, 0, sizeof(*j));
	j->first = true;
	JsonPut(j, "{", 1);
	ob_json_str(j, "kind", kind);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	ob_json_str(j, "time", ts);
}

/* "key": "value" (NULL value: null) */
void
ob_json_str(ObJson *j, const char *key, const char *val)
{
	JsonKey(j, key);
	if (val)
		JsonString(j, val);
	else
		JsonPut(j, "null", 4);
}

/* "key": number (NaN and infinities: null) */
void
ob_json_num(ObJson *j, const char *key, double val)
{
	char		buf[64];

	JsonKey(j, key);
	if (!isfinite(val))
	{
		JsonPut(j, "null", 4);
		return;
	}
	snprintf(buf, sizeof(buf), "%.6g", val);
	if (fabs(val) >= 1e6 && val == floor(val) && fabs(val) < 1e15)
		snprintf(buf, sizeof(buf), "%.0f", val);
	JsonPut(j, buf, strlen(buf));
}

/* "key": integer */
void
ob_json_int(ObJson *j, const char *key, long long val)
{
	char		buf[32];

	JsonKey(j, key);
	snprintf(buf, sizeof(buf), "%lld", val);
	JsonPut(j, buf, strlen(buf));
}

/* "key": true/false */
void
ob_json_bool(ObJson *j, const char *key, bool val)
{
	JsonKey(j, key);
	JsonPut(j, val ? "true" : "false", val ? 4 : 5);
}

/* Close the object */
void
ob_json_end(ObJson *j)
{
	JsonPut(j, "}", 1);
}

/* Write a finished object to the outputs, keep it for the plots, free it */
void
ob_json_emit(ObJson *j)
{
	if (json_file)
	{
		fprintf(json_file, "%s\n", j->buf);
		fflush(json_file);
	}
	if (json_to_stdout)
	{
		fprintf(stdout, "%s\n", j->buf);
		fflush(stdout);
	}
	ob_records_add(j);
	free(j->buf);
	j->buf = NULL;
}

/* Keep a copy of an emitted object as a record */
void
ob_records_add(const ObJson *j)
{
	char		err[256];

	own_recs = ob_realloc(own_recs, sizeof(ObRecord) * (own_nrecs + 1));
	if (ob_json_parse_line(j->buf, &own_recs[own_nrecs], err, sizeof(err)) < 0)
		ob_die("internal error: own JSON does not parse: %s", err);
	own_nrecs++;
}

/* Skip blanks */
static const char *
SkipWs(const char *p)
{
	while (*p && isspace((unsigned char) *p))
		p++;
	return p;
}

/* Parse a JSON string at p (after the quote is checked); returns the end or NULL */
static const char *
ParseString(const char *p, char **out)
{
	size_t		cap = 64,
				n = 0;
	char	   *s = ob_malloc(cap);

	p++;						/* the opening quote */
	while (*p && *p != '"')
	{
		char		c = *p++;

		if (c == '\\')
		{
			c = *p++;
			switch (c)
			{
				case 'n':
					c = '\n';
					break;
				case 't':
					c = '\t';
					break;
				case 'r':
					c = '\r';
					break;
				case 'b':
					c = '\b';
					break;
				case 'f':
					c = '\f';
					break;
				case 'u':
					{
						unsigned	u = 0;
						int			i;

						for (i = 0; i < 4; i++)
						{
							if (!isxdigit((unsigned char) p[i]))
							{
								free(s);
								return NULL;
							}
							u = u * 16 + (unsigned) (isdigit((unsigned char) p[i]) ? p[i] - '0' : (tolower((unsigned char) p[i]) - 'a' + 10));
						}
						p += 4;
						c = u < 0x80 ? (char) u : '?';
						break;
					}
				case '"':
				case '\\':
				case '/':
					break;
				default:
					free(s);
					return NULL;
			}
		}
		else if ((unsigned char) c < 0x20)
		{
			free(s);
			return NULL;
		}
		if (n + 2 > cap)
		{
			cap *= 2;
			s = ob_realloc(s, cap);
		}
		s[n++] = c;
	}
	if (*p != '"')
	{
		free(s);
		return NULL;
	}
	s[n] = '\0';
	*out = s;
	return p + 1;
}

/*
 * Parse one flat JSON object (string, number, true, false, null values).
 * Returns 0, or -1 with a message in err.
 */
int
ob_json_parse_line(const char *line, ObRecord *rec, char *err, size_t errlen)
{
	const char *p = SkipWs(line);

	memset(rec, 0, sizeof(*rec));
	if (*p != '{')
	{
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	p = SkipWs(p + 1);
	if (*p == '}')
		return *SkipWs(p + 1) == '\0' ? 0 : (snprintf(err, errlen, "text after the object"), -1);
	for (;;)
	{
		char	   *key,
				   *val;

		if (*p != '"' || (p = ParseString(p, &key)) == NULL)
		{
			snprintf(err, errlen, "bad key");
			ob_record_free(rec);
			return -1;
		}
		p = SkipWs(p);
		if (*p != ':')
		{
			snprintf(err, errlen, "no ':' after key %s", key);
			free(key);
			ob_record_free(rec);
			return -1;
		}
		p = SkipWs(p + 1);
		if (*p == '"')
		{
			if ((p = ParseString(p, &val)) == NULL)
			{
				snprintf(err, errlen, "bad string value for %s", key);
				free(key);
				ob_record_free(rec);
				return -1;
			}
		}
		else
		{
			const char *s = p;
			char	   *end;

			if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0)
				p += 4;
			else if (strncmp(p, "false", 5) == 0)
				p += 5;
			else
			{
				strtod(p, &end);
				if (end == p)
				{
					snprintf(err, errlen, "bad value for %s", key);
					free(key);
					ob_record_free(rec);
					return -1;
				}
				p = end;
			}
			val = ob_malloc((size_t) (p - s) + 1);
			memcpy(val, s, (size_t) (p - s));
			val[p - s] = '\0';
		}
		rec->keys = ob_realloc(rec->keys, sizeof(char *) * (rec->nfields + 1));
		rec->vals = ob_realloc(rec->vals, sizeof(char *) * (rec->nfields + 1));
		rec->keys[rec->nfields] = key;
		rec->vals[rec->nfields] = val;
		rec->nfields++;
		p = SkipWs(p);
		if (*p == ',')
		{
			p = SkipWs(p + 1);
			continue;
		}
		if (*p == '}')
		{
			p = SkipWs(p + 1);
			if (*p != '\0')
			{
				snprintf(err, errlen, "text after the object");
				ob_record_free(rec);
				return -1;
			}
			return 0;
		}
		snprintf(err, errlen, "expected ',' or '}'");
		ob_record_free(rec);
		return -1;
	}
}

/* A field's value (text), NULL if absent */
const char *
ob_record_get(const ObRecord *rec, const char *key)
{
	int			i;

	for (i = 0; i < rec->nfields; i++)
		if (strcmp(rec->keys[i], key) == 0)
			return rec->vals[i];
	return NULL;
}

/* Free a record's fields */
void
ob_record_free(ObRecord *rec)
{
	int			i;

	for (i = 0; i < rec->nfields; i++)
	{
		free(rec->keys[i]);
		free(rec->vals[i]);
	}
	free(rec->keys);
	free(rec->vals);
	memset(rec, 0, sizeof(*rec));
}

/* Print the header of the measurement table */
void
ob_table_header(int k)
{
	FILE	   *out = ob_table_out();
	char		recall[32];

	snprintf(recall, sizeof(recall), "recall@%d", k);

	fprintf(out, "\n%-36s %-28s %7s %9s %10s %9s %9s  %s\n",
			"what", "setting", "clients", recall, "QPS", "p50 ms", "p99 ms", "plan");
	fprintf(out, "%-36s %-28s %7s %9s %10s %9s %9s  %s\n",
			"------------------------------------", "----------------------------", "-------",
			"---------", "----------", "---------", "---------", "----");
	fflush(out);
}

/* One row of the measurement table (recall < 0: not applicable) */
void
ob_table_row(const char *what, const char *setting, int clients, double recall,
			 double qps, const ObLatency *lat, const char *plan)
{
	FILE	   *out = ob_table_out();
	char		rbuf[16];

	if (recall < 0)
		snprintf(rbuf, sizeof(rbuf), "-");
	else
		snprintf(rbuf, sizeof(rbuf), "%.4f", recall);
	fprintf(out, "%-36.36s %-28.28s %7d %9s %10.1f %9.3f %9.3f  %s\n",
			what, setting && *setting ? setting : "-", clients, rbuf, qps,
			lat->p50_ms, lat->p99_ms, plan ? plan : "");
	fflush(out);
}

/* Write s as a gnuplot single-quoted string ('' for a quote) */
static void
GpString(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++)
	{
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

typedef struct Series
{
	char	   *name;
	int			n;
	double	   *x;
	double	   *y;
	double	   *y2;
} Series;

/* Find or add the series called name */
static Series *
GetSeries(Series **list, int *n, const char *name)
{
	int			i;

	for (i = 0; i < *n; i++)
		if (strcmp((*list)[i].name, name) == 0)
			return &(*list)[i];
	*list = ob_realloc(*list, sizeof(Series) * (*n + 1));
	memset(&(*list)[*n], 0, sizeof(Series));
	(*list)[*n].name = ob_strdup(name);
	return &(*list)[(*n)++];
}

/* Add a point to a series */
static void
AddPoint(Series *s, double x, double y, double y2)
{
	s->x = ob_realloc(s->x, sizeof(double) * (s->n + 1));
	s->y = ob_realloc(s->y, sizeof(double) * (s->n + 1));
	s->y2 = ob_realloc(s->y2, sizeof(double) * (s->n + 1));
	s->x[s->n] = x;
	s->y[s->n] = y;
	s->y2[s->n] = y2;
	s->n++;
}

/* Free a list of series */
static void
FreeSeries(Series *list, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		free(list[i].name);
		free(list[i].x);
		free(list[i].y);
		free(list[i].y2);
	}
	free(list);
}

/* Run gnuplot on a script file; exit with what to do if it fails */
static void
RunGnuplot(const char *script)
{
	char	   *cmd = ob_psprintf("gnuplot '%s' 2>&1", script);
	int			st;

	if (system("command -v gnuplot >/dev/null 2>&1") != 0)
		ob_die("gnuplot is not installed: apt-get install gnuplot-nox (scripts/deps.sh installs it), or leave out --plot");
	st = system(cmd);
	if (st != 0)
		ob_die("gnuplot failed on %s (exit %d)", script, WIFEXITED(st) ? WEXITSTATUS(st) : st);
	free(cmd);
}

/* The terminal line of a script: pngcairo when gnuplot has it, else png */
static const char *
PngTerminal(void)
{
	static const char *term = NULL;

	if (term == NULL)
		term = system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1") == 0 ?
			"set terminal pngcairo size 960,640 font ',11'" :
			"set terminal png size 960,640";
	return term;
}

/*
 * Draw the plots the records allow into dir (created if needed): recall
 * against QPS from "query" records, recall per round from "stream"
 * records.  Returns how many PNGs were written; their paths in *made.
 */
int
ob_plot(const ObRecord *recs, int nrecs, const char *dir, const char *title,
		char ***made, int *nmade)
{
	Series	   *qs = NULL,
			   *ss = NULL;
	int			nqs = 0,
				nss = 0,
				i,
				s;
	const char *first_ds = NULL;
	bool		many_ds = false;
	const char *kname = "k";
	char		klabel[64] = "recall";

	*made = NULL;
	*nmade = 0;
	for (i = 0; i < nrecs; i++)
	{
		const char *ds = ob_record_get(&recs[i], "dataset");

		if (ds && first_ds && strcmp(ds, first_ds) != 0)
			many_ds = true;
		if (ds && !first_ds)
			first_ds = ds;
	}
	for (i = 0; i < nrecs; i++)
	{
		const ObRecord *r = &recs[i];
		const char *kind = ob_record_get(r, "kind");
		const char *label = ob_record_get(r, "label");
		const char *clients = ob_record_get(r, "clients");
		const char *recall = ob_record_get(r, "recall");
		const char *qps = ob_record_get(r, "qps");
		const char *ds = ob_record_get(r, "dataset");
		char	   *name;

		if (kind == NULL || label == NULL || recall == NULL || qps == NULL ||
			strcmp(recall, "null") == 0)
			continue;
		if (strcmp(kind, "query") == 0)
		{
			const char *k = ob_record_get(r, kname);

			if (k)
				snprintf(klabel, sizeof(klabel), "recall@%s", k);
			name = ob_psprintf("%s%s%s%s%s%s", label,
							   clients && strcmp(clients, "1") != 0 ? ", " : "",
							   clients && strcmp(clients, "1") != 0 ? clients : "",
							   clients && strcmp(clients, "1") != 0 ? " clients" : "",
							   many_ds && ds ? " / " : "", many_ds && ds ? ds : "");
			AddPoint(GetSeries(&qs, &nqs, name), atof(recall), atof(qps), 0);
			free(name);
		}
		else if (strcmp(kind, "stream") == 0 && ob_record_get(r, "round"))
		{
			const char *k = ob_record_get(r, kname);

			if (k)
				snprintf(klabel, sizeof(klabel), "recall@%s", k);
			name = ob_psprintf("%s%s%s", label, many_ds && ds ? " / " : "",
							   many_ds && ds ? ds : "");
			AddPoint(GetSeries(&ss, &nss, name), atof(ob_record_get(r, "round")),
					 atof(recall), atof(qps));
			free(name);
		}
	}
	if ((nqs > 0 || nss > 0) && ob_mkdir_p(dir) < 0)
		ob_die("cannot create the plot directory %s: %m", dir);

	if (nqs > 0)
	{
		char	   *gp = ob_psprintf("%s/recall-qps.gp", dir);
		char	   *png = ob_psprintf("%s/recall-qps.png", dir);
		FILE	   *f = fopen(gp, "w");
		double		xmin = 1.0;

		/* the recall axis from a round tenth below the lowest recall to 1 */
		for (s = 0; s < nqs; s++)
			for (i = 0; i < qs[s].n; i++)
				if (qs[s].x[i] < xmin)
					xmin = qs[s].x[i];
		xmin = floor((xmin - 0.02) * 10) / 10;
		if (xmin < 0)
			xmin = 0;

		if (f == NULL)
			ob_die("cannot write %s: %m", gp);
		fprintf(f, "# made by omen-bench; redraw with: gnuplot %s\n%s\nset termoption noenhanced\nset output ", gp, PngTerminal());
		GpString(f, png);
		fprintf(f, "\nset title ");
		GpString(f, title);
		fprintf(f, " noenhanced\nset xlabel '%s (higher is better)'\n"
				"set ylabel 'queries per second (log scale)'\nset logscale y\nset grid\n"
				"set key left bottom noenhanced box opaque\nset xrange [%.2f:1.01]\n", klabel, xmin);
		for (s = 0; s < nqs; s++)
		{
			fprintf(f, "$s%d << EOD\n", s);
			for (i = 0; i < qs[s].n; i++)
				fprintf(f, "%.6f %.6g\n", qs[s].x[i], qs[s].y[i]);
			fprintf(f, "EOD\n");
		}
		fprintf(f, "plot ");
		for (s = 0; s < nqs; s++)
		{
			fprintf(f, "%s$s%d using 1:2 with linespoints lw 2 pt 7 title ", s ? ", " : "", s);
			GpString(f, qs[s].name);
		}
		fprintf(f, "\n");
		if (fclose(f) != 0)
			ob_die("cannot write %s: %m", gp);
		RunGnuplot(gp);
		*made = ob_realloc(*made, sizeof(char *) * (*nmade + 1));
		(*made)[(*nmade)++] = png;
		free(gp);
	}
	if (nss > 0)
	{
		char	   *gp = ob_psprintf("%s/stream-recall.gp", dir);
		char	   *png = ob_psprintf("%s/stream-recall.png", dir);
		FILE	   *f = fopen(gp, "w");

		if (f == NULL)
			ob_die("cannot write %s: %m", gp);
		fprintf(f, "# made by omen-bench; redraw with: gnuplot %s\n%s\nset termoption noenhanced\nset output ", gp, PngTerminal());
		GpString(f, png);
		fprintf(f, "\nset title ");
		GpString(f, title);
		fprintf(f, " noenhanced\nset xlabel 'round (0: before any change)'\n"
				"set ylabel '%s'\nset y2label 'queries per second'\nset ytics nomirror\n"
				"set y2tics\nset grid\nset key left bottom noenhanced box opaque\n"
				"set xtics 1\nset yrange [*:1.01]\nset y2range [0:*]\n", klabel);
		for (s = 0; s < nss; s++)
		{
			fprintf(f, "$s%d << EOD\n", s);
			for (i = 0; i < ss[s].n; i++)
				fprintf(f, "%g %.6f %.6g\n", ss[s].x[i], ss[s].y[i], ss[s].y2[i]);
			fprintf(f, "EOD\n");
		}
		fprintf(f, "plot ");
		for (s = 0; s < nss; s++)
		{
			fprintf(f, "%s$s%d using 1:2 axes x1y1 with linespoints lw 2 pt 7 title ", s ? ", " : "", s);
			GpString(f, ss[s].name);
			fprintf(f, ", $s%d using 1:3 axes x1y2 with linespoints dt 2 pt 6 title ", s);
			{
				char	   *t = ob_psprintf("%s: QPS (right axis)", ss[s].name);

				GpString(f, t);
				free(t);
			}
		}
		fprintf(f, "\n");
		if (fclose(f) != 0)
			ob_die("cannot write %s: %m", gp);
		RunGnuplot(gp);
		*made = ob_realloc(*made, sizeof(char *) * (*nmade + 1));
		(*made)[(*nmade)++] = png;
		free(gp);
	}
	FreeSeries(qs, nqs);
	FreeSeries(ss, nss);
	return *nmade;
}

/* Plot this run's own measurements into dir and say where the PNGs went */
void
ob_plot_own(const char *dir, const char *title)
{
	char	  **made;
	int			nmade,
				i;

	ob_plot(own_recs, own_nrecs, dir, title, &made, &nmade);
	if (nmade == 0)
		ob_note("no plot: nothing measured that a plot shows");
	for (i = 0; i < nmade; i++)
	{
		fprintf(ob_table_out(), "plot: %s\n", made[i]);
		free(made[i]);
	}
	free(made);
}

/*
 * ob_util.c
 *	  omen-bench: errors, memory, clocks, progress lines, small helpers.
 *
 * Errors are one line on stderr, "omen-bench: what went wrong: what to do",
 * and exit 1 (2 for a bad command line).  Progress goes to stderr too: on a
 * terminal one line rewritten in place, otherwise a line every few seconds,
 * so logs stay short.
 */
#include "ob.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *ob_progname = "omen-bench";
bool		ob_quiet = false;

static bool progress_active = false;	/* a \r line is on the terminal */
static double progress_last = 0;	/* when the last non-tty line went out */
static double progress_start = 0;	/* when the current phase began */

/* End a pending progress line so the next message starts on its own line */
static void
ProgressBreak(void)
{
	if (progress_active)
	{
		fputc('\n', stderr);
		progress_active = false;
	}
}

/* Print "omen-bench: message" and exit 1 */
void
ob_die(const char *fmt,...)
{
	va_list		ap;

	ProgressBreak();
	fprintf(stderr, "%s: ", ob_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* A bad command line: one line, a pointer to --help, exit 2 */
void
ob_usage_error(const char *fmt,...)
{
	va_list		ap;

	ProgressBreak();
	fprintf(stderr, "%s: ", ob_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (%s --help shows the options)\n", ob_progname);
	exit(2);
}

/* A warning line on stderr */
void
ob_warn(const char *fmt,...)
{
	va_list		ap;

	ProgressBreak();
	fprintf(stderr, "%s: WARNING: ", ob_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* An informational line on stderr (suppressed by --quiet) */
void
ob_note(const char *fmt,...)
{
	va_list		ap;

	if (ob_quiet)
		return;
	ProgressBreak();
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* malloc that exits on failure */
void *
ob_malloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
		ob_die("out of memory (wanted %zu bytes): use a smaller dataset or fewer queries", size);
	return p;
}

/* calloc that exits on failure */
void *
ob_calloc(size_t n, size_t size)
{
	void	   *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		ob_die("out of memory (wanted %zu x %zu bytes): use a smaller dataset or fewer queries", n, size);
	return p;
}

/* realloc that exits on failure */
void *
ob_realloc(void *p, size_t size)
{
	void	   *q = realloc(p, size ? size : 1);

	if (q == NULL)
		ob_die("out of memory (wanted %zu bytes)", size);
	return q;
}

/* strdup that exits on failure */
char *
ob_strdup(const char *s)
{
	size_t		len = strlen(s) + 1;
	char	   *p = ob_malloc(len);

	memcpy(p, s, len);
	return p;
}

/* sprintf into fresh memory */
char *
ob_psprintf(const char *fmt,...)
{
	va_list		ap;
	int			len;
	char	   *p;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		ob_die("cannot format a string");
	p = ob_malloc((size_t) len + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t) len + 1, fmt, ap);
	va_end(ap);
	return p;
}

/* Seconds on the monotonic clock */
double
ob_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/*
 * Show a progress line: on a terminal rewritten in place as often as called;
 * otherwise (a log) only once a phase has run 10 seconds, then every 10.
 */
void
ob_progress(const char *fmt,...)
{
	va_list		ap;
	static int	tty = -1;
	double		now;

	if (ob_quiet)
		return;
	if (tty < 0)
		tty = isatty(fileno(stderr));
	now = ob_now();
	if (progress_start == 0)
		progress_start = now;
	if (!tty)
	{
		/* only phases that take a while get lines, one per 10 s */
		if (now - progress_start < 10.0 || now - progress_last < 10.0)
			return;
		progress_last = now;
	}
	va_start(ap, fmt);
	if (tty)
	{
		fputs("\r\033[K", stderr);
		vfprintf(stderr, fmt, ap);
		progress_active = true;
	}
	else
	{
		fputs("  ... ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
	fflush(stderr);
}

/* Clear the progress line (the caller prints the result next) */
void
ob_progress_done(void)
{
	if (progress_active)
	{
		fputs("\r\033[K", stderr);
		fflush(stderr);
		progress_active = false;
	}
	progress_last = 0;
	progress_start = 0;
}

/* Number of CPUs online (at least 1) */
int
ob_ncpus(void)
{
	long		n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (int) n;
}

/* "l2", "ip", "cosine" */
const char *
ob_metric_name(ObMetric m)
{
	switch (m)
	{
		case OB_L2:
			return "l2";
		case OB_IP:
			return "ip";
		case OB_COSINE:
			return "cosine";
	}
	return "?";
}

/* The SQL distance operator of a metric */
const char *
ob_metric_op(ObMetric m)
{
	switch (m)
	{
		case OB_L2:
			return "<->";
		case OB_IP:
			return "<#>";
		case OB_COSINE:
			return "<=>";
	}
	return "?";
}

/* Parse a metric name or operator; 0 on success, -1 if unknown */
int
ob_parse_metric(const char *s, ObMetric *m)
{
	if (strcmp(s, "l2") == 0 || strcmp(s, "<->") == 0 || strcmp(s, "euclidean") == 0)
		*m = OB_L2;
	else if (strcmp(s, "ip") == 0 || strcmp(s, "<#>") == 0 || strcmp(s, "inner_product") == 0)
		*m = OB_IP;
	else if (strcmp(s, "cosine") == 0 || strcmp(s, "<=>") == 0)
		*m = OB_COSINE;
	else
		return -1;
	return 0;
}

/*
 * A server or library message squeezed into one line: newlines become "; ",
 * "ERROR:  " prefixes and trailing blanks go.
 */
char *
ob_first_line(const char *msg)
{
	char	   *out = ob_malloc(strlen(msg ? msg : "") * 2 + 1);
	char	   *p = out;
	const char *s = msg ? msg : "";

	if (strncmp(s, "ERROR:  ", 8) == 0)
		s += 8;
	for (; *s; s++)
	{
		if (*s == '\n')
		{
			while (s[1] == ' ' || s[1] == '\t')
				s++;
			if (s[1] == '\0')
				break;
			*p++ = ';';
			*p++ = ' ';
		}
		else
			*p++ = *s;
	}
	while (p > out && isspace((unsigned char) p[-1]))
		p--;
	*p = '\0';
	return out;
}

/* mkdir -p; 0 or -1 with errno */
int
ob_mkdir_p(const char *path)
{
	char	   *copy = ob_strdup(path);
	char	   *p;

	for (p = copy + 1; *p; p++)
	{
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0777) < 0 && errno != EEXIST)
		{
			free(copy);
			return -1;
		}
		*p = '/';
	}
	if (mkdir(copy, 0777) < 0 && errno != EEXIST)
	{
		free(copy);
		return -1;
	}
	free(copy);
	return 0;
}

/*
 * idx.c
 *	  Reader for IDX files (MNIST / Fashion-MNIST), plain or gzipped.
 *
 * See idx.h for the format.  zlib's gzread reads plain files transparently,
 * so one code path handles both.
 */
#include "idx.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_CHUNK (1 << 20)

/* Format a message naming the file into idx->err; returns -1 */
static int
IdxError(IdxFile *idx, const char *fmt,...)
{
	va_list		ap;
	int			n;

	n = snprintf(idx->err, sizeof(idx->err), "%s: ", idx->path ? idx->path : "(idx)");
	if (n < 0 || (size_t) n >= sizeof(idx->err))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(idx->err + n, sizeof(idx->err) - n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Read exactly len bytes; -1 with a message on error or early end */
static int
ReadExact(IdxFile *idx, void *buf, size_t len, const char *what)
{
	unsigned char *p = buf;

	while (len > 0)
	{
		unsigned	want = len > IDX_CHUNK ? IDX_CHUNK : (unsigned) len;
		int			got = gzread((gzFile) idx->gz, p, want);

		if (got < 0)
		{
			int			zerr;
			const char *msg = gzerror((gzFile) idx->gz, &zerr);

			return IdxError(idx, "read error in %s: %s", what,
							zerr == Z_ERRNO ? strerror(errno) : msg);
		}
		if (got == 0)
			return IdxError(idx, "file ends early, in %s (truncated download?)", what);
		p += got;
		len -= got;
	}
	return 0;
}

static uint32_t
BigEndian32(const unsigned char *b)
{
	return ((uint32_t) b[0] << 24) | ((uint32_t) b[1] << 16) |
		((uint32_t) b[2] << 8) | (uint32_t) b[3];
}

const char *
idx_type_name(int type)
{
	switch (type)
	{
		case IDX_UINT8:
			return "uint8";
		case IDX_INT8:
			return "int8";
		case IDX_INT16:
			return "int16";
		case IDX_INT32:
			return "int32";
		case IDX_FLOAT32:
			return "float32";
		case IDX_FLOAT64:
			return "float64";
	}
	return "unknown";
}

static int
ElemSize(int type)
{
	switch (type)
	{
		case IDX_UINT8:
		case IDX_INT8:
			return 1;
		case IDX_INT16:
			return 2;
		case IDX_INT32:
		case IDX_FLOAT32:
			return 4;
		case IDX_FLOAT64:
			return 8;
	}
	return 0;
}

int
idx_open(IdxFile *idx, const char *path)
{
	unsigned char magic[4];
	unsigned char dimbuf[4 * IDX_MAX_DIMS];
	FILE	   *probe;
	int			gzipped = 0;
	int			i;

	memset(idx, 0, sizeof(*idx));
	idx->path = strdup(path);
	if (idx->path == NULL)
		return IdxError(idx, "out of memory");

	/* Look at the first two bytes ourselves: gzip or plain decides the size check */
	probe = fopen(path, "rb");
	if (probe == NULL)
		return IdxError(idx, "cannot open: %s", strerror(errno));
	if (fread(magic, 1, 2, probe) == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
		gzipped = 1;
	fclose(probe);

	idx->gz = gzopen(path, "rb");
	if (idx->gz == NULL)
		return IdxError(idx, "cannot open: %s", errno ? strerror(errno) : "out of memory");
	gzbuffer((gzFile) idx->gz, 256 * 1024);

	if (ReadExact(idx, magic, 4, "the magic number") < 0)
		return -1;
	if (magic[0] != 0 || magic[1] != 0)
		return IdxError(idx, "not an IDX file (magic %02x %02x %02x %02x; an IDX file starts with 00 00)",
						magic[0], magic[1], magic[2], magic[3]);
	idx->type = magic[2];
	idx->elem_size = ElemSize(idx->type);
	if (idx->elem_size == 0)
		return IdxError(idx, "unknown IDX element type 0x%02x", magic[2]);
	idx->ndims = magic[3];
	if (idx->ndims < 1 || idx->ndims > IDX_MAX_DIMS)
		return IdxError(idx, "bad IDX dimension count %d (want 1..%d)", idx->ndims, IDX_MAX_DIMS);

	if (ReadExact(idx, dimbuf, 4 * (size_t) idx->ndims, "the header's dimensions") < 0)
		return -1;
	idx->item_len = 1;
	for (i = 0; i < idx->ndims; i++)
	{
		idx->dims[i] = BigEndian32(dimbuf + 4 * i);
		if (i > 0)
		{
			if (idx->dims[i] == 0)
				return IdxError(idx, "dimension %d is 0", i);
			if (idx->item_len > (SIZE_MAX / 16) / idx->dims[i])
				return IdxError(idx, "item size overflows");
			idx->item_len *= idx->dims[i];
		}
	}
	idx->count = idx->dims[0];

	if (!gzipped)
	{
		struct stat st;
		size_t		want = 4 + 4 * (size_t) idx->ndims +
			idx->count * idx->item_len * (size_t) idx->elem_size;

		if (stat(path, &st) == 0 && (size_t) st.st_size != want)
			return IdxError(idx, "size is %lld bytes, header says %zu (%zu items of %zu %s)",
							(long long) st.st_size, want, idx->count, idx->item_len,
							idx_type_name(idx->type));
	}
	return 0;
}

int
idx_expect(IdxFile *idx, int type, int ndims, const uint32_t *want_dims)
{
	int			i;

	if (idx->type != type)
		return IdxError(idx, "element type is %s, expected %s",
						idx_type_name(idx->type), idx_type_name(type));
	if (idx->ndims != ndims)
		return IdxError(idx, "has %d dimensions, expected %d", idx->ndims, ndims);
	for (i = 0; i < ndims && want_dims; i++)
		if (want_dims[i] != 0 && idx->dims[i] != want_dims[i])
			return IdxError(idx, "dimension %d is %u, expected %u",
							i, idx->dims[i], want_dims[i]);
	return 0;
}

/* Swap multi-byte elements from big-endian to host order, in place */
static void
ToHostOrder(void *buf, size_t nelem, int elem_size)
{
	unsigned char *p = buf;
	size_t		i;
	int			j;
	const union
	{
		uint16_t	u;
		unsigned char c[2];
	}			probe = {1};

	if (elem_size == 1 || probe.c[0] == 0)	/* bytes, or a big-endian host */
		return;
	for (i = 0; i < nelem; i++, p += elem_size)
		for (j = 0; j < elem_size / 2; j++)
		{
			unsigned char t = p[j];

			p[j] = p[elem_size - 1 - j];
			p[elem_size - 1 - j] = t;
		}
}

long
idx_read_raw(IdxFile *idx, void *out, size_t nitems)
{
	size_t		left = idx->count - idx->next;

	if (nitems > left)
		nitems = left;
	if (nitems == 0)
		return 0;
	if (ReadExact(idx, out, nitems * idx->item_len * idx->elem_size, "the data") < 0)
		return -1;
	ToHostOrder(out, nitems * idx->item_len, idx->elem_size);
	idx->next += nitems;
	return (long) nitems;
}

long
idx_read_float(IdxFile *idx, float *out, size_t nitems)
{
	size_t		n,
				i;
	long		got;
	unsigned char *raw;

	if (idx->type == IDX_FLOAT32)
		return idx_read_raw(idx, out, nitems);

	n = nitems < idx->count - idx->next ? nitems : idx->count - idx->next;
	if (n == 0)
		return 0;
	raw = malloc(n * idx->item_len * idx->elem_size);
	if (raw == NULL)
		return IdxError(idx, "out of memory");
	got = idx_read_raw(idx, raw, n);
	if (got < 0)
	{
		free(raw);
		return -1;
	}
	n = (size_t) got * idx->item_len;
	for (i = 0; i < n; i++)
	{
		switch (idx->type)
		{
			case IDX_UINT8:
				out[i] = (float) raw[i];
				break;
			case IDX_INT8:
				out[i] = (float) (int8_t) raw[i];
				break;
			case IDX_INT16:
				out[i] = (float) ((int16_t *) raw)[i];
				break;
			case IDX_INT32:
				out[i] = (float) ((int32_t *) raw)[i];
				break;
			case IDX_FLOAT64:
				out[i] = (float) ((double *) raw)[i];
				break;
		}
	}
	free(raw);
	return got;
}

long
idx_skip(IdxFile *idx, size_t nitems)
{
	size_t		left = idx->count - idx->next;
	size_t		bytes;

	if (nitems > left)
		nitems = left;
	bytes = nitems * idx->item_len * idx->elem_size;
	if (bytes > 0 && gzseek((gzFile) idx->gz, (z_off_t) bytes, SEEK_CUR) < 0)
		return IdxError(idx, "cannot skip %zu items", nitems);
	idx->next += nitems;
	return (long) nitems;
}

void
idx_close(IdxFile *idx)
{
	if (idx->gz)
		gzclose((gzFile) idx->gz);
	free(idx->path);
	idx->gz = NULL;
	idx->path = NULL;
}

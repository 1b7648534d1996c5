/*
 * fmnist_load.c
 *	  Write Fashion-MNIST (or any MNIST-style IDX image/label pair) as COPY
 *	  text rows for a table (id int, label int, v vector):
 *
 *		id<TAB>label<TAB>[v1,v2,...,v784]
 *
 *	  so that  fmnist_load -s train | psql -c "\copy t from stdin"  loads it.
 *	  ids count from 0 in file order, so id N is image N of the set.
 *	  With -a it draws the images as ASCII art instead (for the demo).
 */
#include "idx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define BATCH 1024

static void
usage(FILE *out)
{
	fprintf(out,
			"usage: fmnist_load [-d DIR] [-s train|t10k] [-o OFFSET] [-n COUNT] [-c | -a]\n"
			"  Writes COPY text rows  id<TAB>label<TAB>[v1,...]  to stdout.\n"
			"  -d DIR     directory of the gzipped IDX files (default %s)\n"
			"  -s SET     train (60,000 images) or t10k (10,000; also: test); default train\n"
			"  -o OFFSET  skip the first OFFSET images\n"
			"  -n COUNT   write at most COUNT rows\n"
			"  -c         only check the files and print their shape to stderr\n"
			"  -a         draw each image as 14 lines of ASCII art instead\n",
			DEFAULT_DIR);
}

/* Append a float in the shortest form that reads back exactly */
static char *
PutFloat(char *p, float f)
{
	if (f == floorf(f) && fabsf(f) < 1e7f)
	{
		long		v = (long) f;
		char		tmp[16];
		int			n = 0;

		if (v < 0)
		{
			*p++ = '-';
			v = -v;
		}
		do
		{
			tmp[n++] = (char) ('0' + v % 10);
			v /= 10;
		} while (v > 0);
		while (n > 0)
			*p++ = tmp[--n];
		return p;
	}
	return p + sprintf(p, "%.9g", f);
}

/* Draw a 28x28 image in 28 columns by 14 lines, two pixel rows per line */
static void
DrawImage(const float *v, int rows, int cols)
{
	static const char shades[] = " .:-=+*#%@";
	int			r,
				c;

	for (r = 0; r + 1 < rows; r += 2)
	{
		for (c = 0; c < cols; c++)
		{
			float		mean = (v[r * cols + c] + v[(r + 1) * cols + c]) / 2;
			int			k = (int) (mean * (sizeof(shades) - 1) / 256.0f);

			putchar(shades[k < 0 ? 0 : (k > 9 ? 9 : k)]);
		}
		putchar('\n');
	}
}

static int
OpenChecked(IdxFile *idx, const char *path, int ndims, const uint32_t *dims)
{
	if (idx_open(idx, path) < 0 || idx_expect(idx, IDX_UINT8, ndims, dims) < 0)
	{
		fprintf(stderr, "fmnist_load: %s\n", idx->err);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *dir = DEFAULT_DIR;
	const char *set = "train";
	long		offset = 0;
	long		limit = -1;
	int			check_only = 0;
	int			ascii_art = 0;
	char		images_path[4096],
				labels_path[4096];
	IdxFile		images,
				labels;
	const uint32_t image_dims[3] = {0, 28, 28};
	float	   *vecs;
	unsigned char *labs;
	char	   *line;
	long		written = 0;
	int			c;

	while ((c = getopt(argc, argv, "d:s:o:n:cah")) != -1)
	{
		switch (c)
		{
			case 'd':
				dir = optarg;
				break;
			case 's':
				set = strcmp(optarg, "test") == 0 ? "t10k" : optarg;
				break;
			case 'o':
				offset = atol(optarg);
				break;
			case 'n':
				limit = atol(optarg);
				break;
			case 'c':
				check_only = 1;
				break;
			case 'a':
				ascii_art = 1;
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (optind != argc || offset < 0 ||
		(strcmp(set, "train") != 0 && strcmp(set, "t10k") != 0))
	{
		usage(stderr);
		return 2;
	}

	snprintf(images_path, sizeof(images_path), "%s/%s-images-idx3-ubyte.gz", dir, set);
	snprintf(labels_path, sizeof(labels_path), "%s/%s-labels-idx1-ubyte.gz", dir, set);
	if (OpenChecked(&images, images_path, 3, image_dims) < 0 ||
		OpenChecked(&labels, labels_path, 1, NULL) < 0)
		return 1;
	if (images.count != labels.count)
	{
		fprintf(stderr, "fmnist_load: %s has %zu images but %s has %zu labels\n",
				images_path, images.count, labels_path, labels.count);
		return 1;
	}
	if (check_only)
	{
		fprintf(stderr, "%s: %zu images of %ux%u %s\n%s: %zu labels\n",
				images_path, images.count, images.dims[1], images.dims[2],
				idx_type_name(images.type), labels_path, labels.count);
		return 0;
	}

	if (idx_skip(&images, offset) < 0 || idx_skip(&labels, offset) < 0)
	{
		fprintf(stderr, "fmnist_load: %s\n", images.err[0] ? images.err : labels.err);
		return 1;
	}

	vecs = malloc(sizeof(float) * images.item_len * BATCH);
	labs = malloc(BATCH);
	/* id, label, and per element up to 16 characters plus a comma */
	line = malloc(64 + 17 * images.item_len);
	if (!vecs || !labs || !line)
	{
		fprintf(stderr, "fmnist_load: out of memory\n");
		return 1;
	}

	for (;;)
	{
		size_t		want = BATCH;
		long		got,
					got_labels,
					i;

		if (limit >= 0 && (size_t) (limit - written) < want)
			want = (size_t) (limit - written);
		if (want == 0)
			break;
		got = idx_read_float(&images, vecs, want);
		if (got < 0)
		{
			fprintf(stderr, "fmnist_load: %s\n", images.err);
			return 1;
		}
		if (got == 0)
			break;
		got_labels = idx_read_raw(&labels, labs, (size_t) got);
		if (got_labels != got)
		{
			fprintf(stderr, "fmnist_load: %s\n",
					labels.err[0] ? labels.err : "labels end before images");
			return 1;
		}
		for (i = 0; i < got; i++)
		{
			const float *v = vecs + (size_t) i * images.item_len;
			char	   *p = line;
			size_t		j;

			if (ascii_art)
			{
				DrawImage(v, (int) images.dims[1], (int) images.dims[2]);
				written++;
				continue;
			}
			p += sprintf(p, "%ld\t%d\t[", offset + written, labs[i]);
			for (j = 0; j < images.item_len; j++)
			{
				if (j > 0)
					*p++ = ',';
				p = PutFloat(p, v[j]);
			}
			*p++ = ']';
			*p++ = '\n';
			if (fwrite(line, 1, p - line, stdout) != (size_t) (p - line))
			{
				perror("fmnist_load: write");
				return 1;
			}
			written++;
		}
	}
	if (fflush(stdout) != 0)
	{
		perror("fmnist_load: write");
		return 1;
	}
	idx_close(&images);
	idx_close(&labels);
	free(vecs);
	free(labs);
	free(line);
	return 0;
}

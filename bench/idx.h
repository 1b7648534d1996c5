/*
 * idx.h
 *	  Reader for IDX files (the MNIST / Fashion-MNIST container), plain or
 *	  gzipped.
 *
 * An IDX file is a 4-byte magic (two zero bytes, a type code, the number of
 * dimensions), one big-endian uint32 per dimension, then the items in
 * row-major order, multi-byte values big-endian.  The first dimension counts
 * the items; the product of the others is the item's length (784 for a 28x28
 * image, 1 for a label).
 *
 * Standalone C99 + zlib, no PostgreSQL header: the loader and omen-bench both
 * use it.  Every function that can fail returns -1 and leaves a message that
 * names the file in idx->err.
 */
#ifndef OMEN_IDX_H
#define OMEN_IDX_H

#include <stddef.h>
#include <stdint.h>

#define IDX_MAX_DIMS 8

/* IDX type codes (third magic byte) */
#define IDX_UINT8	0x08
#define IDX_INT8	0x09
#define IDX_INT16	0x0B
#define IDX_INT32	0x0C
#define IDX_FLOAT32 0x0D
#define IDX_FLOAT64 0x0E

typedef struct IdxFile
{
	void	   *gz;				/* gzFile; zlib reads plain files too */
	char	   *path;
	int			type;			/* IDX_UINT8, ... */
	int			elem_size;		/* bytes per element */
	int			ndims;
	uint32_t	dims[IDX_MAX_DIMS];
	size_t		count;			/* items: dims[0] */
	size_t		item_len;		/* elements per item: product of dims[1..] */
	size_t		next;			/* index of the next item idx_read returns */
	char		err[512];
} IdxFile;

/*
 * Open an IDX file and validate its header: magic, type code, dimension
 * count, and (for a plain file) that the data is as long as the header says
 * (gzipped files are checked for truncation as they are read).
 */
extern int	idx_open(IdxFile *idx, const char *path);

/*
 * Check the header against what the caller expects: ndims and, for each
 * entry of want_dims that is not 0, that dimension.  For example
 * {0, 28, 28} accepts any number of 28x28 images.
 */
extern int	idx_expect(IdxFile *idx, int type, int ndims, const uint32_t *want_dims);

/*
 * Read up to nitems items as float4 into out (nitems * item_len floats),
 * converting from the file's type.  Returns the number of items read (0 at
 * the end) or -1 on a read error or a truncated file.
 */
extern long idx_read_float(IdxFile *idx, float *out, size_t nitems);

/* Same, as raw elements in the file's type (byte-swapped to host order) */
extern long idx_read_raw(IdxFile *idx, void *out, size_t nitems);

/* Skip nitems items; returns the number skipped or -1 */
extern long idx_skip(IdxFile *idx, size_t nitems);

extern void idx_close(IdxFile *idx);

/* Name of an IDX type code, e.g. "uint8" */
extern const char *idx_type_name(int type);

#endif							/* OMEN_IDX_H */

/*
 * hnswutils.c
 *	  omen_hnsw: options, the meta page, element and neighbour tuples on
 *	  pages, and the graph search over pages (callbacks for the shared
 *	  best-first search in src/index_search.c).
 */
#include "postgres.h"

#include <math.h>

#include "access/generic_xlog.h"
#include "common/pg_prng.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "simd/omen_half.h"
#include "simd/omen_simd.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

int			hnsw_ef_search = HNSW_DEFAULT_EF_SEARCH;
double		hnsw_sketch_margin = 0.2;

/* The index's options, or defaults */
HnswOptions *
HnswGetOptions(Relation index)
{
	return (HnswOptions *) index->rd_options;
}

/* m from the options */
int
HnswGetM(Relation index)
{
	HnswOptions *opts = HnswGetOptions(index);

	return opts ? opts->m : HNSW_DEFAULT_M;
}

/* ef_construction from the options */
int
HnswGetEfConstruction(Relation index)
{
	HnswOptions *opts = HnswGetOptions(index);

	return opts ? opts->ef_construction : HNSW_DEFAULT_EF_CONSTRUCTION;
}

/* alpha from the options (it may change at any time: ALTER INDEX) */
float
HnswGetAlpha(Relation index)
{
	HnswOptions *opts = HnswGetOptions(index);

	return (float) (opts ? opts->alpha : HNSW_DEFAULT_ALPHA);
}

/* storage from the options, with HNSW_STORAGE_SQ8 for codes = sq8 */
int
HnswGetStorage(Relation index)
{
	HnswOptions *opts = HnswGetOptions(index);

	if (!opts)
		return HNSW_STORAGE_FLOAT;
	return opts->storage |
		(opts->codes == HNSW_CODES_SQ8 ? HNSW_STORAGE_SQ8 : 0);
}

/* The sketch option (auto unless set) */
int
HnswGetSketchOption(Relation index)
{
	HnswOptions *opts = HnswGetOptions(index);

	return opts ? opts->sketch : HNSW_SKETCH_AUTO;
}

/*
 * Whether an index built with sketch option mode gets edge sketches of
 * bits bits (0: its operator class has none).  With auto, where they take
 * no room that the pages would not leave empty anyway: a layer-0 element
 * and its neighbour tuple fit as many times on a page with the sketches
 * as without (at m = 16: two with float vectors of 620 to 807
 * dimensions, one from 960 to 2,029), and what the page has left lets an insert
 * of level 2 take the place VACUUM freed of a level-0 element (its list is
 * 2m slots longer), or they are too large to share a page at all.
 * Elsewhere they would make the index larger (by half with float vectors
 * of 512 dimensions, or half vectors of 768 with sq8 codes) and are left
 * to sketch = on.
 */
bool
HnswSketchWanted(int mode, int dim, int storage, int m, int bits)
{
	Size		element;
	Size		plain;
	Size		sketched;
	Size		perpage;

	if (bits == 0 || mode == HNSW_SKETCH_OFF)
		return false;
	if (mode == HNSW_SKETCH_ON)
		return true;
	element = MAXALIGN(HNSW_ELEMENT_SIZE(dim, storage)) +
		2 * sizeof(ItemIdData);
	plain = element + MAXALIGN(HNSW_NEIGHBOR_SIZE(0, m, 0));
	sketched = element + MAXALIGN(HNSW_NEIGHBOR_SIZE(0, m, bits));
	if (plain > HNSW_PAGE_CAPACITY)
		return true;
	perpage = HNSW_PAGE_CAPACITY / sketched;
	return perpage == HNSW_PAGE_CAPACITY / plain &&
		HNSW_PAGE_CAPACITY - perpage * sketched >=
		MAXALIGN(HNSW_NEIGHBOR_SIZE(2, m, bits)) -
		MAXALIGN(HNSW_NEIGHBOR_SIZE(0, m, bits));
}

/* Copy the meta page */
void
HnswReadMeta(Relation index, HnswMetaPageData *meta)
{
	OmenReadMeta(index, HNSW_PAGE_META, meta, sizeof(HnswMetaPageData),
				 HNSW_MAGIC, HNSW_VERSION, "omen_hnsw");
}

/*
 * The basis, kept in the relcache entry (rd_amcache) once read: it
 * is written by the build and never changes until the index is rebuilt.
 * A relcache flush frees rd_amcache, so it is looked up again at each use
 * (HnswGetBasis), never held.
 */
typedef struct HnswAmCache
{
	uint32		bits;
	uint32		dim;
	int			npivots;		/* -1: not read yet */
	HnswPivots	pivots;			/* arrays in the same chunk */
	float		basis[FLEXIBLE_ARRAY_MEMBER];
} HnswAmCache;

/*
 * Share-lock block blkno, which must be a page of the basis's kind (the
 * basis, or the pivots: what names which, for the error)
 */
static Buffer
ReadBasisPage(Relation index, BlockNumber blkno, const char *what)
{
	Buffer		buf = OmenReadBuffer(index, blkno);

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	if (OmenPageGetOpaque(BufferGetPage(buf))->kind != HNSW_PAGE_BASIS)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("omen_hnsw index \"%s\": block %u is not a %s page",
						RelationGetRelationName(index), blkno, what)));
	return buf;
}

const float *
HnswGetBasis(HnswShared *hs)
{
	Relation	index = hs->index;
	HnswAmCache *cache = (HnswAmCache *) index->rd_amcache;
	Size		nfloats = (Size) hs->proj_bits * hs->dim;
	Size		perpage = HNSW_PAGE_CAPACITY / sizeof(float);
	Size		done = 0;

	Assert(hs->proj_bits > 0);
	if (cache && cache->bits == (uint32) hs->proj_bits &&
		cache->dim == (uint32) hs->dim)
		return cache->basis;
	cache = MemoryContextAlloc(index->rd_indexcxt,
							   offsetof(HnswAmCache, basis) + sizeof(float) * nfloats);
	cache->bits = hs->proj_bits;
	cache->dim = hs->dim;
	cache->npivots = -1;
	for (BlockNumber blkno = hs->basis_blkno; done < nfloats; blkno++)
	{
		Buffer		buf = ReadBasisPage(index, blkno, "basis");
		Size		k = Min(perpage, nfloats - done);

		memcpy(cache->basis + done, PageGetContents(BufferGetPage(buf)),
			   sizeof(float) * k);
		UnlockReleaseBuffer(buf);
		done += k;
	}
	if (index->rd_amcache)
		pfree(index->rd_amcache);
	index->rd_amcache = cache;
	return cache->basis;
}

/*
 * The pivots, kept in rd_amcache with the basis once read (their
 * projections stay halves, 0.5 MB for 4,096 pivots of 64 bits, which the
 * half kernels rank without decoding them); NULL if none.
 * The pointer is good until the next read of a buffer, which can flush
 * the cache.
 */
const HnswPivots *
HnswGetPivots(HnswShared *hs)
{
	Relation	index = hs->index;
	HnswAmCache *cache;
	HnswAmCache *grown;
	int			bits = hs->proj_bits;
	Size		nfloats = (Size) bits * hs->dim;
	Size		basissize = offsetof(HnswAmCache, basis) + sizeof(float) * nfloats;
	Size		recsize = HNSW_PIVOT_SIZE(bits);
	int			perpage = HNSW_PAGE_CAPACITY / recsize;
	int			n = hs->npivots;

	if (bits == 0 || n <= 0)
		return NULL;
	(void) HnswGetBasis(hs);
	cache = (HnswAmCache *) index->rd_amcache;
	if (cache->npivots != n)
	{
		/*
		 * Read into this context first, so that a page found corrupt leaves
		 * nothing behind in the relcache's; then one chunk there: the basis,
		 * then the pivots' arrays.
		 */
		Size		projsize = MAXALIGN(sizeof(uint16) * bits * n);
		Size		tidsize = MAXALIGN(sizeof(ItemPointerData) * n);
		Size		levelsize = MAXALIGN(n);
		Size		gstartsize = MAXALIGN(sizeof(int) * (n + 1));
		Size		pivsize = projsize + tidsize + levelsize + gstartsize;
		char	   *tmp = palloc(pivsize);
		uint16	   *tproj = (uint16 *) tmp;
		ItemPointerData *ttids = (ItemPointerData *) (tmp + projsize);
		uint8	   *tlevels = (uint8 *) (tmp + projsize + tidsize);
		int		   *tgstart = (int *) (tmp + projsize + tidsize + levelsize);
		int			ntops = 0;
		int			members = 0;
		char	   *p;

		for (int i = 0; i < n; i += perpage)
		{
			Buffer		buf = ReadBasisPage(index,
											hs->pivot_blkno + i / perpage,
											"pivot");
			Page		page = BufferGetPage(buf);

			for (int j = i; j < n && j < i + perpage; j++)
			{
				HnswPivotData *rec = (HnswPivotData *)
					(PageGetContents(page) + (Size) (j - i) * recsize);

				ttids[j] = rec->tid;
				tlevels[j] = rec->level;
				memcpy(tproj + (Size) j * bits, rec->proj,
					   sizeof(uint16) * bits);
				if (rec->level > hs->pivot_level && j == ntops)
				{
					tgstart[ntops] = rec->nmembers;
					ntops++;
				}
			}
			UnlockReleaseBuffer(buf);
		}
		/* the groups' starts; their sizes must add up to the members */
		for (int j = 0; j < ntops; j++)
		{
			int			size = tgstart[j];

			tgstart[j] = ntops + members;
			members += size;
		}
		tgstart[ntops] = ntops + members;
		if (ntops > 0 && ntops + members != n)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("omen_hnsw index \"%s\": the pivots' groups hold %d members, not %d",
							RelationGetRelationName(index), members,
							n - ntops)));

		(void) HnswGetBasis(hs);	/* in case the reads flushed the cache */
		cache = (HnswAmCache *) index->rd_amcache;
		grown = MemoryContextAlloc(index->rd_indexcxt,
								   MAXALIGN(basissize) + pivsize);
		memcpy(grown, cache, basissize);
		p = (char *) grown + MAXALIGN(basissize);
		memcpy(p, tmp, pivsize);
		pfree(tmp);
		grown->pivots.n = n;
		grown->pivots.ntops = ntops;
		grown->pivots.proj = (const uint16 *) p;
		grown->pivots.tids = (const ItemPointerData *) (p + projsize);
		grown->pivots.levels = (const uint8 *) (p + projsize + tidsize);
		grown->pivots.gstart = (const int *) (p + projsize + tidsize + levelsize);
		grown->npivots = n;
		pfree(cache);
		index->rd_amcache = grown;
		cache = grown;
	}
	return &cache->pivots;
}

/* The bits per edge sketch for an index of dim dimensions and this metric */
int
HnswChooseSketchBits(int dim, int metric)
{
	if (metric != OMEN_METRIC_L2 && metric != OMEN_METRIC_COSINE &&
		metric != OMEN_METRIC_IP)
		return 0;
	return Min(dim, OMEN_SKETCH_MAX_BITS);
}

/* Size of a neighbour tuple for level in this index */
Size
HnswNeighborSize(HnswShared *hs, int level)
{
	return HNSW_NEIGHBOR_SIZE(level, hs->m, hs->sketch_bits);
}

/* Mark layer-0 slot's sketch unknown (never skipped) */
void
HnswSketchClear(HnswShared *hs, HnswNeighborTuple ntup, int slot)
{
	if (hs->sketch_bits == 0)
		return;
	HnswSketchSigns(ntup, hs->m)[slot] = 0;
	HnswSketchNorms(ntup, hs->m)[slot] = NAN;
}

/*
 * Store the element's own projection in its neighbour tuple, as halves
 * (2 bytes each: 128 bytes less a tuple at 64 bits, so at 784 float
 * dimensions two level-0 elements with sketches leave 368 bytes of a page
 * for nodes of higher levels).  A projection beyond the half range (a
 * vector longer than 65,504) is stored as NaN: the element's edges get no
 * sketches, and scans never pass over its neighbours.
 */
void
HnswSketchSetProj(HnswShared *hs, HnswNeighborTuple ntup, const float *proj)
{
	uint16	   *out = HnswSketchProj(ntup, hs->m);

	if (HnswFitsHalf(proj, hs->sketch_bits))
		OmenFloatToHalf(proj, out, hs->sketch_bits);
	else
		for (int i = 0; i < hs->sketch_bits; i++)
			out[i] = 0x7E00;	/* a half NaN */
}

/*
 * Layer-0 slot's sketch from the neighbour's projection and |v - c|.
 * cproj is the element's own projection as stored in the tuple, decoded to
 * float by a caller that fills many slots; NULL to decode it here.
 */
void
HnswSketchFillProj(HnswShared *hs, HnswNeighborTuple ntup, int slot,
				   float norm, const float *vproj, const float *cproj)
{
	float		own[OMEN_SKETCH_MAX_BITS];

	if (hs->sketch_bits == 0)
		return;
	if (cproj == NULL)
	{
		OmenHalfToFloat(HnswSketchProj(ntup, hs->m), own, hs->sketch_bits);
		cproj = own;
	}
	if (isnan(cproj[0]))
	{
		HnswSketchClear(hs, ntup, slot);
		return;
	}
	HnswSketchSigns(ntup, hs->m)[slot] =
		OmenSketchSigns(vproj, cproj, hs->sketch_bits);
	HnswSketchNorms(ntup, hs->m)[slot] = norm;
}

/*
 * Layer-0 slot's sketch for the edge to a neighbour with vector vvec, the
 * element's own vector being cvec (its projection already in the tuple)
 */
void
HnswSketchFill(HnswShared *hs, HnswNeighborTuple ntup, int slot,
			   const float *cvec, const float *vvec)
{
	float		vproj[OMEN_SKETCH_MAX_BITS];

	if (hs->sketch_bits == 0)
		return;
	OmenSketchProject(HnswGetBasis(hs), hs->sketch_bits, hs->dim, vvec, vproj);
	HnswSketchFillProj(hs, ntup, slot,
					   sqrtf(omen_kernels->l2sq(cvec, vvec, hs->dim)), vproj,
					   NULL);
}

/* Set up what searches and inserts on this index need */
void
HnswInitShared(HnswShared *hs, Relation index)
{
	HnswMetaPageData meta;

	HnswReadMeta(index, &meta);
	memset(hs, 0, sizeof(*hs));
	hs->index = index;
	OmenDistanceInit(&hs->dist, index);
	hs->dim = meta.dim;
	hs->dist.dim = meta.dim;
	hs->m = meta.m;
	hs->ef_construction = meta.ef_construction;
	hs->storage = meta.storage;
	hs->ml = 1.0f / logf((float) hs->m);
	hs->alpha = HnswGetAlpha(index);
	hs->entry = meta.entry;
	hs->entry_level = meta.entry_level;
	if (hs->dim > 0)
		hs->scratch = palloc(sizeof(float) * hs->dim);
	/* the basis's stack arrays hold OMEN_SKETCH_MAX_BITS; sketches use it */
	if (meta.proj_bits > Min(meta.dim, OMEN_SKETCH_MAX_BITS) ||
		(meta.sketch_bits != 0 && meta.sketch_bits != meta.proj_bits))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("omen_hnsw index \"%s\" has a corrupt meta page: %u basis rows, %u sketch bits, %u dimensions",
						RelationGetRelationName(index), meta.proj_bits,
						meta.sketch_bits, meta.dim)));
	if (meta.proj_bits > 0 && hs->dim > 0)
	{
		hs->sketch_bits = meta.sketch_bits;
		hs->proj_bits = meta.proj_bits;
		hs->basis_blkno = meta.basis_blkno;
		hs->pivot_blkno = meta.pivot_blkno;
		hs->npivots = meta.npivots;
		hs->pivot_level = meta.pivot_level;
	}
}

/*
 * Read the entry point again: the one read before may have been replaced
 * by VACUUM and freed since (a search from it then finds nothing)
 */
void
HnswRefreshEntry(HnswShared *hs)
{
	HnswMetaPageData meta;

	HnswReadMeta(hs->index, &meta);
	hs->entry = meta.entry;
	hs->entry_level = meta.entry_level;
}

/* Release what HnswInitShared allocated */
void
HnswFreeShared(HnswShared *hs)
{
	if (hs->scratch)
		pfree(hs->scratch);
	hs->scratch = NULL;
}

/*
 * The highest level whose neighbour tuple fits on an empty page, so every
 * tuple the index writes fits somewhere.
 */
int
HnswMaxLevel(int m)
{
	int			level = HNSW_MAX_LEVEL;

	while (level > 0 &&
		   MAXALIGN(HNSW_NEIGHBOR_SIZE(level, m, OMEN_SKETCH_MAX_BITS)) +
		   sizeof(ItemIdData) >
		   HNSW_PAGE_CAPACITY)
		level--;
	return level;
}

/* Draw a level: floor(-ln(U) * ml), U uniform in (0,1] */
int
HnswRandomLevel(pg_prng_state *rng, float ml, int maxlevel)
{
	double		u = 1.0 - pg_prng_double(rng);	/* (0,1] */
	int			level = (int) floor(-log(u) * ml);

	return Min(level, maxlevel);
}

/* Whether an element of dim dimensions fits on an empty page */
static bool
HnswDimFits(int dim, int storage)
{
	return MAXALIGN(HNSW_ELEMENT_SIZE(dim, storage)) + sizeof(ItemIdData) <=
		HNSW_PAGE_CAPACITY;
}

/* The most dimensions an element with this storage holds */
static int
HnswMaxDim(int storage)
{
	int			dim = HNSW_PAGE_CAPACITY / 2;

	while (dim > 0 && !HnswDimFits(dim, storage))
		dim--;
	return dim;
}

/* Check that vectors of this length fit an element tuple on a page */
void
HnswCheckDim(Relation index, int dim, int storage)
{
	if (!HnswDimFits(dim, storage))
	{
		int			codes = storage & HNSW_STORAGE_SQ8;

		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("omen_hnsw index \"%s\" cannot hold vectors of %d dimensions with storage = %s%s",
						RelationGetRelationName(index), dim,
						HnswStorageHalf(storage) ? "half" : "float",
						codes ? " and codes = sq8" : ""),
				 errdetail("With storage = float it holds up to %d dimensions, with storage = half up to %d%s.",
						   HnswMaxDim(HNSW_STORAGE_FLOAT | codes),
						   HnswMaxDim(HNSW_STORAGE_HALF | codes),
						   codes ? " (with codes = sq8)" : "")));
	}
}

/* The vector of an element tuple as float4 (decoding half storage) */
void
HnswElementGetVector(HnswShared *hs, HnswElementTuple etup, float *out)
{
	const char *v = HnswElementVectorData(etup, hs->dim, hs->storage);

	if (HnswStorageHalf(hs->storage))
		OmenHalfToFloat((const uint16 *) v, out, hs->dim);
	else
		memcpy(out, v, sizeof(float) * hs->dim);
}

/*
 * Encode vec as an sq8 code: 256 even steps from its smallest to its
 * largest component, each component rounded to the nearest step.
 */
void
HnswSq8Encode(const float *vec, int dim, HnswSq8Head *head, uint8 *codes)
{
	float		lo = vec[0];
	float		hi = vec[0];
	double		norm2 = 0.0;

	for (int i = 1; i < dim; i++)
	{
		lo = Min(lo, vec[i]);
		hi = Max(hi, vec[i]);
	}
	head->lo = lo;
	head->step = (hi - lo) / 255.0f;
	for (int i = 0; i < dim; i++)
	{
		float		c = 0.0f;
		float		x;

		if (head->step > 0.0f)
			c = rintf((vec[i] - lo) / head->step);
		c = Min(Max(c, 0.0f), 255.0f);
		codes[i] = (uint8) c;
		x = lo + head->step * c;
		norm2 += (double) x * x;
	}
	head->norm2 = (float) norm2;
}

/*
 * Store vec in an element tuple's data, and its sq8 code if the index has
 * codes: code (HnswSq8Head, then dim bytes), when the caller has it
 * already (the build), else encoded here
 */
void
HnswElementSetVector(HnswShared *hs, HnswElementTuple etup, const float *vec,
					 const HnswSq8Head *code)
{
	char	   *v = HnswElementVectorData(etup, hs->dim, hs->storage);

	if (HnswStorageSq8(hs->storage) && code)
		memcpy(etup->data, code, sizeof(HnswSq8Head) + hs->dim);
	else if (HnswStorageSq8(hs->storage))
		HnswSq8Encode(vec, hs->dim, (HnswSq8Head *) etup->data,
					  (uint8 *) etup->data + sizeof(HnswSq8Head));
	if (HnswStorageHalf(hs->storage))
		OmenFloatToHalf(vec, (uint16 *) v, hs->dim);
	else
		memcpy(v, vec, sizeof(float) * hs->dim);
}

/* Distance from q to the vector in an element tuple on a page */
float
HnswElementDistance(HnswShared *hs, HnswElementTuple etup, const float *q)
{
	const char *v = HnswElementVectorData(etup, hs->dim, hs->storage);

	if (HnswStorageHalf(hs->storage))
		return OmenDistanceCalcHalf(&hs->dist, q, (const uint16 *) v,
									hs->scratch);
	return OmenDistanceCalc(&hs->dist, q, (const float *) v);
}

/*
 * The distance a page search walks by: from the sq8 code when the index
 * has codes (HnswSq8Distance; other metrics decode x~), else the exact
 * distance.
 */
static float
HnswWalkDistance(HnswDiskSearch *ds, HnswElementTuple etup)
{
	HnswShared *hs = ds->hs;
	const HnswSq8Head *head;
	const uint8 *codes;

	if (!HnswStorageSq8(hs->storage))
		return HnswElementDistance(hs, etup, ds->query);

	head = (const HnswSq8Head *) etup->data;
	codes = (const uint8 *) etup->data + sizeof(HnswSq8Head);
	if (hs->dist.metric != OMEN_METRIC_L2 &&
		hs->dist.metric != OMEN_METRIC_COSINE &&
		hs->dist.metric != OMEN_METRIC_IP)
	{
		for (int i = 0; i < hs->dim; i++)
			hs->scratch[i] = head->lo + head->step * codes[i];
		return OmenDistanceCalc(&hs->dist, ds->query, hs->scratch);
	}
	return HnswSq8Distance(hs->dist.metric, head, codes, hs->dim, ds->query,
						   ds->qsum, ds->qnorm2);
}

/*
 * A bound on |x - x~|, the distance between an element's stored vector x
 * (float, or half: what exact distances are computed from) and its sq8
 * code x~.  Rounding to the nearest of the 256 steps errs by at most step
 * / 2 per component, and a half vector by at most 2^-11 of the value (or
 * 2^-25 below half's normal range) from the float the code was made from;
 * the bound takes the largest such error in every dimension, with a
 * margin for the float arithmetic.
 */
static float
HnswCodeError(HnswShared *hs, const HnswSq8Head *head, float maxabs,
			  float sqrtdim)
{
	float		per = head->step * 0.5f;

	if (HnswStorageHalf(hs->storage))
		per += maxabs * (1.0f / 2048.0f) + 3.0e-8f;
	return sqrtdim * per * 1.0001f;
}

/*
 * Turn the walk (code) distances c[i].dist of a batch into lower bounds of
 * their exact distances, so a scan re-scores only the members that could
 * still come next.  With |x - x~| <= e (HnswCodeError):
 *	L2 and cosine (L2 between unit vectors): |q - x| >= |q - x~| - e;
 *	inner product: -q.x >= -q.x~ - |q| e.
 * The walk distance itself is computed in float from large terms: |q|^2,
 * |x~|^2 and sums of dim products q_i (x~_i - lo), each at most |q_i| 2M
 * with M the largest |x~_i|, so at most 2M sqrt(dim) |q| in all.  Each
 * distance is first lowered by a slack over three times the worst-case
 * rounding of such sums (dim u their magnitude, u = 2^-24).  Returns
 * false (nothing changed) for other metrics and for indexes without codes.
 */
bool
HnswDiskLowerBounds(HnswDiskSearch *ds, OmenCand *c, int n)
{
	HnswShared *hs = ds->hs;
	float		qnorm = sqrtf(ds->qnorm2);
	float		sqrtdim = sqrtf((float) hs->dim);
	float		rel = 2.0e-7f * (float) hs->dim;

	if (!HnswStorageSq8(hs->storage) ||
		(hs->dist.metric != OMEN_METRIC_L2 &&
		 hs->dist.metric != OMEN_METRIC_COSINE &&
		 hs->dist.metric != OMEN_METRIC_IP))
		return false;
	for (int i = 0; i < n; i++)
	{
		const HnswSq8Head *head = &ds->nodes[c[i].aux].code;
		float		maxabs = Max(fabsf(head->lo),
								 fabsf(head->lo + 255.0f * head->step));
		float		e = HnswCodeError(hs, head, maxabs, sqrtdim);
		float		slack = rel * (ds->qnorm2 + head->norm2 +
								   4.0f * sqrtdim * qnorm * maxabs) + 1.0e-30f;

		if (hs->dist.metric == OMEN_METRIC_IP)
			c[i].dist = c[i].dist - qnorm * e - slack;
		else
		{
			float		r = sqrtf(Max(c[i].dist - slack, 0.0f)) - e;

			c[i].dist = r > 0.0f ? r * r * 0.9999f : 0.0f;
		}
	}
	return true;
}

/*
 * Read the element tuple at tid under a share lock and copy out what a
 * search needs.  Returns false if the slot holds no element (free, or not
 * an element tuple at all).
 */
static bool
ReadElement(HnswShared *hs, ItemPointer tid, HnswNode *node, const float *q,
			float *dist)
{
	BlockNumber blkno = ItemPointerGetBlockNumber(tid);
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	Buffer		buf;
	Page		page;
	HnswElementTuple etup;
	bool		ok = false;

	buf = ReadBuffer(hs->index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	etup = (HnswElementTuple) OmenPageGetTuple(page, off);
	{
		if (etup && etup->type == HNSW_TUPLE_ELEMENT &&
			etup->state != HNSW_ELEMENT_FREE)
		{
			node->tid = *tid;
			node->neighbortid = etup->neighbortid;
			node->level = etup->level;
			node->state = etup->state;
			node->version = etup->version;
			memcpy(node->heaptids, etup->heaptids, sizeof(node->heaptids));
			if (q)
				*dist = HnswElementDistance(hs, etup, q);
			ok = true;
		}
	}
	UnlockReleaseBuffer(buf);
	return ok;
}

/*
 * Copy layer `layer` of node's neighbour tuple into out (valid tids only).
 * Returns the count; 0 if the tuple is gone, lower than layer, or now
 * another element's (the element was freed and its slots reused since
 * node was read: the stamps differ).
 */
static int
ReadNeighbors(HnswShared *hs, const HnswNode *node, int layer, ItemPointer out,
			  HnswDiskSearch *ds)
{
	Buffer		buf;
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(&node->neighbortid);
	int			n = 0;

	buf = OmenReadBuffer(hs->index, ItemPointerGetBlockNumber(&node->neighbortid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	{
		HnswNeighborTuple ntup = (HnswNeighborTuple) OmenPageGetTuple(page, off);

		if (ntup && ntup->type == HNSW_TUPLE_NEIGHBORS &&
			ntup->version == node->version)
		{
			int			start = HnswLayerStart(layer, hs->m);
			int			cap = HnswLayerCapacity(layer, hs->m);
			ItemPointerData *tids = HnswNeighborTids(ntup, hs->m, hs->sketch_bits);

			if (start + cap <= ntup->count && hs->sketch_bits > 0 && ds &&
				ds->qproj && layer == 0)
			{
				const uint64 *signs = HnswSketchSigns(ntup, hs->m);
				const float *norms = HnswSketchNorms(ntup, hs->m);
				float		cproj[OMEN_SKETCH_MAX_BITS];

				/* the sketches are before the tids: ask for them at once */
				OmenPrefetch(ntup, HNSW_TIDS_OFFSET(hs->m, hs->sketch_bits));
				for (int i = 0; i < cap; i++)
				{
					if (ItemPointerIsValid(&tids[i]))
					{
						ds->lastsigns[n] = signs[i];
						ds->lastnorms[n] = norms[i];
						out[n++] = tids[i];
					}
				}
				OmenHalfToFloat(HnswSketchProj(ntup, hs->m), cproj,
								hs->sketch_bits);
				ds->lastqsigns = OmenSketchSigns(ds->qproj, cproj,
												 hs->sketch_bits);
				ds->nlast = n;
				ds->lastvalid = true;
			}
			else if (start + cap <= ntup->count)
			{
				for (int i = 0; i < cap; i++)
				{
					if (ItemPointerIsValid(&tids[start + i]))
						out[n++] = tids[start + i];
				}
			}
		}
	}
	UnlockReleaseBuffer(buf);
	return n;
}

/* Read an element's header fields (no distance); false if not an element */
bool
HnswReadElementNode(HnswShared *hs, ItemPointer tid, HnswNode *node)
{
	return ReadElement(hs, tid, node, NULL, NULL);
}

/* The valid neighbours of layer `layer` in node's neighbour tuple */
int
HnswReadNeighborLayer(HnswShared *hs, const HnswNode *node, int layer,
					  ItemPointer out)
{
	return ReadNeighbors(hs, node, layer, out, NULL);
}

/* Remember a node read during a search; returns its index */
uint32
HnswDiskSearchAddNode(HnswDiskSearch *ds, HnswNode *node)
{
	if (ds->nnodes == ds->maxnodes)
	{
		ds->maxnodes *= 2;
		ds->nodes = repalloc(ds->nodes, sizeof(HnswNode) * ds->maxnodes);
	}
	ds->nodes[ds->nnodes] = *node;
	return ds->nnodes++;
}

/*
 * Read a batch of element tuples for a page search: OmenGraphOps.visit
 * (walk distances, new nodes remembered) or the re-scoring of results
 * (exact distances).  The cost of a visit is memory latency (the buffer
 * header, the line pointer, kilobytes of vector), not the distance, so the
 * batch is processed in stages that let those misses overlap: prefetch
 * every buffer header and line pointer (through this backend's buffer
 * hints); pin every page; read the line pointers and prefetch the bytes the
 * distance reads (the code, or the vector); then lock, compute and release
 * one at a time.  The unlocked looks only choose addresses to prefetch;
 * nothing is used until the page is locked.
 */
static void
ReadBatch(HnswDiskSearch *ds, const uint64 *ids, int n, OmenVisit *out,
		  bool exact)
{
	HnswShared *hs = ds->hs;
	Buffer		bufs[HNSW_MAX_M * 2];
	Size		esize = HNSW_ELEMENT_SIZE(hs->dim, hs->storage);
	Size		from = 0;
	Size		len = esize;

	if (HnswStorageSq8(hs->storage))
	{
		Size		vstart = offsetof(HnswElementTupleData, data) +
			HNSW_CODE_SIZE(hs->dim, hs->storage);

		if (exact)
		{
			/* the header (state, heap TIDs) and the vector */
			from = vstart;
			len = esize - vstart;
		}
		else
			len = vstart;
	}

	Assert(n <= HNSW_MAX_M * 2);
	for (int i = 0; i < n; i++)
		OmenPrefetchTuple(hs->index, (BlockNumber) (ids[i] >> 16),
						  (OffsetNumber) (ids[i] & 0xFFFF));
	for (int i = 0; i < n; i++)
		bufs[i] = OmenReadBuffer(hs->index, (BlockNumber) (ids[i] >> 16));
	for (int i = 0; i < n; i++)
	{
		Page		page = BufferGetPage(bufs[i]);
		OffsetNumber off = (OffsetNumber) (ids[i] & 0xFFFF);
		Size		lpoff;

		if (off > PageGetMaxOffsetNumber(page))
			continue;
		lpoff = ItemIdGetOffset(PageGetItemId(page, off));
		if (lpoff + esize <= BLCKSZ)
		{
			if (from > 0)
				OmenPrefetch((char *) page + lpoff, 64);
			OmenPrefetch((char *) page + lpoff + from, len);
		}
	}

	for (int i = 0; i < n; i++)
	{
		ItemPointerData tid;
		HnswNode	node;
		HnswElementTuple etup;

		OmenIdToTid(ids[i], &tid);
		LockBuffer(bufs[i], BUFFER_LOCK_SHARE);
		etup = (HnswElementTuple)
			OmenPageGetTuple(BufferGetPage(bufs[i]),
							 ItemPointerGetOffsetNumber(&tid));
		out[i].ok = (etup && etup->type == HNSW_TUPLE_ELEMENT &&
					 etup->state != HNSW_ELEMENT_FREE);
		if (out[i].ok)
		{
			out[i].dist = exact ?
				HnswElementDistance(hs, etup, ds->query) :
				HnswWalkDistance(ds, etup);
			out[i].isresult = (etup->state == HNSW_ELEMENT_LIVE);
		}
		if (out[i].ok && !exact)
		{
			/* a new node: remember what the search and the scan need */
			node.tid = tid;
			node.neighbortid = etup->neighbortid;
			node.level = etup->level;
			node.state = etup->state;
			node.version = etup->version;
			memcpy(node.heaptids, etup->heaptids, sizeof(node.heaptids));
			if (HnswStorageSq8(hs->storage))
				memcpy(&node.code, etup->data, sizeof(HnswSq8Head));
		}
		UnlockReleaseBuffer(bufs[i]);
		if (out[i].ok && !exact)
			out[i].aux = HnswDiskSearchAddNode(ds, &node);
	}
}

/* OmenGraphOps.visit over pages */
static void
DiskVisit(void *arg, const uint64 *ids, int n, OmenVisit *out)
{
	ReadBatch((HnswDiskSearch *) arg, ids, n, out, false);
}

/*
 * Re-score search results c[0..n) with exact distances from the stored
 * vectors, when the search walked by sq8 codes, and sort them nearest
 * first.  A result whose element is no longer there (a concurrent VACUUM
 * freed it; its heap rows are dead) is dropped.  Returns the new count.
 */
int
HnswDiskRescore(HnswDiskSearch *ds, OmenCand *c, int n)
{
	int			kept = 0;

	if (!HnswStorageSq8(ds->hs->storage))
		return n;
	for (int start = 0; start < n; start += HNSW_MAX_M * 2)
	{
		int			k = Min(n - start, HNSW_MAX_M * 2);
		uint64		ids[HNSW_MAX_M * 2];
		OmenVisit	out[HNSW_MAX_M * 2];

		for (int i = 0; i < k; i++)
			ids[i] = c[start + i].id;
		ReadBatch(ds, ids, k, out, true);
		for (int i = 0; i < k; i++)
		{
			if (!out[i].ok)
				continue;
			c[kept] = c[start + i];
			c[kept].dist = out[i].dist;
			kept++;
		}
	}
	OmenSortCands(c, kept);
	return kept;
}

/* OmenGraphOps.neighbors over pages */
static int
DiskNeighbors(void *arg, uint64 id, uint32 aux, int layer, uint64 *out,
			  int max)
{
	HnswDiskSearch *ds = (HnswDiskSearch *) arg;
	HnswNode   *node = &ds->nodes[aux];
	ItemPointerData tids[HNSW_MAX_M * 2];
	int			n;

	ds->lastvalid = false;
	if (layer > node->level)
		return 0;
	n = ReadNeighbors(ds->hs, node, layer, tids, ds);
	n = Min(n, max);
	for (int i = 0; i < n; i++)
		out[i] = OmenTidToId(&tids[i]);
	return n;
}

/* OmenGraphOps.estimate: from the edge sketches of the list just read */
static bool
DiskEstimate(void *arg, float cdist, int n, float *est)
{
	HnswDiskSearch *ds = (HnswDiskSearch *) arg;
	HnswShared *hs = ds->hs;
	bool		ip = (hs->dist.metric == OMEN_METRIC_IP);

	if (!ds->lastvalid || n > ds->nlast)
		return false;
	OmenSketchEstimate(ip, cdist, ds->qnorm, ip ? ds->qsigns : ds->lastqsigns,
					   ds->lastsigns, ds->lastnorms, n, ds->costable, est);
	return true;
}

static const OmenGraphOps hnsw_disk_ops = {DiskVisit, DiskNeighbors,
DiskEstimate};

/* Start a search over the index's pages for query q */
void
HnswDiskSearchInit(HnswDiskSearch *ds, HnswShared *hs, const float *q,
				   int ef, bool keep_rejected)
{
	ds->hs = hs;
	ds->query = q;
	ds->qsum = 0.0f;
	ds->qnorm2 = 0.0f;
	if (HnswStorageSq8(hs->storage))
		HnswSq8QueryParts(q, hs->dim, &ds->qsum, &ds->qnorm2);
	ds->qproj = NULL;
	ds->lastvalid = false;
	ds->maxnodes = 256;
	ds->nnodes = 0;
	ds->nodes = palloc(sizeof(HnswNode) * ds->maxnodes);
	OmenGraphSearchInit(&ds->search, &hnsw_disk_ops, ds, ef, 2 * hs->m,
						keep_rejected);
}

/*
 * Project the query on the basis, if the index has one (for the pivots and
 * the sketches), and with edge sketches let the search pass over
 * neighbours by them (a scan's first batch), with margin
 * (omen.hnsw_sketch_margin; < 0: never).
 */
void
HnswDiskSearchUseSketches(HnswDiskSearch *ds, float margin)
{
	HnswShared *hs = ds->hs;
	double		norm2 = 0.0;
	static const float zeros[OMEN_SKETCH_MAX_BITS];

	if (hs->proj_bits == 0 || ds->query == NULL)
		return;
	if (!ds->qproj)
		ds->qproj = palloc(sizeof(float) * hs->proj_bits);
	OmenSketchProject(HnswGetBasis(hs), hs->proj_bits, hs->dim, ds->query,
					  ds->qproj);
	if (hs->sketch_bits == 0)
		return;
	if (hs->dist.metric == OMEN_METRIC_IP)
		for (int i = 0; i < hs->dim; i++)
			norm2 += (double) ds->query[i] * ds->query[i];
	ds->qnorm = (float) sqrt(norm2);
	ds->qsigns = OmenSketchSigns(ds->qproj, zeros, hs->sketch_bits);
	OmenSketchCosTable(hs->sketch_bits, ds->costable);
	ds->search.estimate_margin = margin < 0.0f ? -1.0f : margin;
}

/* Release a page search */
void
HnswDiskSearchFree(HnswDiskSearch *ds)
{
	OmenGraphSearchFree(&ds->search);
	pfree(ds->nodes);
	if (ds->qproj)
		pfree(ds->qproj);
}

/* Keep the max nearest (i, d) in idx/dist, nearest first */
static inline void
KeepNearest(int *idx, float *dist, int *count, int max, int i, float d)
{
	int			k;

	if (*count == max && d >= dist[max - 1])
		return;
	k = *count < max ? (*count)++ : max - 1;
	for (; k > 0 && dist[k - 1] > d; k--)
	{
		dist[k] = dist[k - 1];
		idx[k] = idx[k - 1];
	}
	dist[k] = d;
	idx[k] = i;
}

/* How far pivot i's projection is from the query's, as pivots are ranked */
static inline float
PivotDistance(HnswDiskSearch *ds, const HnswPivots *pv, int i)
{
	int			bits = ds->hs->proj_bits;
	const uint16 *p = pv->proj + (Size) i * bits;

	/* inner product ranks by the projections' dot product */
	return ds->hs->dist.metric == OMEN_METRIC_IP ?
		-omen_kernels->ip_half(ds->qproj, p, bits) :
		omen_kernels->l2sq_half(ds->qproj, p, bits);
}

/*
 * Start a scan's search from the HNSW_PIVOT_PICK pivots whose projections
 * are nearest the query's (by L2 between projections, or for inner product
 * their largest dot products): rank the tops, then the members of the
 * HNSW_PIVOT_GROUPS nearest tops (all the members if there are no tops),
 * and read the picked elements in one batch.  They stand for every node of
 * their level, where a walk down from the entry point would have kept
 * width of them.  Then walk from layer pivot_level - 1 down to layer 1
 * keeping width nodes a layer (no walk when pivot_level is 1), leaving the
 * search seeded for layer 0 with ef.  A pivot that is no longer the
 * build's node (VACUUM freed it, or an insert took its slots: the stamp is
 * not 0, or the level differs) is passed over.  Returns false, with
 * nothing seeded, when the index has no pivots, the query no projection,
 * or no pivot is left.
 */
bool
HnswDiskDescendPivots(HnswDiskSearch *ds, int ef, int width)
{
	HnswShared *hs = ds->hs;
	const HnswPivots *pv;
	int			pick[HNSW_PIVOT_PICK];
	float		pickd[HNSW_PIVOT_PICK];
	ItemPointerData picktids[HNSW_PIVOT_PICK];
	uint8		picklevels[HNSW_PIVOT_PICK];
	int			npick = 0;
	bool		any = false;

	if (ds->qproj == NULL || hs->npivots <= 0 || hs->pivot_level < 1)
		return false;
	pv = HnswGetPivots(hs);
	if (pv == NULL)
		return false;
	if (pv->ntops == 0)
	{
		for (int i = 0; i < pv->n; i++)
			KeepNearest(pick, pickd, &npick, HNSW_PIVOT_PICK, i,
						PivotDistance(ds, pv, i));
	}
	else
	{
		int			group[HNSW_PIVOT_GROUPS];
		float		groupd[HNSW_PIVOT_GROUPS];
		int			ngroup = 0;

		for (int j = 0; j < pv->ntops; j++)
		{
			float		d = PivotDistance(ds, pv, j);

			KeepNearest(pick, pickd, &npick, HNSW_PIVOT_PICK, j, d);
			KeepNearest(group, groupd, &ngroup, HNSW_PIVOT_GROUPS, j, d);
		}
		for (int g = 0; g < ngroup; g++)
			for (int i = pv->gstart[group[g]]; i < pv->gstart[group[g] + 1]; i++)
				KeepNearest(pick, pickd, &npick, HNSW_PIVOT_PICK, i,
							PivotDistance(ds, pv, i));
	}
	if (npick == 0)
		return false;

	/* copied: the reads below must not depend on rd_amcache staying put */
	for (int i = 0; i < npick; i++)
	{
		picktids[i] = pv->tids[pick[i]];
		picklevels[i] = pv->levels[pick[i]];
	}

	/*
	 * Above layer 1 the walk keeps width nodes; seeding layer 0 directly,
	 * keep every pick
	 */
	OmenGraphSearchReset(&ds->search, hs->pivot_level == 1 ?
						 Max(width, npick) : Max(width, 1));
	{
		uint64		ids[HNSW_PIVOT_PICK];
		OmenVisit	out[HNSW_PIVOT_PICK];

		/* one batch, so that the reads overlap */
		for (int i = 0; i < npick; i++)
			ids[i] = OmenTidToId(&picktids[i]);
		ReadBatch(ds, ids, npick, out, false);
		for (int i = 0; i < npick; i++)
		{
			const HnswNode *node;

			if (!out[i].ok)
				continue;
			node = &ds->nodes[out[i].aux];
			if (node->version != 0 || node->level != picklevels[i])
				continue;
			if (OmenGraphSearchAddVisited(&ds->search, ids[i], &out[i]))
				any = true;
		}
	}
	if (!any)
		return false;
	OmenGraphSearchDescendFrom(&ds->search, hs->pivot_level - 1, 0, width);
	ds->search.ef = Max(ef, 1);
	return true;
}

/*
 * Walk from the entry point down to layer `tolayer` + 1 keeping the width
 * nearest nodes a layer (HNSW_SCAN_DESCEND or HNSW_INSERT_DESCEND), then
 * leave the search ready to run at tolayer with them as its entries.
 * Returns false if the index has no entry point.
 */
bool
HnswDiskDescend(HnswDiskSearch *ds, int tolayer, int ef, int width)
{
	HnswShared *hs = ds->hs;

	if (hs->entry_level < 0 ||
		!OmenGraphSearchDescend(&ds->search, OmenTidToId(&hs->entry),
								hs->entry_level, tolayer, width))
		return false;
	ds->search.ef = Max(ef, 1);
	return true;
}

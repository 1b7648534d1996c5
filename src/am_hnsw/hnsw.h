/*
 * hnsw.h
 *	  omen_hnsw: a hierarchical navigable small world graph on PostgreSQL
 *	  buffer pages, logged with generic WAL.  See README.md beside this file
 *	  for the algorithm, page layout, locking order and WAL.
 */
#ifndef OMEN_HNSW_H
#define OMEN_HNSW_H

#include "postgres.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/reloptions.h"
#include "common/pg_prng.h"
#include "nodes/execnodes.h"
#include "omen_index.h"
#include "utils/relcache.h"

/* Index options and their limits */
#define HNSW_DEFAULT_M				16
#define HNSW_MIN_M					2
#define HNSW_MAX_M					100
#define HNSW_DEFAULT_EF_CONSTRUCTION 64
#define HNSW_MIN_EF_CONSTRUCTION	4
#define HNSW_MAX_EF_CONSTRUCTION	1000
#define HNSW_DEFAULT_EF_SEARCH		40
#define HNSW_MAX_EF_SEARCH			1000
#define HNSW_MAX_LEVEL				15	/* levels 0 .. 15 */
#define HNSW_SKETCH_SAMPLE			1000	/* vectors the sketch basis is
											 * fitted to */

/* storage option */
#define HNSW_STORAGE_FLOAT			0
#define HNSW_STORAGE_HALF			1

/* codes option */
#define HNSW_CODES_NONE				0
#define HNSW_CODES_SQ8				1

/*
 * The storage of an index, as kept in HnswShared.storage and the meta page:
 * the low bits say how the vector is stored, HNSW_STORAGE_SQ8 whether an
 * 8-bit traversal code precedes it (the codes option).
 */
#define HNSW_STORAGE_VECTOR_MASK	0x0F
#define HNSW_STORAGE_SQ8			0x10

#define HnswStorageHalf(s)	(((s) & HNSW_STORAGE_VECTOR_MASK) == HNSW_STORAGE_HALF)
#define HnswStorageSq8(s)	(((s) & HNSW_STORAGE_SQ8) != 0)

typedef struct HnswOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int			m;
	int			ef_construction;
	int			storage;
	int			codes;
	int			sketch;			/* HNSW_SKETCH_* */
	double		alpha;
} HnswOptions;

/* The sketch option */
#define HNSW_SKETCH_OFF				0
#define HNSW_SKETCH_ON				1
#define HNSW_SKETCH_AUTO			2	/* the default: where they take no room */

/* Page kinds (OmenPageOpaque->kind) */
#define HNSW_PAGE_META				1
#define HNSW_PAGE_DATA				2
#define HNSW_PAGE_BASIS				3	/* the basis (floats), the pivots */

/*
 * A basis page's pd_lower covers its floats (so WAL images keep them):
 * its "line pointers" are data, and loops over pages must skip it.
 */
#define HnswPageIsBasis(page) \
	(!PageIsNew(page) && OmenPageGetOpaque(page)->kind == HNSW_PAGE_BASIS)

#define HNSW_METAPAGE_BLKNO			0
#define HNSW_MAGIC					0x484E5357	/* "HNSW" */
#define HNSW_VERSION				5

/*
 * The meta page: parameters fixed at build time and the entry point.  The
 * entry point changes only under an exclusive lock on this page.
 */
typedef struct HnswMetaPageData
{
	uint32		magic;
	uint32		version;
	uint32		dim;
	uint16		m;
	uint16		ef_construction;
	uint8		storage;		/* HNSW_STORAGE_*, | HNSW_STORAGE_SQ8 */
	uint8		metric;			/* OmenMetric at build time */
	int16		entry_level;	/* -1: the index is empty */
	ItemPointerData entry;		/* entry point's element tuple */
	BlockNumber insert_page;	/* last page; new tuples go here or after */
	BlockNumber free_page;		/* first page that may hold a free slot */
	uint64		inserted;		/* elements ever written (statistics) */
	uint16		sketch_bits;	/* edge sketches: bits per edge, 0 = none */
	uint16		proj_bits;		/* the basis's rows (sketch_bits with sketches;
								 * the pivots also use it), 0 = no basis */
	BlockNumber basis_blkno;	/* first of the basis pages (proj_bits x
								 * dim floats) */
	BlockNumber pivot_blkno;	/* first of the pivot pages */
	uint16		npivots;		/* 0: none */
	uint8		pivot_level;	/* the pivots: the build's nodes of at least
								 * this level (see HnswPivotData) */
} HnswMetaPageData;

/*
 * Pivots (every index with a basis: L2, cosine, inner product, with or
 * without edge sketches): the build's nodes of level pivot_level or more,
 * for the lowest pivot_level >= 1 that leaves at most HNSW_MAX_PIVOTS of
 * them, each with its projection on the basis,
 * kept on pages of the basis's kind after the data pages.  A scan picks
 * the nodes to start from by their projections instead of walking down
 * the layers above theirs (with pivot_level 1, it starts on layer 0).
 *
 * They come in two tiers: first the tops (level above pivot_level), then
 * the members (level pivot_level), grouped under the top nearest each by
 * projection: top j's nmembers follow those of the tops before it.  A scan
 * ranks the tops, then only the members of the HNSW_PIVOT_GROUPS nearest
 * tops.  With no tops (a small index) the members are ranked flat.
 *
 * They are hints: VACUUM may free a pivot and an insert take its slots,
 * which the stamp (0 for the build's nodes) and the level tell.
 */
#define HNSW_MAX_PIVOTS				4096
#define HNSW_PIVOT_PICK				4	/* pivots a scan starts from */
#define HNSW_PIVOT_GROUPS			4	/* tops whose members a scan ranks */

/* The pivots as a scan ranks them (HnswGetPivots), in the pages' order */
typedef struct HnswPivots
{
	int			n;
	int			ntops;			/* [0, ntops): the tops */
	const uint16 *proj;			/* n x proj_bits halves */
	const ItemPointerData *tids;
	const uint8 *levels;
	const int  *gstart;			/* top j's members: [gstart[j], gstart[j+1]) */
} HnswPivots;

typedef struct HnswPivotData
{
	ItemPointerData tid;		/* the element */
	uint8		level;
	uint8		unused;
	uint16		nmembers;		/* a top's group size; 0 for a member */
	uint16		proj[FLEXIBLE_ARRAY_MEMBER];	/* proj_bits halves */
} HnswPivotData;

/*
 * Whether n projections all lie in the IEEE half range they are stored in
 * (false if one is NaN)
 */
static inline bool
HnswFitsHalf(const float *v, int n)
{
	bool		fits = true;

	for (int i = 0; i < n; i++)
		fits &= (v[i] >= -65504.0f && v[i] <= 65504.0f);
	return fits;
}

#define HNSW_PIVOT_SIZE(bits) \
	(offsetof(HnswPivotData, proj) + sizeof(uint16) * (bits))

typedef HnswMetaPageData *HnswMetaPage;

#define HnswPageGetMeta(page) ((HnswMetaPage) PageGetContents(page))

/* Element tuple: one per distinct indexed vector */
#define HNSW_HEAPTIDS				4

#define HNSW_ELEMENT_LIVE			0
#define HNSW_ELEMENT_DELETED		1	/* no live heap rows; still linked */
#define HNSW_ELEMENT_FREE			2	/* unlinked; slot may be reused */

#define HNSW_TUPLE_ELEMENT			1
#define HNSW_TUPLE_NEIGHBORS		2

typedef struct HnswElementTupleData
{
	uint8		type;			/* HNSW_TUPLE_ELEMENT */
	uint8		level;
	uint8		state;			/* HNSW_ELEMENT_* */
	uint8		version;		/* a stamp its neighbour tuple repeats (below) */
	ItemPointerData heaptids[HNSW_HEAPTIDS];	/* invalid = unused */
	ItemPointerData neighbortid;	/* this element's neighbour tuple */
	uint16		unused;
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* [sq8 code], then the vector */
} HnswElementTupleData;

typedef HnswElementTupleData *HnswElementTuple;

/*
 * The sq8 traversal code (codes = sq8): the vector x scaled into 256 steps
 * between its own smallest and largest component, x_i ~ lo + step * c_i.
 * norm2 is |x~|^2 of the decoded vector, so an L2 distance needs only the
 * dot product of the query with the code bytes.  The bytes are padded to
 * 4 so the vector after them stays aligned.
 */
typedef struct HnswSq8Head
{
	float		lo;
	float		step;
	float		norm2;
} HnswSq8Head;

/* sum(q) and |q|^2 of a query, for HnswSq8Distance */
static inline void
HnswSq8QueryParts(const float *q, int dim, float *qsum, float *qnorm2)
{
	double		sum = 0.0;
	double		norm2 = 0.0;

	for (int i = 0; i < dim; i++)
	{
		sum += q[i];
		norm2 += (double) q[i] * q[i];
	}
	*qsum = (float) sum;
	*qnorm2 = (float) norm2;
}

/*
 * The distance from q to the vector a code stands for, x~ = lo + step * c,
 * for L2, cosine (L2 between unit vectors) and inner product: q.x~ =
 * lo * sum(q) + step * q.c, and |q - x~|^2 = |q|^2 - 2 q.x~ + |x~|^2.
 * qsum and qnorm2 are sum(q) and |q|^2.  Scans and the build walk by it.
 */
static inline float
HnswSq8Distance(OmenMetric metric, const HnswSq8Head *head,
				const uint8 *codes, int dim, const float *q, float qsum,
				float qnorm2)
{
	float		dot = head->lo * qsum +
		head->step * omen_kernels->dot_u8(q, codes, dim);

	return metric == OMEN_METRIC_IP ? -dot : qnorm2 - 2.0f * dot + head->norm2;
}

#define HNSW_CODE_SIZE(dim, storage) \
	(HnswStorageSq8(storage) ? \
	 sizeof(HnswSq8Head) + TYPEALIGN(4, (Size) (dim)) : 0)

#define HNSW_ELEMENT_SIZE(dim, storage) \
	(offsetof(HnswElementTupleData, data) + HNSW_CODE_SIZE(dim, storage) + \
	 (Size) (dim) * (HnswStorageHalf(storage) ? 2 : 4))

/* The stored vector (float4 or half) of an element tuple */
#define HnswElementVectorData(etup, dim, storage) \
	((etup)->data + HNSW_CODE_SIZE(dim, storage))

/*
 * Neighbour tuple: fixed capacity for the element's level, so it is
 * rewritten in place.  Layer 0 holds 2m slots, each upper layer m:
 * layer 0 at [0, 2m), layer l >= 1 at [2m + (l-1)m, 2m + lm).  Unused slots
 * hold an invalid ItemPointer.
 */
typedef struct HnswNeighborTupleData
{
	uint8		type;			/* HNSW_TUPLE_NEIGHBORS */
	uint8		version;		/* the element tuple's stamp: a list whose
								 * stamp differs belongs to an element that
								 * has since reused the slots */
	uint16		count;			/* slots, (level + 2) * m */
	ItemPointerData tids[FLEXIBLE_ARRAY_MEMBER];	/* without sketches; see
													 * HnswNeighborTids */
} HnswNeighborTupleData;

typedef HnswNeighborTupleData *HnswNeighborTuple;

#define HNSW_NEIGHBOR_SLOTS(level, m)	(((level) + 2) * (m))

/*
 * With edge sketches (sketch_bits > 0), layer 0's sketches come first, at
 * byte 8: uint64 signs[2m], float norms[2m] (|v - c|, NaN when unknown),
 * then the element's own projection as IEEE halves, uint16
 * proj[sketch_bits] (only the signs of differences with it are ever taken;
 * a projection beyond the half range is stored as NaN, and the element's
 * edges then have no sketch); the tids follow them.  The tids end the
 * tuple either way, so they lie next to the element tuple placed after it
 * on the page (at the lower address: the element's first bytes, which a
 * visit reads, share cache lines with them).
 */
#define HNSW_SKETCH_OFFSET			8
#define HNSW_SKETCH_SIZE(m, bits) \
	((sizeof(uint64) + sizeof(float)) * 2 * (m) + sizeof(uint16) * (bits))
#define HNSW_TIDS_OFFSET(m, bits) \
	((bits) > 0 ? HNSW_SKETCH_OFFSET + HNSW_SKETCH_SIZE(m, bits) : \
	 offsetof(HnswNeighborTupleData, tids))
#define HNSW_NEIGHBOR_SIZE(level, m, bits) \
	(HNSW_TIDS_OFFSET(m, bits) + \
	 sizeof(ItemPointerData) * HNSW_NEIGHBOR_SLOTS(level, m))

#define HnswNeighborTids(ntup, m, bits) \
	((ItemPointerData *) ((char *) (ntup) + HNSW_TIDS_OFFSET(m, bits)))
#define HnswSketchSigns(ntup, m) \
	((uint64 *) ((char *) (ntup) + HNSW_SKETCH_OFFSET))
#define HnswSketchNorms(ntup, m) \
	((float *) (HnswSketchSigns(ntup, m) + 2 * (m)))
#define HnswSketchProj(ntup, m) \
	((uint16 *) (HnswSketchNorms(ntup, m) + 2 * (m)))


static inline int
HnswLayerStart(int layer, int m)
{
	return layer == 0 ? 0 : 2 * m + (layer - 1) * m;
}

static inline int
HnswLayerCapacity(int layer, int m)
{
	return layer == 0 ? 2 * m : m;
}

/*
 * Index option alpha: RobustPrune's for every list of the graph (build,
 * insert, VACUUM's repairs).  With 1.0 (HNSW's heuristic, the default) a
 * candidate is left out when a neighbour already chosen is nearer to it
 * than the node is; with 1.2 the list first takes what 1.0 takes, then,
 * while there is room, candidates that no chosen neighbour is more than 1.2
 * times nearer to: longer edges, which let a walk cross the data in fewer
 * steps (ALGORITHMS.md section 1, as in Vamana), for fuller lists that
 * cost inserts and VACUUM more.  See the README, "Neighbour selection".
 */
#define HNSW_DEFAULT_ALPHA	1.0

/*
 * Nodes kept a layer on the way down the upper layers (1 would be HNSW's
 * greedy walk): by inserts, the build and VACUUM's repairs, and by scans.
 * See the README, "Scans".
 */
#define HNSW_INSERT_DESCEND	4
#define HNSW_SCAN_DESCEND	2
#define HNSW_MIN_ALPHA		1.0
#define HNSW_MAX_ALPHA		2.0

/* Bytes an empty data page offers to tuples and their line pointers */
#define HNSW_PAGE_CAPACITY \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(OmenPageOpaqueData)))

/* Settings */
extern int	hnsw_ef_search;
extern double hnsw_sketch_margin;

/*
 * What searches and inserts on one index need: the metric, the parameters
 * and entry point from the meta page, and a scratch buffer for half storage.
 */
typedef struct HnswShared
{
	Relation	index;
	OmenDistance dist;
	int			dim;
	int			m;
	int			ef_construction;
	int			storage;
	float		ml;				/* level multiplier, 1 / ln(m) */
	float		alpha;			/* RobustPrune's, from the options */
	ItemPointerData entry;		/* entry point when read */
	int			entry_level;	/* -1: empty */
	float	   *scratch;		/* dim floats: a decoded half vector */
	int			sketch_bits;	/* 0: no edge sketches */
	int			proj_bits;		/* 0: no basis (nor pivots) */
	BlockNumber basis_blkno;	/* the basis: HnswGetBasis() */
	BlockNumber pivot_blkno;	/* the pivots: HnswGetPivots() */
	int			npivots;
	int			pivot_level;
} HnswShared;

/* An element met during a page search */
typedef struct HnswNode
{
	ItemPointerData tid;		/* element tuple */
	ItemPointerData neighbortid;
	ItemPointerData heaptids[HNSW_HEAPTIDS];
	uint8		level;
	uint8		state;
	uint8		version;		/* the element tuple's; its neighbour tuple's
								 * must match */
	HnswSq8Head code;			/* sq8: the code's head (for its error) */
} HnswNode;

/* A best-first search over the index's pages */
typedef struct HnswDiskSearch
{
	HnswShared *hs;
	const float *query;
	float		qsum;			/* sum of the query's components (sq8) */
	float		qnorm2;			/* |query|^2 (sq8) */
	HnswNode   *nodes;			/* every element read; OmenCand.aux indexes */
	int			nnodes;
	int			maxnodes;
	OmenGraphSearch search;

	/* edge sketches: the query's projection, the last list read's edges */
	float	   *qproj;
	float		qnorm;			/* |query| (inner product) */
	uint64		qsigns;			/* inner product: signs of Bq */
	int			nlast;
	uint64		lastsigns[HNSW_MAX_M * 2];
	float		lastnorms[HNSW_MAX_M * 2];
	uint64		lastqsigns;		/* L2: signs of Bq - Bc of that list's node */
	bool		lastvalid;
	float		costable[OMEN_SKETCH_MAX_BITS + 1]; /* cos(pi k / bits) */
} HnswDiskSearch;

/* hnswutils.c */
extern HnswOptions *HnswGetOptions(Relation index);
extern int	HnswGetM(Relation index);
extern int	HnswGetEfConstruction(Relation index);
extern float HnswGetAlpha(Relation index);
extern int	HnswGetStorage(Relation index);
extern int	HnswGetSketchOption(Relation index);
extern bool HnswSketchWanted(int mode, int dim, int storage, int m, int bits);
extern const HnswPivots *HnswGetPivots(HnswShared *hs);
extern void HnswReadMeta(Relation index, HnswMetaPageData *meta);
extern void HnswInitShared(HnswShared *hs, Relation index);
extern void HnswRefreshEntry(HnswShared *hs);
extern void HnswFreeShared(HnswShared *hs);
extern int	HnswMaxLevel(int m);
extern Size HnswNeighborSize(HnswShared *hs, int level);
extern const float *HnswGetBasis(HnswShared *hs);
extern void HnswSketchFill(HnswShared *hs, HnswNeighborTuple ntup, int slot,
						   const float *cvec, const float *vvec);
extern void HnswSketchFillProj(HnswShared *hs, HnswNeighborTuple ntup,
							   int slot, float norm, const float *vproj,
							   const float *cproj);
extern void HnswSketchClear(HnswShared *hs, HnswNeighborTuple ntup, int slot);
extern void HnswSketchSetProj(HnswShared *hs, HnswNeighborTuple ntup,
							  const float *proj);
extern int	HnswChooseSketchBits(int dim, int metric);
extern int	HnswRandomLevel(pg_prng_state *rng, float ml, int maxlevel);
extern void HnswCheckDim(Relation index, int dim, int storage);
extern void HnswElementGetVector(HnswShared *hs, HnswElementTuple etup,
								 float *out);
extern void HnswSq8Encode(const float *vec, int dim, HnswSq8Head *head,
						  uint8 *codes);
extern void HnswElementSetVector(HnswShared *hs, HnswElementTuple etup,
								 const float *vec, const HnswSq8Head *code);
extern float HnswElementDistance(HnswShared *hs, HnswElementTuple etup,
								 const float *q);
extern int	HnswDiskRescore(HnswDiskSearch *ds, OmenCand *c, int n);
extern bool HnswDiskLowerBounds(HnswDiskSearch *ds, OmenCand *c, int n);
extern void HnswDiskSearchInit(HnswDiskSearch *ds, HnswShared *hs,
							   const float *q, int ef, bool keep_rejected);
extern void HnswDiskSearchFree(HnswDiskSearch *ds);
extern void HnswDiskSearchUseSketches(HnswDiskSearch *ds, float margin);
extern uint32 HnswDiskSearchAddNode(HnswDiskSearch *ds, HnswNode *node);
extern bool HnswDiskDescendPivots(HnswDiskSearch *ds, int ef, int width);
extern bool HnswDiskDescend(HnswDiskSearch *ds, int tolayer, int ef,
							int width);
extern bool HnswReadElementVector(HnswShared *hs, ItemPointer tid, float *out,
								  int *level);
extern int	HnswReadNeighborLayer(HnswShared *hs, const HnswNode *node, int layer,
								  ItemPointer out);
extern bool HnswReadElementNode(HnswShared *hs, ItemPointer tid,
								HnswNode *node);

/* hnswbuild.c */
extern IndexBuildResult *hnswbuild(Relation heap, Relation index,
								   struct IndexInfo *indexInfo);
extern void hnswbuildempty(Relation index);

/* hnswinsert.c */
extern void HnswInsertVector(HnswShared *hs, const float *vec,
							 ItemPointer heaptid);
extern bool HnswReadLayerSlots(HnswShared *hs, const HnswNode *node, int layer,
							   ItemPointerData *slots);
extern bool HnswWriteNeighborLayer(HnswShared *hs, const HnswNode *node, int layer,
								   const ItemPointerData *expect,
								   const ItemPointerData *list, int n,
								   const float *nodevec,
								   const float *const *vecs,
								   const float *const *projs);
extern bool HnswAddNeighbor(HnswShared *hs, HnswNode *e, const float *evec,
							int layer, ItemPointer newtid, float dnew,
							const float *newvec, const float *newproj,
							bool force);
extern bool hnswinsert(Relation index, Datum *values, bool *isnull,
					   ItemPointer heap_tid, Relation heap,
					   IndexUniqueCheck checkUnique, bool indexUnchanged,
					   struct IndexInfo *indexInfo);

/* hnswscan.c */
extern IndexScanDesc hnswbeginscan(Relation index, int nkeys, int norderbys);
extern void hnswrescan(IndexScanDesc scan, ScanKey keys, int nkeys,
					   ScanKey orderbys, int norderbys);
extern bool hnswgettuple(IndexScanDesc scan, ScanDirection dir);
extern void hnswendscan(IndexScanDesc scan);

/* hnswvacuum.c */
extern IndexBulkDeleteResult *hnswbulkdelete(IndexVacuumInfo *info,
											 IndexBulkDeleteResult *stats,
											 IndexBulkDeleteCallback callback,
											 void *callback_state);
extern IndexBulkDeleteResult *hnswvacuumcleanup(IndexVacuumInfo *info,
												IndexBulkDeleteResult *stats);

extern void HnswDefineGucs(void);

#endif							/* OMEN_HNSW_H */

/*
 * diskann.h
 *	  omen_diskann: a Vamana graph (DiskANN) on PostgreSQL buffer pages,
 *	  walked on 2-bit codes, re-scored with full vectors, and updated in
 *	  place (IP-DiskANN).  See README.md beside this file for the
 *	  algorithm, page layout, locking order and WAL.
 */
#ifndef OMEN_DISKANN_H
#define OMEN_DISKANN_H

#include "postgres.h"

#include <math.h>

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/reloptions.h"
#include "nodes/execnodes.h"
#include "omen_index.h"
#include "utils/relcache.h"

/* Index options and their limits */
#define DISKANN_DEFAULT_MAX_NEIGHBORS	32
#define DISKANN_MIN_MAX_NEIGHBORS		4
#define DISKANN_MAX_MAX_NEIGHBORS		128
#define DISKANN_DEFAULT_BUILD_LIST		100
#define DISKANN_MIN_BUILD_LIST			10
#define DISKANN_MAX_BUILD_LIST			1000
#define DISKANN_DEFAULT_ALPHA			1.2
#define DISKANN_MIN_ALPHA				1.0
#define DISKANN_MAX_ALPHA				2.0
#define DISKANN_DEFAULT_BITS			2

/* Settings */
#define DISKANN_DEFAULT_SEARCH_LIST		100
#define DISKANN_MAX_SEARCH_LIST			1000
#define DISKANN_DEFAULT_RERANK			0	/* the whole list */

/* IP-DiskANN delete (ALGORITHMS.md section 3) */
#define DISKANN_DELETE_LIST				128 /* L_d */
#define DISKANN_DELETE_CANDS			50	/* k */
#define DISKANN_DELETE_LINKS			3	/* c */
#define DISKANN_SWEEP_FRACTION			0.2 /* sweep when deleted > 20% */

/* Vectors the quantiser is trained on, at most */
#define DISKANN_TRAIN_SAMPLE			20000
/* Coarse centres: at most this many, and a sample of this many per centre */
#define DISKANN_MAX_COARSE				256
#define DISKANN_COARSE_POINTS			40
#define DISKANN_COARSE_ITERS			8
/* An index built empty trains its quantiser once it holds this many */
#define DISKANN_TRAIN_MIN				1000

/*
 * Neighbour slots per node: R plus room for 30% more, so a backlink rarely
 * forces a prune (ALGORITHMS.md: prune when |N(j)| > 1.3 R).  Even, so the
 * code after the slots stays 4-byte aligned.
 */
#define DiskannCapacity(r)	((((r) + ((r) * 3 + 9) / 10) + 1) & ~1)

typedef struct DiskannOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int			max_neighbors;
	int			build_list_size;
	double		alpha;
	int			quantization_bits;
} DiskannOptions;

/* Page kinds (OmenPageOpaque->kind) */
#define DISKANN_PAGE_META			1
#define DISKANN_PAGE_QUANT			2
#define DISKANN_PAGE_NODE			3
#define DISKANN_PAGE_VECTOR			4

#define DISKANN_METAPAGE_BLKNO		0
#define DISKANN_MAGIC				0x44534B4E	/* "DSKN" */
#define DISKANN_VERSION				2

/*
 * The meta page: parameters fixed when the index is created, where the
 * quantiser is, the entry point, and hints for inserts.
 */
typedef struct DiskannMetaPageData
{
	uint32		magic;
	uint32		version;
	uint32		dim;
	uint16		max_neighbors;	/* R */
	uint16		capacity;		/* slots per node, DiskannCapacity(R) */
	uint16		build_list_size;	/* L */
	uint8		bits;			/* 0 (full vectors), 1, 2 or 4 */
	uint8		metric;			/* OmenMetric at build time */
	float4		alpha;
	uint8		trained;		/* the quantiser pages hold a quantiser */
	uint8		unused[3];
	ItemPointerData entry;		/* invalid: the index is empty */
	uint16		ncoarse;		/* the quantiser's coarse centres */
	BlockNumber quant_start;	/* first quantiser page */
	uint32		quant_pages;
	BlockNumber node_insert;	/* node page new nodes are appended to */
	BlockNumber vector_insert;	/* vector page new vectors go to */
	uint64		nodes;			/* live + deleted nodes (as of last count) */
	uint64		deleted;		/* deleted nodes not yet swept */
	uint64		uncoded;		/* nodes written before training */
} DiskannMetaPageData;

typedef DiskannMetaPageData *DiskannMetaPage;

#define DiskannPageGetMeta(page) ((DiskannMetaPage) PageGetContents(page))

/* Node states */
#define DISKANN_NODE_LIVE			0
#define DISKANN_NODE_DELETED		1	/* walked through, never returned */
#define DISKANN_NODE_FREE			2	/* unlinked: the slot may be reused */

/* Node flags */
#define DISKANN_NODE_CODED			0x01	/* code[] is valid */

/*
 * Node tuple: what a traversal reads.  neighbors[capacity] is followed by
 * the code (bits * dim / 8 bytes, or dim float4 when bits = 0).  A node's
 * full vector is in the vector tuple at vectid (none when bits = 0).
 */
typedef struct DiskannNodeTupleData
{
	uint8		state;			/* DISKANN_NODE_* */
	uint8		flags;
	uint16		count;			/* valid neighbours, neighbors[0..count) */
	ItemPointerData heaptid;
	ItemPointerData vectid;
	ItemPointerData neighbors[FLEXIBLE_ARRAY_MEMBER];
} DiskannNodeTupleData;

typedef DiskannNodeTupleData *DiskannNodeTuple;

#define DISKANN_NODE_SIZE(cap, codebytes) \
	(offsetof(DiskannNodeTupleData, neighbors) + \
	 sizeof(ItemPointerData) * (cap) + (codebytes))

static inline uint8 *
DiskannNodeCode(DiskannNodeTuple ntup, int cap)
{
	return (uint8 *) &ntup->neighbors[cap];
}

/* Vector tuple: a node's full vector, read to re-score and to repair */
typedef struct DiskannVectorTupleData
{
	ItemPointerData heaptid;	/* the node's heap TID, checked on read */
	uint16		unused;
	float		data[FLEXIBLE_ARRAY_MEMBER];
} DiskannVectorTupleData;

typedef DiskannVectorTupleData *DiskannVectorTuple;

#define DISKANN_VECTOR_SIZE(dim) \
	(offsetof(DiskannVectorTupleData, data) + sizeof(float) * (Size) (dim))

/* Bytes an empty page offers to tuples and their line pointers */
#define DISKANN_PAGE_CAPACITY \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(OmenPageOpaqueData)))

/*
 * The head of a centred code (metrics l2, cosine and inner product): the
 * nearest coarse centre c, and the part of the distance that depends on
 * the node alone.  The band codes after it describe the residual x - c.
 */
typedef struct DiskannCodeHead
{
	uint16		coarse;			/* index of the coarse centre */
	uint16		unused;
	float4		bias;			/* l2: 2 c.r + |r|^2; inner product: 0 */
} DiskannCodeHead;

#define DISKANN_CODE_HEAD	((int) sizeof(DiskannCodeHead))

/*
 * The quantiser: up to DISKANN_MAX_COARSE coarse centres (k-means) and,
 * per dimension, 2^bits - 1 cut points and 2^bits band centres learned
 * from a sample of residuals (vector minus its coarse centre).  A stored
 * vector's code names its coarse centre and the band of each coordinate
 * of its residual; a query is never quantised (asymmetric distance).
 * Under l1 (whose distance does not split over a sum) there are no coarse
 * centres: the bands describe the vector itself.
 */
typedef struct DiskannQuant
{
	int			dim;
	int			bits;
	int			levels;			/* 2^bits */
	int			perbyte;		/* dimensions per code byte */
	int			headbytes;		/* DISKANN_CODE_HEAD, or 0 (l1) */
	int			bandbytes;		/* bytes of band codes */
	int			codebytes;		/* headbytes + bandbytes */
	OmenMetric	metric;
	int			ncoarse;		/* coarse centres (0 when headbytes = 0) */
	float	   *cuts;			/* dim x (levels - 1), ascending */
	float	   *centres;		/* dim x levels */
	float	   *coarse;			/* ncoarse x dim */
} DiskannQuant;

/*
 * Per-query lookup table: for each half byte of a band code (two
 * dimensions at 2 bits), the 16 partial distances its values stand for,
 * and each coarse centre's term.  At 784 dimensions the table is 392 x 16
 * floats, 25 KB, which stays in the L1 cache while the node pages stream
 * through.
 */
typedef struct DiskannLut
{
	int			headbytes;		/* as in DiskannQuant */
	int			codebytes;		/* band code bytes (lut16's nbytes) */
	float	   *table;			/* codebytes * 2 * 16 */
	float	   *coarse;			/* per coarse centre (NaN: not yet), or NULL */
	int			ncoarse;
	const DiskannQuant *quant;
	const float *query;
} DiskannLut;

/* Settings */
extern int	diskann_search_list_size;
extern int	diskann_rerank;

/*
 * What searches, inserts and VACUUM on one index need: parameters and the
 * entry point from the meta page, the metric and the quantiser.
 */
typedef struct DiskannShared
{
	Relation	index;
	OmenDistance dist;
	int			dim;
	int			r;				/* max_neighbors */
	int			cap;			/* slots per node */
	int			l;				/* build_list_size */
	float		alpha;
	int			bits;
	int			codebytes;		/* code bytes in a node tuple */
	bool		trained;
	DiskannQuant *quant;		/* NULL until trained, or bits = 0 */
	ItemPointerData entry;
	Size		nodesize;
	Size		vecsize;
} DiskannShared;

/* A node met during a page search */
typedef struct DiskannNode
{
	ItemPointerData tid;		/* node tuple */
	ItemPointerData heaptid;
	ItemPointerData vectid;
	uint8		state;
	float		exact;			/* full-precision distance, when known */
	bool		hasexact;
} DiskannNode;

/* A beam search over the index's pages */
typedef struct DiskannSearch
{
	DiskannShared *ds;
	const float *query;
	DiskannLut	lut;
	DiskannNode *nodes;			/* every node read; OmenCand.aux indexes */
	int			nnodes;
	int			maxnodes;
	float	   *scratch;		/* dim floats */
	uint8	   *tcodes;			/* band codes of up to 16 nodes, one after another */
	float		tbase[16];		/* and the terms of their code heads */
	bool		record_lists;	/* keep every expanded node's list */
	uint64	   *lists;			/* cap ids per node, by aux (record_lists) */
	uint16	   *listcounts;
	int			maxlists;
	OmenGraphSearch search;
} DiskannSearch;

/* diskannquant.c */
extern bool DiskannCentred(int bits, OmenMetric metric);
extern int	DiskannCodeBytes(int dim, int bits, OmenMetric metric);
extern DiskannQuant *DiskannQuantTrain(const float *vecs, int n, int dim,
									   int bits, OmenMetric metric);
extern void DiskannQuantEncode(const DiskannQuant *q, const float *vec,
							   uint8 *code);
extern void DiskannQuantDecode(const DiskannQuant *q, const uint8 *code,
							   float *out);
extern void DiskannLutInit(DiskannLut *lut, const DiskannQuant *q,
						   OmenMetric metric, const float *query);
extern void DiskannLutFree(DiskannLut *lut);
extern Size DiskannQuantFloats(int dim, int bits, int ncoarse);
extern void DiskannQuantSerialize(const DiskannQuant *q, float *out);
extern void DiskannQuantSetup(DiskannQuant *q, int dim, int bits,
							  OmenMetric metric, int ncoarse, float *data);

extern float DiskannLutCoarse(DiskannLut *lut, int k);

/*
 * The term of a code's head in its distance (0 without a head).  A coarse
 * centre's term is computed the first time a search meets it: a search
 * meets a few dozen of the centres, and reading all of them (800 KB at 784
 * dimensions) would cost more than the walk.
 */
static inline float
DiskannLutBase(DiskannLut *lut, const uint8 *code)
{
	const DiskannCodeHead *h = (const DiskannCodeHead *) code;
	float		c;

	if (lut->headbytes == 0)
		return 0;
	if (unlikely(h->coarse >= lut->ncoarse ||
				 isnan(c = lut->coarse[h->coarse])))
		c = DiskannLutCoarse(lut, h->coarse);
	return c + h->bias;
}

/*
 * Distance from the table's query to a code: its head's term, then two
 * lookups per band code byte, into eight running sums so the adds do not
 * wait on each other.
 */
static inline float
DiskannLutDistance(DiskannLut *lut, const uint8 *code)
{
	const float *t = lut->table;
	int			n = lut->codebytes;
	float		s[8] = {0};
	int			b = 0;

	s[0] = DiskannLutBase(lut, code);
	code += lut->headbytes;

	for (; b + 4 <= n; b += 4, t += 8 * 16)
	{
		s[0] += t[code[b] & 15];
		s[1] += t[16 + (code[b] >> 4)];
		s[2] += t[32 + (code[b + 1] & 15)];
		s[3] += t[48 + (code[b + 1] >> 4)];
		s[4] += t[64 + (code[b + 2] & 15)];
		s[5] += t[80 + (code[b + 2] >> 4)];
		s[6] += t[96 + (code[b + 3] & 15)];
		s[7] += t[112 + (code[b + 3] >> 4)];
	}
	for (; b < n; b++, t += 32)
	{
		s[0] += t[code[b] & 15];
		s[1] += t[16 + (code[b] >> 4)];
	}
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* diskannutils.c */
extern DiskannOptions *DiskannGetOptions(Relation index);
extern void DiskannReadMeta(Relation index, DiskannMetaPageData *meta);
extern void DiskannInitShared(DiskannShared *ds, Relation index);
extern void DiskannCheckDim(Relation index, int dim, int bits, int cap,
							OmenMetric metric);
extern void DiskannWriteQuant(Relation index, const DiskannQuant *q,
							  BlockNumber *start, uint32 *npages, bool wal);
extern DiskannQuant *DiskannLoadQuant(Relation index,
									  const DiskannMetaPageData *meta);
extern void DiskannInitMetaPage(Page page, DiskannShared *ds);
extern bool DiskannReadVector(DiskannShared *ds, ItemPointer vectid,
							  ItemPointer heaptid, float *out);
extern float DiskannNodeDistance(DiskannShared *ds, DiskannSearch *s,
								 DiskannNodeTuple ntup, bool *exact);
extern void DiskannSearchInit(DiskannSearch *s, DiskannShared *ds,
							  const float *q, int ef, bool keep_rejected);
extern void DiskannSearchFree(DiskannSearch *s);
extern bool DiskannSearchStart(DiskannSearch *s);
extern uint32 DiskannSearchAddNode(DiskannSearch *s, DiskannNode *node);
extern int	DiskannReadNeighbors(DiskannShared *ds, ItemPointer tid,
								 ItemPointer out, uint8 *state);
extern void DiskannExactDistances(DiskannSearch *s, OmenCand *c, int n);
extern bool DiskannReadNodeVector(DiskannShared *ds, ItemPointer tid,
								  float *out, uint8 *state);
extern int	DiskannPruneTids(DiskannShared *ds, const float *pvec,
							 ItemPointer cands, int n, int maxdeg,
							 ItemPointer out);

/* diskannbuild.c */
extern IndexBuildResult *diskannbuild(Relation heap, Relation index,
									  struct IndexInfo *indexInfo);
extern void diskannbuildempty(Relation index);

/* diskanninsert.c */
extern void DiskannInsertVector(DiskannShared *ds, const float *vec,
								ItemPointer heaptid);
extern bool DiskannAddNeighbors(DiskannShared *ds, ItemPointer target,
								const ItemPointerData *add, int nadd,
								ItemPointer remove);
extern void DiskannMaybeTrain(Relation index);
extern void DiskannCodeUncoded(DiskannShared *ds);
extern bool diskanninsert(Relation index, Datum *values, bool *isnull,
						  ItemPointer heap_tid, Relation heap,
						  IndexUniqueCheck checkUnique, bool indexUnchanged,
						  struct IndexInfo *indexInfo);

/* diskannscan.c */
extern IndexScanDesc diskannbeginscan(Relation index, int nkeys, int norderbys);
extern void diskannrescan(IndexScanDesc scan, ScanKey keys, int nkeys,
						  ScanKey orderbys, int norderbys);
extern bool diskanngettuple(IndexScanDesc scan, ScanDirection dir);
extern void diskannendscan(IndexScanDesc scan);

/* diskannvacuum.c */
extern IndexBulkDeleteResult *diskannbulkdelete(IndexVacuumInfo *info,
												IndexBulkDeleteResult *stats,
												IndexBulkDeleteCallback callback,
												void *callback_state);
extern IndexBulkDeleteResult *diskannvacuumcleanup(IndexVacuumInfo *info,
												   IndexBulkDeleteResult *stats);

extern void DiskannDefineGucs(void);

#endif							/* OMEN_DISKANN_H */

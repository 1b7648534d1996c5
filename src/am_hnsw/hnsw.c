/*
 * hnsw.c
 *	  omen_hnsw: the access method handler, options, settings, cost
 *	  estimate, aminsert, and the inspection function omen_hnsw_info().
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/amapi.h"
#include "access/reloptions.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "funcapi.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"

static relopt_kind hnsw_relopt_kind;

/*
 * "float" unquoted is a type name to the grammar, so WITH (storage = float)
 * arrives as "pg_catalog.float8": accept that spelling too.  The error
 * detail lists only the two names users write.
 */
static relopt_enum_elt_def hnsw_storage_values[] = {
	{"float", HNSW_STORAGE_FLOAT},
	{"pg_catalog.float8", HNSW_STORAGE_FLOAT},
	{"half", HNSW_STORAGE_HALF},
	{NULL}
};

static relopt_enum_elt_def hnsw_codes_values[] = {
	{"none", HNSW_CODES_NONE},
	{"sq8", HNSW_CODES_SQ8},
	{NULL}
};

/* sketch takes auto, or a boolean's spellings */
static relopt_enum_elt_def hnsw_sketch_values[] = {
	{"auto", HNSW_SKETCH_AUTO},
	{"on", HNSW_SKETCH_ON},
	{"off", HNSW_SKETCH_OFF},
	{"true", HNSW_SKETCH_ON},
	{"false", HNSW_SKETCH_OFF},
	{"yes", HNSW_SKETCH_ON},
	{"no", HNSW_SKETCH_OFF},
	{"1", HNSW_SKETCH_ON},
	{"0", HNSW_SKETCH_OFF},
	{"t", HNSW_SKETCH_ON},
	{"f", HNSW_SKETCH_OFF},
	{"y", HNSW_SKETCH_ON},
	{"n", HNSW_SKETCH_OFF},
	{NULL}
};

/* Register the index options and settings (from _PG_init) */
void
HnswDefineGucs(void)
{
	hnsw_relopt_kind = add_reloption_kind();
	add_int_reloption(hnsw_relopt_kind, "m",
					  "Neighbours per node on upper layers (twice this on layer 0)",
					  HNSW_DEFAULT_M, HNSW_MIN_M, HNSW_MAX_M,
					  AccessExclusiveLock);
	add_int_reloption(hnsw_relopt_kind, "ef_construction",
					  "Size of the candidate list while building the graph",
					  HNSW_DEFAULT_EF_CONSTRUCTION, HNSW_MIN_EF_CONSTRUCTION,
					  HNSW_MAX_EF_CONSTRUCTION, AccessExclusiveLock);
	add_enum_reloption(hnsw_relopt_kind, "storage",
					   "How the index stores vectors: float (4 bytes per dimension) or half (2 bytes)",
					   hnsw_storage_values, HNSW_STORAGE_FLOAT,
					   "Valid values are \"float\" and \"half\".",
					   AccessExclusiveLock);
	add_enum_reloption(hnsw_relopt_kind, "codes",
					   "What the graph walk reads: none (the stored vectors) or sq8 (an 8-bit code per dimension, results re-ranked with the vectors)",
					   hnsw_codes_values, HNSW_CODES_NONE,
					   "Valid values are \"none\" and \"sq8\".",
					   AccessExclusiveLock);
	add_real_reloption(hnsw_relopt_kind, "alpha",
					   "How long the graph's edges may be: RobustPrune's alpha (1.0 is HNSW's heuristic; larger keeps longer edges, for faster scans and slower inserts)",
					   HNSW_DEFAULT_ALPHA, HNSW_MIN_ALPHA, HNSW_MAX_ALPHA,
					   AccessExclusiveLock);
	add_enum_reloption(hnsw_relopt_kind, "sketch",
					   "Keep a sketch of every layer-0 edge, so scans can pass over neighbours estimated too far to matter: on, off, or auto (where they take no room on the pages)",
					   hnsw_sketch_values, HNSW_SKETCH_AUTO,
					   "Valid values are \"auto\", \"on\" and \"off\".",
					   AccessExclusiveLock);

	DefineCustomIntVariable("omen.hnsw_ef_search",
							"Size of the candidate list an omen_hnsw scan keeps.",
							"Larger finds more of the true nearest neighbours, "
							"more slowly.  A scan that must return more rows "
							"goes on in batches of this size.",
							&hnsw_ef_search,
							HNSW_DEFAULT_EF_SEARCH, 1, HNSW_MAX_EF_SEARCH,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("omen.hnsw_sketch_margin",
							 "How much further than the furthest result kept an edge sketch must place a neighbour for an omen_hnsw scan to pass over it.",
							 "A fraction of that distance.  Larger passes over "
							 "fewer neighbours: slower, and nearer to the "
							 "search without sketches.  -1 turns skipping off.",
							 &hnsw_sketch_margin,
							 0.2, -1.0, 100.0,
							 PGC_USERSET, 0, NULL, NULL, NULL);
}

/* amoptions */
static bytea *
hnswoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"m", RELOPT_TYPE_INT, offsetof(HnswOptions, m)},
		{"ef_construction", RELOPT_TYPE_INT, offsetof(HnswOptions, ef_construction)},
		{"storage", RELOPT_TYPE_ENUM, offsetof(HnswOptions, storage)},
		{"codes", RELOPT_TYPE_ENUM, offsetof(HnswOptions, codes)},
		{"sketch", RELOPT_TYPE_ENUM, offsetof(HnswOptions, sketch)},
		{"alpha", RELOPT_TYPE_REAL, offsetof(HnswOptions, alpha)},
	};

	return (bytea *) build_reloptions(reloptions, validate, hnsw_relopt_kind,
									  sizeof(HnswOptions), tab, lengthof(tab));
}

/* ambuildphasename */
static char *
hnswbuildphasename(int64 phasenum)
{
	switch (phasenum)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case 2:
			return "building graph";
		case 3:
			return "writing pages";
		default:
			return NULL;
	}
}

/*
 * amcostestimate.  A search touches about ef_search * 2m elements, each
 * likely on its own page, and must finish before the first row comes out,
 * so the whole cost is startup cost.  Without an ORDER BY on the indexed
 * operator the index is useless: make it prohibitively expensive.
 */
static void
hnswcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				 Cost *indexStartupCost, Cost *indexTotalCost,
				 Selectivity *indexSelectivity, double *indexCorrelation,
				 double *indexPages)
{
	Relation	index;
	int			m;

	index = index_open(path->indexinfo->indexoid, NoLock);
	m = HnswGetM(index);
	index_close(index, NoLock);

	OmenGraphCostEstimate(root, path, loop_count, (double) hnsw_ef_search * 2 * m,
						  indexStartupCost, indexTotalCost, indexSelectivity,
						  indexCorrelation, indexPages);
}

/* amvalidate: the operator classes are created by the extension script */
static bool
hnswvalidate(Oid opclassoid)
{
	return true;
}

/* Set the dimension of an index built empty on a column without typmod */
static void
SetIndexDim(Relation index, int dim)
{
	Buffer		buf = ReadBuffer(index, HNSW_METAPAGE_BLKNO);
	HnswMetaPage meta;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	meta = HnswPageGetMeta(BufferGetPage(buf));
	if (meta->dim == 0)
	{
		OmenXLog	x;

		OmenXLogStart(&x, index);
		meta = HnswPageGetMeta(OmenXLogRegister(&x, buf, false));
		meta->dim = dim;
		OmenXLogFinish(&x);
	}
	UnlockReleaseBuffer(buf);
}

/* aminsert */
bool
hnswinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
		   Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
		   IndexInfo *indexInfo)
{
	MemoryContext ctx;
	MemoryContext old;
	HnswShared	hs;
	Vector	   *v;
	float	   *vec;

	if (isnull[0])
		return false;

	ctx = AllocSetContextCreate(CurrentMemoryContext, "omen_hnsw aminsert",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);

	v = DatumGetVector(values[0]);
	HnswInitShared(&hs, index);
	if (hs.dim == 0)
	{
		HnswCheckDim(index, v->dim, hs.storage);
		SetIndexDim(index, v->dim);
		HnswFreeShared(&hs);
		HnswInitShared(&hs, index);
	}
	vec = palloc(sizeof(float) * hs.dim);
	if (OmenPrepareVector(&hs.dist, v, vec))
		HnswInsertVector(&hs, vec, heap_tid);

	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	return false;
}

/* The access method handler */
PG_FUNCTION_INFO_V1(omen_hnsw_handler);
Datum
omen_hnsw_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = OmenNewAmRoutine();

	am->ambuild = hnswbuild;
	am->ambuildempty = hnswbuildempty;
	am->aminsert = hnswinsert;
	am->ambulkdelete = hnswbulkdelete;
	am->amvacuumcleanup = hnswvacuumcleanup;
	am->amcanreturn = NULL;
	am->amcostestimate = hnswcostestimate;
	am->amoptions = hnswoptions;
	am->amproperty = NULL;
	am->ambuildphasename = hnswbuildphasename;
	am->amvalidate = hnswvalidate;
	am->amadjustmembers = NULL;
	am->ambeginscan = hnswbeginscan;
	am->amrescan = hnswrescan;
	am->amgettuple = hnswgettuple;
	am->amgetbitmap = NULL;
	am->amendscan = hnswendscan;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;

	PG_RETURN_POINTER(am);
}

/*
 * omen_hnsw_info(index): the shape of an omen_hnsw index, read from its
 * pages (share locks, one page at a time).
 */
PG_FUNCTION_INFO_V1(omen_hnsw_info);
Datum
omen_hnsw_info(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	Relation	index;
	TupleDesc	tupdesc;
	HnswMetaPageData meta;
	BlockNumber nblocks;
	int64		live = 0,
				deleted = 0,
				heaptids = 0,
				degree0 = 0,
				unsketched = 0;
	int			maxlevel = -1;
	int			groups = 0;
	Datum		values[19];
	bool		nulls[19] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	index = index_open(indexoid, AccessShareLock);
	if (index->rd_indam->ambuild != hnswbuild)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an omen_hnsw index",
						RelationGetRelationName(index))));

	HnswReadMeta(index, &meta);
	nblocks = RelationGetNumberOfBlocks(index);
	for (BlockNumber blk = 1; blk < nblocks; blk++)
	{
		Buffer		buf = ReadBuffer(index, blk);
		Page		page;

		CHECK_FOR_INTERRUPTS();
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber;
			 !HnswPageIsBasis(page) && off <= PageGetMaxOffsetNumber(page); off++)
		{
			ItemId		iid = PageGetItemId(page, off);
			char	   *tup;

			if (!ItemIdIsNormal(iid))
				continue;
			tup = PageGetItem(page, iid);
			if (*tup == HNSW_TUPLE_ELEMENT)
			{
				HnswElementTuple etup = (HnswElementTuple) tup;

				if (etup->state == HNSW_ELEMENT_LIVE)
				{
					live++;
					for (int i = 0; i < HNSW_HEAPTIDS; i++)
						if (ItemPointerIsValid(&etup->heaptids[i]))
							heaptids++;
					maxlevel = Max(maxlevel, etup->level);
				}
				else if (etup->state == HNSW_ELEMENT_DELETED)
					deleted++;
			}
			else if (*tup == HNSW_TUPLE_NEIGHBORS)
			{
				HnswNeighborTuple ntup = (HnswNeighborTuple) tup;

				ItemPointerData *tids = HnswNeighborTids(ntup, meta.m,
														 meta.sketch_bits);

				for (int i = 0; i < 2 * meta.m && i < ntup->count; i++)
					if (ItemPointerIsValid(&tids[i]))
					{
						degree0++;
						if (meta.sketch_bits > 0 &&
							isnan(HnswSketchNorms(ntup, meta.m)[i]))
							unsketched++;
					}
			}
		}
		UnlockReleaseBuffer(buf);
	}

	/* the pivots' tops (each heads a group), read as scans read them */
	if (meta.npivots > 0)
	{
		HnswShared	hs;
		const HnswPivots *pv;

		HnswInitShared(&hs, index);
		pv = HnswGetPivots(&hs);
		groups = pv ? pv->ntops : 0;
		HnswFreeShared(&hs);
	}

	values[0] = Int64GetDatum(nblocks);
	values[1] = Int64GetDatum(live);
	values[2] = Int64GetDatum(deleted);
	values[3] = Int64GetDatum(heaptids);
	values[4] = Int32GetDatum(maxlevel);
	values[5] = Int32GetDatum(meta.entry_level);
	values[6] = Float8GetDatum(live + deleted > 0 ?
							   (double) degree0 / (live + deleted) : 0.0);
	values[7] = Int32GetDatum(meta.dim);
	values[8] = Int32GetDatum(meta.m);
	values[9] = Int32GetDatum(meta.ef_construction);
	values[10] = CStringGetTextDatum(HnswStorageHalf(meta.storage) ? "half" : "float");
	values[11] = CStringGetTextDatum(OmenMetricName((OmenMetric) meta.metric));
	values[12] = Int64GetDatum((int64) nblocks * BLCKSZ);
	values[13] = CStringGetTextDatum(HnswStorageSq8(meta.storage) ? "sq8" : "none");
	values[14] = Int32GetDatum(meta.sketch_bits);
	values[15] = Int64GetDatum(unsketched);
	values[16] = Int32GetDatum(meta.npivots);
	values[17] = Int32GetDatum(meta.pivot_level);
	values[18] = Int32GetDatum(groups);

	index_close(index, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * diskann.c
 *	  omen_diskann: the access method handler, options, settings, cost
 *	  estimate, and the inspection function omen_diskann_info().
 */
#include "postgres.h"

#include <math.h>

#include "access/amapi.h"
#include "access/reloptions.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "common/shortest_dec.h"
#include "diskann.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"

static relopt_kind diskann_relopt_kind;

/* Register the index options and settings (from _PG_init) */
void
DiskannDefineGucs(void)
{
	diskann_relopt_kind = add_reloption_kind();
	add_int_reloption(diskann_relopt_kind, "max_neighbors",
					  "Most neighbours a node keeps (R)",
					  DISKANN_DEFAULT_MAX_NEIGHBORS, DISKANN_MIN_MAX_NEIGHBORS,
					  DISKANN_MAX_MAX_NEIGHBORS, AccessExclusiveLock);
	add_int_reloption(diskann_relopt_kind, "build_list_size",
					  "Size of the candidate list while building the graph (L)",
					  DISKANN_DEFAULT_BUILD_LIST, DISKANN_MIN_BUILD_LIST,
					  DISKANN_MAX_BUILD_LIST, AccessExclusiveLock);
	add_real_reloption(diskann_relopt_kind, "alpha",
					   "How far RobustPrune lets long edges survive (>= 1)",
					   DISKANN_DEFAULT_ALPHA, DISKANN_MIN_ALPHA, DISKANN_MAX_ALPHA,
					   AccessExclusiveLock);
	add_int_reloption(diskann_relopt_kind, "quantization_bits",
					  "Bits per dimension of the codes the graph is walked on: 1, 2 or 4; 0 walks on full vectors",
					  DISKANN_DEFAULT_BITS, 0, 4, AccessExclusiveLock);

	DefineCustomIntVariable("omen.diskann_search_list_size",
							"Size of the candidate list an omen_diskann scan keeps.",
							"Larger finds more of the true nearest neighbours, "
							"more slowly.  A scan that must return more rows "
							"goes on in lists of this size.",
							&diskann_search_list_size,
							DISKANN_DEFAULT_SEARCH_LIST, 1, DISKANN_MAX_SEARCH_LIST,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("omen.diskann_rerank",
							"How many candidates an omen_diskann scan re-scores with full vectors at a time (0: the whole list).",
							"The best candidates by code distance are re-scored "
							"with their full vectors, and returned in exact "
							"order, in groups of this size; 0 re-scores the "
							"whole search list as one group.",
							&diskann_rerank,
							DISKANN_DEFAULT_RERANK, 0, DISKANN_MAX_SEARCH_LIST,
							PGC_USERSET, 0, NULL, NULL, NULL);
}

/* Reject quantization_bits = 3 when the options are set */
static void
ValidateOptions(DiskannOptions *opts)
{

	if (opts->quantization_bits == 3)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantization_bits must be 0, 1, 2 or 4")));
	if (opts->build_list_size < opts->max_neighbors)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("build_list_size must be at least max_neighbors"),
				 errdetail("build_list_size is %d and max_neighbors is %d.",
						   opts->build_list_size, opts->max_neighbors)));
}

/* amoptions */
static bytea *
diskannoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"max_neighbors", RELOPT_TYPE_INT, offsetof(DiskannOptions, max_neighbors)},
		{"build_list_size", RELOPT_TYPE_INT, offsetof(DiskannOptions, build_list_size)},
		{"alpha", RELOPT_TYPE_REAL, offsetof(DiskannOptions, alpha)},
		{"quantization_bits", RELOPT_TYPE_INT, offsetof(DiskannOptions, quantization_bits)},
	};
	DiskannOptions *opts;

	opts = (DiskannOptions *) build_reloptions(reloptions, validate,
											   diskann_relopt_kind,
											   sizeof(DiskannOptions),
											   tab, lengthof(tab));
	if (validate && opts)
		ValidateOptions(opts);
	return (bytea *) opts;
}

/* ambuildphasename */
static char *
diskannbuildphasename(int64 phasenum)
{
	switch (phasenum)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case 2:
			return "loading vectors";
		case 3:
			return "training quantizer";
		case 4:
			return "building graph";
		case 5:
			return "writing pages";
		default:
			return NULL;
	}
}

/*
 * amcostestimate.  A scan scores on codes about search_list_size *
 * max_neighbors / 4 node tuples (the lists of neighbouring nodes overlap),
 * many of them on shared node pages, and re-scores about rerank vectors.
 */
static void
diskanncostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
					Cost *indexStartupCost, Cost *indexTotalCost,
					Selectivity *indexSelectivity, double *indexCorrelation,
					double *indexPages)
{
	Relation	index = index_open(path->indexinfo->indexoid, NoLock);
	DiskannOptions *opts = DiskannGetOptions(index);
	int			r = opts ? opts->max_neighbors : DISKANN_DEFAULT_MAX_NEIGHBORS;

	index_close(index, NoLock);
	OmenGraphCostEstimate(root, path, loop_count,
						  (double) diskann_search_list_size * r / 4 +
						  (diskann_rerank > 0 ?
						   Min(diskann_rerank, diskann_search_list_size) :
						   diskann_search_list_size),
						  indexStartupCost, indexTotalCost, indexSelectivity,
						  indexCorrelation, indexPages);
}

/* amvalidate: the operator classes are created by the extension script */
static bool
diskannvalidate(Oid opclassoid)
{
	return true;
}

/* The access method handler */
PG_FUNCTION_INFO_V1(omen_diskann_handler);
Datum
omen_diskann_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = OmenNewAmRoutine();

	am->ambuild = diskannbuild;
	am->ambuildempty = diskannbuildempty;
	am->aminsert = diskanninsert;
	am->ambulkdelete = diskannbulkdelete;
	am->amvacuumcleanup = diskannvacuumcleanup;
	am->amcanreturn = NULL;
	am->amcostestimate = diskanncostestimate;
	am->amoptions = diskannoptions;
	am->amproperty = NULL;
	am->ambuildphasename = diskannbuildphasename;
	am->amvalidate = diskannvalidate;
	am->amadjustmembers = NULL;
	am->ambeginscan = diskannbeginscan;
	am->amrescan = diskannrescan;
	am->amgettuple = diskanngettuple;
	am->amgetbitmap = NULL;
	am->amendscan = diskannendscan;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;

	PG_RETURN_POINTER(am);
}

#define INFO_ERROR_SAMPLE	1000

/*
 * omen_diskann_info(index): the shape of an omen_diskann index, read from
 * its pages (share locks, one page at a time).
 */
PG_FUNCTION_INFO_V1(omen_diskann_info);
Datum
omen_diskann_info(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	Relation	index;
	TupleDesc	tupdesc;
	DiskannMetaPageData meta;
	DiskannShared ds;
	BlockNumber nblocks;
	int64		nodepages = 0,
				vecpages = 0,
				live = 0,
				deleted = 0,
				freed = 0,
				degree = 0,
				uncoded = 0;
	ItemPointerData *sample_vec;
	uint8	   *sample_code;
	int			nsample = 0;
	double		qerr = -1;
	bool		entry_live = false;
	Datum		values[20];
	bool		nulls[20] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	index = index_open(indexoid, AccessShareLock);
	if (index->rd_indam->ambuild != diskannbuild)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an omen_diskann index",
						RelationGetRelationName(index))));

	DiskannReadMeta(index, &meta);
	DiskannInitShared(&ds, index);
	sample_vec = palloc(sizeof(ItemPointerData) * INFO_ERROR_SAMPLE);
	sample_code = palloc((Size) Max(ds.codebytes, 1) * INFO_ERROR_SAMPLE);

	nblocks = RelationGetNumberOfBlocks(index);
	for (BlockNumber blk = 1; blk < nblocks; blk++)
	{
		Buffer		buf = ReadBuffer(index, blk);
		Page		page;
		uint16		kind;

		CHECK_FOR_INTERRUPTS();
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		kind = PageIsNew(page) ? 0 : OmenPageGetOpaque(page)->kind;
		if (kind == DISKANN_PAGE_VECTOR)
			vecpages++;
		else if (kind == DISKANN_PAGE_NODE)
		{
			nodepages++;
			for (OffsetNumber off = FirstOffsetNumber;
				 off <= PageGetMaxOffsetNumber(page); off++)
			{
				DiskannNodeTuple t = (DiskannNodeTuple) OmenPageGetTuple(page, off);

				if (!t)
					continue;
				if (t->state == DISKANN_NODE_FREE)
				{
					freed++;
					continue;
				}
				if (t->state == DISKANN_NODE_LIVE)
				{
					live++;
					/*
					 * meta was read before this page: the index may have
					 * been empty then (invalid entry) and not be now
					 */
					if (ItemPointerIsValid(&meta.entry) &&
						ItemPointerGetBlockNumber(&meta.entry) == blk &&
						ItemPointerGetOffsetNumber(&meta.entry) == off)
						entry_live = true;
				}
				else
					deleted++;
				degree += t->count;
				if (!(t->flags & DISKANN_NODE_CODED))
					uncoded++;
				else if (ds.quant && t->state == DISKANN_NODE_LIVE &&
						 nsample < INFO_ERROR_SAMPLE)
				{
					sample_vec[nsample] = t->vectid;
					memcpy(sample_code + (Size) nsample * ds.codebytes,
						   DiskannNodeCode(t, ds.cap), ds.codebytes);
					nsample++;
				}
			}
		}
		UnlockReleaseBuffer(buf);
	}

	/* the codes' relative squared error against the stored vectors */
	if (ds.quant && nsample > 0)
	{
		float	   *vec = palloc(sizeof(float) * ds.dim);
		float	   *dec = palloc(sizeof(float) * ds.dim);
		double	   *sum = palloc0(sizeof(double) * ds.dim);
		double	   *sumsq = palloc0(sizeof(double) * ds.dim);
		double		err = 0,
					var = 0;
		int			used = 0;

		for (int i = 0; i < nsample; i++)
		{
			if (!DiskannReadVector(&ds, &sample_vec[i], NULL, vec))
				continue;
			DiskannQuantDecode(ds.quant, sample_code + (Size) i * ds.codebytes, dec);
			for (int j = 0; j < ds.dim; j++)
			{
				err += (double) (vec[j] - dec[j]) * (vec[j] - dec[j]);
				sum[j] += vec[j];
				sumsq[j] += (double) vec[j] * vec[j];
			}
			used++;
		}
		for (int j = 0; j < ds.dim && used > 0; j++)
			var += sumsq[j] - sum[j] * sum[j] / used;
		qerr = var > 0 ? err / var : 0;
	}

	values[0] = Int64GetDatum(nblocks);
	values[1] = Int64GetDatum(nodepages);
	values[2] = Int64GetDatum(vecpages);
	values[3] = Int64GetDatum(live);
	values[4] = Int64GetDatum(deleted);
	values[5] = Int64GetDatum(freed);
	values[6] = Float8GetDatum(live + deleted > 0 ?
							   (double) degree / (live + deleted) : 0.0);
	values[7] = Int32GetDatum(meta.dim);
	values[8] = Int32GetDatum(meta.max_neighbors);
	values[9] = Int32GetDatum(meta.build_list_size);
	{
		/* alpha is a float4 option: show 1.2 as written, not 1.2000000476837158 */
		char		buf[FLOAT_SHORTEST_DECIMAL_LEN];

		float_to_shortest_decimal_buf(meta.alpha, buf);
		values[10] = Float8GetDatum(strtod(buf, NULL));
	}
	values[11] = Int32GetDatum(meta.bits);
	values[12] = Int32GetDatum(meta.bits == 0 ? 0 : ds.codebytes);
	values[13] = BoolGetDatum(meta.trained);
	values[14] = Int64GetDatum(uncoded);
	if (qerr >= 0)
		values[15] = Float8GetDatum(qerr);
	else
		nulls[15] = true;
	values[16] = BoolGetDatum(entry_live);
	values[17] = CStringGetTextDatum(OmenMetricName((OmenMetric) meta.metric));
	values[18] = Int64GetDatum(nodepages * BLCKSZ);
	values[19] = Int32GetDatum(meta.trained ? meta.ncoarse : 0);

	index_close(index, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * index_cost.c
 *	  The planner's cost estimate shared by both graph indexes.
 *
 * A graph search reads about `visited` index tuples, each likely on its
 * own page, and must finish before the first row comes out, so the whole
 * cost is startup cost.  Without an ORDER BY on the indexed operator the
 * index is useless: it is made prohibitively expensive, so the planner
 * never picks it for a plain WHERE clause or a different ORDER BY.
 *
 * Also here: the properties both access methods declare to the planner.
 */
#include "postgres.h"

#include <float.h>

#include "access/amapi.h"
#include "commands/vacuum.h"
#include "omen_index.h"
#include "utils/selfuncs.h"

void
OmenGraphCostEstimate(PlannerInfo *root, IndexPath *path, double loop_count,
					  double visited, Cost *indexStartupCost,
					  Cost *indexTotalCost, Selectivity *indexSelectivity,
					  double *indexCorrelation, double *indexPages)
{
	GenericCosts costs;
	double		tuples;

	if (path->indexorderbys == NIL)
	{
		*indexStartupCost = DBL_MAX;
		*indexTotalCost = DBL_MAX;
		*indexSelectivity = 0;
		*indexCorrelation = 0;
		*indexPages = 0;
		return;
	}

	tuples = Min(path->indexinfo->tuples, visited);
	MemSet(&costs, 0, sizeof(costs));
	costs.numIndexTuples = Max(tuples, 1.0);
	genericcostestimate(root, path, loop_count, &costs);

	*indexStartupCost = costs.indexTotalCost;
	*indexTotalCost = costs.indexTotalCost;
	*indexSelectivity = costs.indexSelectivity;
	*indexCorrelation = 0;
	*indexPages = costs.numIndexPages;
}

/*
 * What both graph indexes are: single-column, ORDER BY distance operator
 * only (no plain ordering, no WHERE quals, no uniqueness), serial scans,
 * parallel bulk-delete.  The caller fills in its own callbacks.
 */
IndexAmRoutine *
OmenNewAmRoutine(void)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	am->amstrategies = 0;
	am->amsupport = OMEN_NPROCS;
	am->amoptsprocnum = 0;
	am->amcanorder = false;
	am->amcanorderbyop = true;
	am->amcanbackward = false;
	am->amcanunique = false;
	am->amcanmulticol = false;
	am->amoptionalkey = true;
	am->amsearcharray = false;
	am->amsearchnulls = false;
	am->amstorage = false;
	am->amclusterable = false;
	am->ampredlocks = false;
	am->amcanparallel = false;
	am->amcaninclude = false;
	am->amusemaintenanceworkmem = false;
	am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	am->amkeytype = InvalidOid;
	return am;
}

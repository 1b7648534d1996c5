/*
 * index_search.c
 *	  The best-first graph search both access methods use (HNSW's
 *	  SearchLayer, DiskANN's GreedySearch), over caller-supplied callbacks.
 *
 * State: cand (min-heap of nodes to expand), result (max-heap of the best
 * ef found), visited (ids already seen).  A node is expanded when it is
 * the nearest in cand; the search stops when that node is further than the
 * furthest kept result and result is full.
 *
 * For scans that must go on past the first ef rows, keep_rejected keeps
 * every node that was found but not kept (or later pushed out of result) in
 * the rejected min-heap.  When the caller has taken a batch of results,
 * OmenGraphSearchNextBatch refills result with the nearest ef rejected
 * nodes, queues the ones never expanded, and runs the loop again: the next
 * batch is the best ef not yet returned among everything reachable so far.
 * Within a batch the order is exact; a later batch may hold a node nearer
 * than one returned before it (the graph only reveals it later).
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "omen_index.h"
#include "utils/memutils.h"

/* Set up a search that keeps the best ef results */
void
OmenGraphSearchInit(OmenGraphSearch *s, const OmenGraphOps *ops, void *arg,
					int ef, int maxneighbors, bool keep_rejected)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->arg = arg;
	s->ef = Max(ef, 1);
	s->maxneighbors = maxneighbors;
	s->keep_rejected = keep_rejected;
	OmenVisitedInit(&s->visited, s->ef * 8);
	OmenHeapInit(&s->cand, s->ef * 2, false);
	OmenHeapInit(&s->result, s->ef + 1, true);
	OmenHeapInit(&s->rejected, keep_rejected ? s->ef * 4 : 16, false);
	s->nbuf = palloc(sizeof(uint64) * Max(maxneighbors, 1));
	s->fresh = palloc(sizeof(uint64) * Max(maxneighbors, 1));
	s->visits = palloc(sizeof(OmenVisit) * Max(maxneighbors, 1));
	s->est = palloc(sizeof(float) * Max(maxneighbors, 1));
	s->estimate_margin = -1.0f;
}

/* Forget everything for a fresh search (e.g. the next layer down) */
void
OmenGraphSearchReset(OmenGraphSearch *s, int ef)
{
	s->ef = Max(ef, 1);
	OmenVisitedReset(&s->visited);
	s->cand.count = 0;
	s->result.count = 0;
	s->rejected.count = 0;
	s->nexpanded = 0;
	s->hasnearest = false;
}

/* Release a search's memory */
void
OmenGraphSearchFree(OmenGraphSearch *s)
{
	OmenVisitedFree(&s->visited);
	OmenHeapFree(&s->cand);
	OmenHeapFree(&s->result);
	OmenHeapFree(&s->rejected);
	if (s->nbuf)
		pfree(s->nbuf);
	if (s->fresh)
		pfree(s->fresh);
	if (s->visits)
		pfree(s->visits);
	if (s->est)
		pfree(s->est);
	s->est = NULL;
	s->fresh = NULL;
	s->visits = NULL;
	if (s->expanded)
		pfree(s->expanded);
	s->nbuf = NULL;
	s->expanded = NULL;
}

/*
 * Offer a found node: it is queued to expand if it could improve the
 * results, and kept as a result if it is one.  What is not kept goes to
 * rejected when a later batch may want it, including nodes that are not
 * results (deleted): a later batch must still walk through them, or the
 * nodes behind them would never be reached.
 */
static void
Offer(OmenGraphSearch *s, OmenCand c, bool isresult)
{
	OmenHeap   *r = &s->result;

	c.id &= ~OMEN_CAND_FLAGS;
	if (!s->hasnearest || c.dist < s->nearest.dist)
	{
		s->nearest = c;
		s->hasnearest = true;
	}
	if (r->count < s->ef || c.dist < r->items[0].dist)
	{
		OmenHeapPush(&s->cand, c);
		if (!isresult)
			return;
		OmenHeapPush(r, c);
		if (r->count > s->ef)
		{
			OmenCand	out = OmenHeapPop(r);

			/* it is already queued in cand */
			if (s->keep_rejected)
			{
				out.id |= OMEN_CAND_QUEUED;
				OmenHeapPush(&s->rejected, out);
			}
		}
	}
	else if (s->keep_rejected)
	{
		if (!isresult)
			c.id |= OMEN_CAND_NORESULT;
		OmenHeapPush(&s->rejected, c);
	}
}

/* Offer node id, just visited (v->ok), as a starting node */
static void
OfferVisited(OmenGraphSearch *s, uint64 id, const OmenVisit *v)
{
	OmenCand	c;

	s->ndistances++;
	c.id = id;
	c.dist = v->dist;
	c.aux = v->aux;
	Offer(s, c, v->isresult);
}

/* Add a starting node by id; false if the callback skipped it */
bool
OmenGraphSearchAddEntry(OmenGraphSearch *s, uint64 id)
{
	OmenVisit	v;

	if (OmenVisitedTestAndSet(&s->visited, id))
		return true;
	s->ops->visit(s->arg, &id, 1, &v);
	if (!v.ok)
		return false;
	OfferVisited(s, id, &v);
	return true;
}

/*
 * Add a starting node the caller visited itself (ops->visit, in a batch
 * with others); false if it was already met
 */
bool
OmenGraphSearchAddVisited(OmenGraphSearch *s, uint64 id, const OmenVisit *v)
{
	Assert(v->ok);
	if (OmenVisitedTestAndSet(&s->visited, id))
		return false;
	OfferVisited(s, id, v);
	return true;
}

/* Add a starting node whose distance is already known (a result) */
void
OmenGraphSearchAddCand(OmenGraphSearch *s, OmenCand c)
{
	if (OmenVisitedTestAndSet(&s->visited, c.id))
		return;
	Offer(s, c, true);
}

/* Expand nodes until no candidate can improve the results */
void
OmenGraphSearchRun(OmenGraphSearch *s, int layer)
{
	while (s->cand.count > 0)
	{
		OmenCand	c = s->cand.items[0];
		int			n;

		if (s->result.count >= s->ef && c.dist > s->result.items[0].dist)
			break;
		OmenHeapPop(&s->cand);

		CHECK_FOR_INTERRUPTS();

		if (s->record_expanded)
		{
			if (s->nexpanded == s->maxexpanded)
			{
				s->maxexpanded = Max(64, s->maxexpanded * 2);
				s->expanded = s->expanded
					? repalloc(s->expanded, sizeof(OmenCand) * s->maxexpanded)
					: MemoryContextAlloc(GetMemoryChunkContext(s->nbuf),
										 sizeof(OmenCand) * s->maxexpanded);
			}
			s->expanded[s->nexpanded++] = c;
		}

		n = s->ops->neighbors(s->arg, c.id, c.aux, layer, s->nbuf,
							  s->maxneighbors);
		{
			int			nfresh = 0;
			bool		useest = false;
			float		limit = 0.0f;

			if (s->estimate_margin >= 0.0f && s->ops->estimate &&
				s->result.count >= s->ef && n > 0 &&
				s->ops->estimate(s->arg, c.dist, n, s->est))
			{
				float		worst = s->result.items[0].dist;

				useest = true;
				limit = worst + s->estimate_margin * fabsf(worst);
			}
			for (int i = 0; i < n; i++)
			{
				if (useest && s->est[i] > limit)
				{
					s->nskipped++;
					continue;
				}
				if (!OmenVisitedTestAndSet(&s->visited, s->nbuf[i]))
					s->fresh[nfresh++] = s->nbuf[i];
			}
			if (nfresh == 0)
				continue;
			s->ops->visit(s->arg, s->fresh, nfresh, s->visits);
			for (int i = 0; i < nfresh; i++)
			{
				OmenCand	e;

				if (!s->visits[i].ok)
					continue;
				s->ndistances++;
				e.id = s->fresh[i];
				e.dist = s->visits[i].dist;
				e.aux = s->visits[i].aux;
				Offer(s, e, s->visits[i].isresult);
			}
		}
	}
}

/*
 * Take the current results, nearest first, leaving result empty.  *out is
 * palloc'd (or NULL when there are none); returns the count.
 */
int
OmenGraphSearchTakeResults(OmenGraphSearch *s, OmenCand **out)
{
	int			n = s->result.count;
	OmenCand   *r;

	if (n == 0)
	{
		*out = NULL;
		return 0;
	}
	r = palloc(sizeof(OmenCand) * n);
	for (int i = n - 1; i >= 0; i--)
	{
		r[i] = OmenHeapPop(&s->result);
		r[i].id &= ~OMEN_CAND_FLAGS;
	}
	*out = r;
	return n;
}

/*
 * After the caller took a batch: find the next best ef nodes not yet
 * returned.  Returns false when nothing is left to find.
 */
bool
OmenGraphSearchNextBatch(OmenGraphSearch *s, int layer)
{
	Assert(s->keep_rejected);
	Assert(s->result.count == 0);

	/*
	 * Neighbours skipped by estimate were never marked visited, but neither
	 * are they in rejected: from here on, visit every neighbour, so that
	 * the next batches reach what the first passed over.
	 */
	s->estimate_margin = -1.0f;

	while (s->rejected.count > 0 && s->result.count < s->ef)
	{
		OmenCand	c = OmenHeapPop(&s->rejected);
		bool		queued = (c.id & OMEN_CAND_QUEUED) != 0;
		bool		noresult = (c.id & OMEN_CAND_NORESULT) != 0;

		c.id &= ~OMEN_CAND_FLAGS;
		if (!queued)
			OmenHeapPush(&s->cand, c);
		if (!noresult)
			OmenHeapPush(&s->result, c);
	}
	OmenGraphSearchRun(s, layer);
	return s->result.count > 0;
}

/*
 * Seed the search for the layer below with r[0..n) (the results of this
 * layer), after a reset to ef.  A layer that found no results (every node
 * it met is deleted, as when the entry point is deleted and VACUUM has not
 * yet replaced it) is seeded with the nearest node it met instead, to walk
 * on through: seeding it with nothing would leave the layers below with no
 * candidates at all, and an insert would link its new element to nothing.
 * Returns false if the layer met no node at all.
 */
static bool
SeedNextLayer(OmenGraphSearch *s, int ef, OmenCand *r, int n)
{
	OmenCand	nearest = s->nearest;
	bool		hasnearest = s->hasnearest;

	OmenGraphSearchReset(s, ef);
	for (int i = 0; i < n; i++)
		OmenGraphSearchAddCand(s, r[i]);
	if (n > 0)
		return true;
	if (!hasnearest)
		return false;
	(void) OmenVisitedTestAndSet(&s->visited, nearest.id);
	Offer(s, nearest, false);
	return true;
}

/*
 * Walk from entry down the layers fromlayer .. tolayer+1 of a hierarchical
 * graph keeping the width nearest nodes at each (width 1: greedily, as
 * HNSW describes it), leaving the search seeded at tolayer with them.
 * Returns false if even the entry could not be visited.  A layer that only
 * met nodes which are not results (deleted) keeps walking from the nearest
 * of them.
 *
 * On data in far-apart clusters a greedy walk can settle in the wrong
 * cluster at an upper layer, and the search of the bottom layer then stays
 * there; a few nodes a layer are enough to keep the right cluster in view.
 */
bool
OmenGraphSearchDescend(OmenGraphSearch *s, uint64 entry, int fromlayer,
					   int tolayer, int width)
{
	width = Max(width, 1);
	OmenGraphSearchReset(s, width);
	if (!OmenGraphSearchAddEntry(s, entry))
		return false;
	OmenGraphSearchDescendFrom(s, fromlayer, tolayer, width);
	return true;
}

/*
 * The walk of OmenGraphSearchDescend from a search already reset to width
 * and given its entries (at fromlayer), down to tolayer + 1
 */
void
OmenGraphSearchDescendFrom(OmenGraphSearch *s, int fromlayer, int tolayer,
						   int width)
{
	width = Max(width, 1);
	for (int layer = fromlayer; layer > tolayer; layer--)
	{
		OmenCand   *r;
		int			n;

		OmenGraphSearchRun(s, layer);
		n = OmenGraphSearchTakeResults(s, &r);
		(void) SeedNextLayer(s, width, r, Min(n, width));
		if (r)
			pfree(r);
	}
}

/*
 * Search one layer with ef results and return them, nearest first (*out
 * palloc'd, NULL if none).  The search is left seeded with them, ready for
 * the layer below (or, if there are none, with the nearest node it met).
 */
int
OmenGraphSearchLayer(OmenGraphSearch *s, int layer, int ef, OmenCand **out)
{
	int			n;

	s->ef = Max(ef, 1);
	OmenGraphSearchRun(s, layer);
	n = OmenGraphSearchTakeResults(s, out);
	(void) SeedNextLayer(s, ef, *out, n);
	return n;
}

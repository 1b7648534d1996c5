/*
 * index_heap.c
 *	  Candidate heaps, candidate sorting and the visited set used by both
 *	  graph searches.
 */
#include "postgres.h"

#include "omen_index.h"
#include "utils/memutils.h"

/* true if a belongs above b in the heap */
static inline bool
HeapAbove(const OmenHeap *h, const OmenCand *a, const OmenCand *b)
{
	return h->max ? a->dist > b->dist : a->dist < b->dist;
}

/* Set up an empty heap; it grows as needed */
void
OmenHeapInit(OmenHeap *h, int capacity, bool max)
{
	h->capacity = Max(capacity, 16);
	h->items = palloc(sizeof(OmenCand) * h->capacity);
	h->count = 0;
	h->max = max;
}

/* Add a candidate */
void
OmenHeapPush(OmenHeap *h, OmenCand c)
{
	int			i;

	if (h->count == h->capacity)
	{
		h->capacity *= 2;
		h->items = repalloc(h->items, sizeof(OmenCand) * h->capacity);
	}
	i = h->count++;
	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (!HeapAbove(h, &c, &h->items[parent]))
			break;
		h->items[i] = h->items[parent];
		i = parent;
	}
	h->items[i] = c;
}

/* Remove and return the top candidate; the heap must not be empty */
OmenCand
OmenHeapPop(OmenHeap *h)
{
	OmenCand	top = h->items[0];
	OmenCand	last = h->items[--h->count];
	int			i = 0;

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= h->count)
			break;
		if (child + 1 < h->count &&
			HeapAbove(h, &h->items[child + 1], &h->items[child]))
			child++;
		if (!HeapAbove(h, &h->items[child], &last))
			break;
		h->items[i] = h->items[child];
		i = child;
	}
	if (h->count > 0)
		h->items[i] = last;
	return top;
}

/* Release a heap's memory */
void
OmenHeapFree(OmenHeap *h)
{
	if (h->items)
		pfree(h->items);
	h->items = NULL;
	h->count = h->capacity = 0;
}

static int
CandCmp(const void *a, const void *b)
{
	const OmenCand *ca = a;
	const OmenCand *cb = b;

	if (ca->dist < cb->dist)
		return -1;
	if (ca->dist > cb->dist)
		return 1;
	/* ties by id, so equal distances come out in a stable order */
	if (ca->id < cb->id)
		return -1;
	if (ca->id > cb->id)
		return 1;
	return 0;
}

/* Sort candidates nearest first */
void
OmenSortCands(OmenCand *c, int n)
{
	if (n > 1)
		qsort(c, n, sizeof(OmenCand), CandCmp);
}

/* Set up an empty visited set sized for about expected ids */
void
OmenVisitedInit(OmenVisited *v, int expected)
{
	uint32		size = 64;

	while (size < (uint32) expected * 2)
		size *= 2;
	v->slots = palloc0(sizeof(uint64) * size);
	v->mask = size - 1;
	v->count = 0;
}

/* Forget every id, keeping the memory */
void
OmenVisitedReset(OmenVisited *v)
{
	memset(v->slots, 0, sizeof(uint64) * (v->mask + 1));
	v->count = 0;
}

/* Release a visited set's memory */
void
OmenVisitedFree(OmenVisited *v)
{
	if (v->slots)
		pfree(v->slots);
	v->slots = NULL;
}

/* Slot for a key: a 64-bit finalising mix (from splitmix64), masked */
static inline uint32
VisitedSlot(uint64 key, uint32 mask)
{
	key ^= key >> 30;
	key *= UINT64CONST(0xbf58476d1ce4e5b9);
	key ^= key >> 27;
	key *= UINT64CONST(0x94d049bb133111eb);
	key ^= key >> 31;
	return (uint32) key & mask;
}

/* Double the table when it is half full */
static void
VisitedGrow(OmenVisited *v)
{
	uint64	   *old = v->slots;
	uint32		oldsize = v->mask + 1;
	uint32		newsize = oldsize * 2;

	/* the same context as the old table, whatever is current now */
	v->slots = MemoryContextAllocZero(GetMemoryChunkContext(old),
									  sizeof(uint64) * newsize);
	v->mask = newsize - 1;
	for (uint32 i = 0; i < oldsize; i++)
	{
		if (old[i] != 0)
		{
			uint32		s = VisitedSlot(old[i], v->mask);

			while (v->slots[s] != 0)
				s = (s + 1) & v->mask;
			v->slots[s] = old[i];
		}
	}
	pfree(old);
}

/* Add id to the set; returns true if it was already there */
bool
OmenVisitedTestAndSet(OmenVisited *v, uint64 id)
{
	uint64		key = id + 1;
	uint32		s;

	if (v->count * 2 >= v->mask + 1)
		VisitedGrow(v);
	s = VisitedSlot(key, v->mask);
	while (v->slots[s] != 0)
	{
		if (v->slots[s] == key)
			return true;
		s = (s + 1) & v->mask;
	}
	v->slots[s] = key;
	v->count++;
	return false;
}

/* Whether id is in the set */
bool
OmenVisitedContains(const OmenVisited *v, uint64 id)
{
	uint64		key = id + 1;
	uint32		s = VisitedSlot(key, v->mask);

	while (v->slots[s] != 0)
	{
		if (v->slots[s] == key)
			return true;
		s = (s + 1) & v->mask;
	}
	return false;
}

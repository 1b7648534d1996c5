/*
 * index_page.c
 *	  Page and generic-WAL helpers shared by both graph indexes, and the
 *	  settings both use.
 *
 * Every change to an index page goes through OmenXLogStart / Register /
 * Finish (generic WAL, at most MAX_GENERIC_XLOG_PAGES pages per record), so
 * standbys and crash recovery see exactly what the primary wrote.  A bulk
 * build writes its pages unlogged and then logs them all at once with
 * OmenLogBuiltFork.
 */
#include "postgres.h"

#include <sys/statvfs.h>

#include "access/htup_details.h"
#include "access/xloginsert.h"
#include "miscadmin.h"
#include "omen_index.h"
#include "storage/buf_internals.h"
#include "storage/dsm_impl.h"
#include "storage/lmgr.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"

int			omen_max_scan_tuples = 20000;

/* Lay out an empty omen page of the given kind */
void
OmenInitPage(Page page, uint16 kind)
{
	OmenPageOpaque opaque;

	PageInit(page, BLCKSZ, sizeof(OmenPageOpaqueData));
	opaque = OmenPageGetOpaque(page);
	opaque->nextblkno = InvalidBlockNumber;
	opaque->kind = kind;
	opaque->page_id = OMEN_PAGE_ID;
}

/* Error out if a page is not an omen page of the expected kind */
void
OmenCheckPage(Relation index, Buffer buf, Page page, uint16 kind)
{
	OmenPageOpaque opaque;

	if (PageIsNew(page) ||
		PageGetSpecialSize(page) != MAXALIGN(sizeof(OmenPageOpaqueData)))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" contains an unexpected page at block %u",
						RelationGetRelationName(index),
						BufferGetBlockNumber(buf)),
				 errhint("Please REINDEX it.")));
	opaque = OmenPageGetOpaque(page);
	if (opaque->page_id != OMEN_PAGE_ID || opaque->kind != kind)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a page of kind %u at block %u, expected kind %u",
						RelationGetRelationName(index), opaque->kind,
						BufferGetBlockNumber(buf), kind),
				 errhint("Please REINDEX it.")));
}

/*
 * Copy the meta page (block 0, of page kind `kind`) into meta, size bytes
 * from the page's contents.  It starts with a uint32 magic number and a
 * uint32 version, which must be magic and version.
 */
void
OmenReadMeta(Relation index, uint16 kind, void *meta, Size size,
			 uint32 magic, uint32 version, const char *amname)
{
	Buffer		buf = ReadBuffer(index, 0);
	Page		page;
	uint32		head[2];

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	OmenCheckPage(index, buf, page, kind);
	memcpy(meta, PageGetContents(page), size);
	UnlockReleaseBuffer(buf);

	memcpy(head, meta, sizeof(head));
	if (head[0] != magic || head[1] != version)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not an %s index of version %u",
						RelationGetRelationName(index), amname, version),
				 errhint("Please REINDEX it.")));
}

/* Extend the fork by one page and return it exclusively locked */
Buffer
OmenNewBuffer(Relation index, ForkNumber fork)
{
	Buffer		buf;
	bool		needLock = !RELATION_IS_LOCAL(index);

	/* the relation-extension lock keeps two extenders off the same block */
	if (needLock)
		LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	if (needLock)
		UnlockRelationForExtension(index, ExclusiveLock);
	return buf;
}

/*
 * The buffer where each block of one index was last found, per backend.
 * A graph search reads hundreds of random pages per query; PostgreSQL
 * finds each through the shared buffer mapping table, a hash probe that
 * misses the CPU cache on a large shared_buffers.  ReadRecentBuffer pins a
 * buffer given a hint and only checks its tag, so a good hint skips the
 * probe; a stale one (the page was evicted) falls back to ReadBuffer.
 */
typedef struct RecentBuffers
{
	RelFileNode node;			/* whose blocks */
	BlockNumber size;			/* entries in recent */
	Buffer	   *recent;			/* InvalidBuffer: no hint */
} RecentBuffers;

static RecentBuffers recent_buffers;

#define OMEN_RECENT_MAX_BLOCKS	(16 * 1024 * 1024)	/* 64 MB of hints at most */

/* Pin block blkno of the index's main fork (no lock), using the hint cache */
Buffer
OmenReadBuffer(Relation index, BlockNumber blkno)
{
	RecentBuffers *rb = &recent_buffers;
	Buffer		buf;

	if (blkno >= OMEN_RECENT_MAX_BLOCKS)
		return ReadBuffer(index, blkno);

	if (!RelFileNodeEquals(rb->node, index->rd_node))
	{
		/* another index: start over */
		if (rb->recent)
			memset(rb->recent, 0, sizeof(Buffer) * rb->size);
		rb->node = index->rd_node;
	}
	if (blkno >= rb->size)
	{
		BlockNumber newsize = Max(Max(rb->size * 2, blkno + 1), 1024);

		newsize = Min(newsize, OMEN_RECENT_MAX_BLOCKS);
		if (rb->recent == NULL)
			rb->recent = MemoryContextAllocZero(TopMemoryContext,
												sizeof(Buffer) * newsize);
		else
		{
			rb->recent = repalloc(rb->recent, sizeof(Buffer) * newsize);
			memset(rb->recent + rb->size, 0,
				   sizeof(Buffer) * (newsize - rb->size));
		}
		rb->size = newsize;
	}

	buf = rb->recent[blkno];
	if (buf != InvalidBuffer &&
		ReadRecentBuffer(index->rd_node, MAIN_FORKNUM, blkno, buf))
		return buf;

	buf = ReadBuffer(index, blkno);
	rb->recent[blkno] = buf;
	return buf;
}

/*
 * Pull toward the cache what pinning shared buffer buf and reading its line
 * pointer off (if valid) will touch: the buffer header (written by the pin)
 * and the line pointer.  Addresses only; nothing is read.
 */
static inline void
PrefetchPinAndItem(Buffer buf, OffsetNumber off)
{
	OmenPrefetchLine(GetBufferDescriptor(buf - 1));
	if (OffsetNumberIsValid(off))
		OmenPrefetchLine(PageGetItemId((Page) BufferGetBlock(buf), off));
}

/*
 * Start reading a block of the index's main fork into shared buffers if it
 * is likely not there yet (this backend has no recent buffer for it), so
 * a walk over pages that are not cached issues its reads together instead
 * of one at a time.  A block with a hint is almost always cached, and
 * PrefetchBuffer's buffer-table probe would cost as much as the read.
 */
void
OmenPrefetchBlock(Relation index, BlockNumber blkno)
{
	OmenPrefetchTuple(index, blkno, InvalidOffsetNumber);
}

/*
 * Get ready to pin block blkno and read line pointer off (if valid) of the
 * index's main fork.  A block this backend has a recent buffer for is
 * almost always still there: pull that buffer's header (which the pin
 * writes) and the line pointer toward the cache, so the misses of a batch
 * of visits overlap instead of stalling one after another.  Only addresses
 * are computed; nothing is read, and a stale hint costs two useless
 * prefetches.  A block without a hint gets PrefetchBuffer.
 */
void
OmenPrefetchTuple(Relation index, BlockNumber blkno, OffsetNumber off)
{
	RecentBuffers *rb = &recent_buffers;
	Buffer		buf;

	if (!RelFileNodeEquals(rb->node, index->rd_node) || blkno >= rb->size ||
		(buf = rb->recent[blkno]) == InvalidBuffer)
	{
		(void) PrefetchBuffer(index, MAIN_FORKNUM, blkno);
		return;
	}
	if (buf > 0)
		PrefetchPinAndItem(buf, off);
}

/*
 * Get ready for the executor's fetch of heap tuple tid, which will follow
 * this scan's return of it a few rows from now: look its block up in the
 * buffer mapping (a block that is not in shared buffers gets its read
 * started, so the fetches of a batch of results wait for their reads
 * together) and pull the buffer header, the page header and the line
 * pointer toward the cache.  Returns the buffer the block is in, unpinned
 * (a hint for OmenPrefetchHeapTuple), or InvalidBuffer.
 */
Buffer
OmenPrefetchHeap(Relation heap, ItemPointer tid)
{
	PrefetchBufferResult r;
	Buffer		buf;

	if (heap == NULL || !ItemPointerIsValid(tid))
		return InvalidBuffer;
	r = PrefetchBuffer(heap, MAIN_FORKNUM, ItemPointerGetBlockNumber(tid));
	buf = r.recent_buffer;
	if (buf <= 0)
		return InvalidBuffer;
	OmenPrefetchLine(BufferGetBlock(buf));	/* the page header */
	PrefetchPinAndItem(buf, ItemPointerGetOffsetNumber(tid));
	return buf;
}

/*
 * Second step, a row or two later, once the line pointer is likely cached:
 * pull the tuple itself toward the cache (the executor reads all of it to
 * project the row and its distance).  The unlocked look at the line
 * pointer only chooses addresses; a stale hint prefetches useless lines.
 */
void
OmenPrefetchHeapTuple(Buffer hint, ItemPointer tid)
{
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	ItemIdData	lp;

	if (hint <= 0 || off < FirstOffsetNumber ||
		off > MaxHeapTuplesPerPage)
		return;
	page = (Page) BufferGetBlock(hint);
	lp = *PageGetItemId(page, off);
	if (ItemIdIsNormal(&lp) && ItemIdGetOffset(&lp) >= SizeOfPageHeaderData &&
		ItemIdGetOffset(&lp) + ItemIdGetLength(&lp) <= BLCKSZ)
		OmenPrefetch((char *) page + ItemIdGetOffset(&lp),
					 ItemIdGetLength(&lp));
}

/*
 * Whether dynamic shared memory can take a segment of this size here (a
 * parallel build's graph).  POSIX segments live in /dev/shm, which is often
 * small in containers; a build that would not fit there builds serially.
 */
bool
OmenDsmHasRoom(Size size)
{
#ifdef USE_DSM_POSIX
	if (dynamic_shared_memory_type == DSM_IMPL_POSIX)
	{
		struct statvfs st;

		if (statvfs("/dev/shm", &st) == 0 &&
			(double) st.f_bavail * st.f_frsize < (double) size * 1.1)
			return false;
	}
#endif
	return true;
}

/* Begin a generic WAL record */
void
OmenXLogStart(OmenXLog *x, Relation index)
{
	static bool malloc_nudged = false;

	/*
	 * Each generic WAL record allocates and frees about 66 KB of state (a
	 * copy and a delta per page).  With glibc's default trim threshold (128
	 * KB) freeing it at the top of the heap often shrinks the heap, and the
	 * next record grows it again: a brk system call, a TLB shootdown on
	 * every CPU that ran the backend, and fresh page faults.  An
	 * omen_diskann insert writes a record per backlink, so on this 2-core VM
	 * inserts did not scale past one client (the kernel's brk path was a
	 * tenth of the profile).  glibc raises its trim threshold to twice the
	 * size of the largest memory-mapped block a process frees (any large
	 * sort does this), so free one such block once: the threshold becomes 2
	 * MB and the heap stops oscillating.  pgbench single-row inserts into
	 * 100k x 128, 1 / 2 / 4 clients, two rounds: 980 / 1,319 / 948 and 949
	 * / 1,046 / 746 rows/s before, 1,139 / 2,087 / 1,566 and 970 / 1,585 /
	 * 1,096 after.  On other C libraries this is a harmless allocation.
	 */
	if (!malloc_nudged)
	{
		void	   *p = malloc(1024 * 1024);

		if (p)
		{
			*(volatile char *) p = 0;
			free(p);
		}
		malloc_nudged = true;
	}
	x->state = GenericXLogStart(index);
	x->nbufs = 0;
}

/*
 * Register an exclusively locked buffer; returns the page image to change.
 * newpage: the page is being initialised, log a full image.
 */
Page
OmenXLogRegister(OmenXLog *x, Buffer buf, bool newpage)
{
	Assert(x->nbufs < MAX_GENERIC_XLOG_PAGES);
	x->nbufs++;
	return GenericXLogRegisterBuffer(x->state, buf,
									 newpage ? GENERIC_XLOG_FULL_IMAGE : 0);
}

/* Apply the changes to the buffers and write the record */
void
OmenXLogFinish(OmenXLog *x)
{
	GenericXLogFinish(x->state);
	x->state = NULL;
}

/* Discard the changes */
void
OmenXLogAbort(OmenXLog *x)
{
	if (x->state)
		GenericXLogAbort(x->state);
	x->state = NULL;
}

/* After a bulk build that wrote pages unlogged: log every page at once */
void
OmenLogBuiltFork(Relation index, ForkNumber fork)
{
	BlockNumber nblocks = RelationGetNumberOfBlocksInFork(index, fork);

	if (RelationNeedsWAL(index) || fork == INIT_FORKNUM)
		log_newpage_range(index, fork, 0, nblocks, true);
}

/* Settings that both access methods read */
void
OmenIndexDefineGucs(void)
{
	DefineCustomIntVariable("omen.max_scan_tuples",
							"Most rows one omen index scan returns.",
							"A scan goes on past its first search list while "
							"the executor asks for more rows (for example when "
							"a WHERE clause filters them), up to this many; "
							"-1 means until the index is exhausted.",
							&omen_max_scan_tuples,
							20000, -1, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
}

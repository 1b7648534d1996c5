/*
 * omen.c
 *	  Module entry point: load-time set-up shared by the whole extension.
 */
#include "postgres.h"

#include "fmgr.h"
#include "am_diskann/diskann.h"
#include "am_hnsw/hnsw.h"
#include "omen_index.h"
#include "simd/omen_simd.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

extern void OmenSimdDefineGuc(void);
void		_PG_init(void);

/* Called once when the library is loaded into a backend */
void
_PG_init(void)
{
	OmenSimdInit();
	OmenSimdDefineGuc();
	OmenIndexDefineGucs();
	HnswDefineGucs();
	DiskannDefineGucs();

	/* after every omen.* setting is defined: reject misspelt ones */
	MarkGUCPrefixReserved("omen");
}

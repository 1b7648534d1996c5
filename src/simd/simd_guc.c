/*
 * simd_guc.c
 *	  The omen.simd setting and the SQL function omen_simd_level().
 *
 * omen.simd picks the distance kernels: "auto" (the default) uses the best
 * level this CPU supports, and "avx512", "avx2" or "scalar" force one level,
 * for comparing results or timings.  Asking for a level the CPU lacks is
 * refused by the check hook, so omen_kernels never points at code that
 * cannot run.  The CPU detection itself is in simd.c.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "simd/omen_simd.h"

/* The omen.simd value meaning "the best level the CPU supports" */
#define OMEN_SIMD_AUTO	(-1)

/* Called from _PG_init() in omen.c */
extern void OmenSimdDefineGuc(void);

/* The values omen.simd accepts; the level names match OmenKernels.name */
static const struct config_enum_entry omen_simd_options[] = {
	{"auto", OMEN_SIMD_AUTO, false},
	{"avx512", OMEN_SIMD_AVX512, false},
	{"avx2", OMEN_SIMD_AVX2, false},
	{"scalar", OMEN_SIMD_SCALAR, false},
	{NULL, 0, false}
};

/* Current value of omen.simd */
static int	omen_simd = OMEN_SIMD_AUTO;

/* The omen.simd name of a level */
static const char *
omen_simd_option_name(int value)
{
	const struct config_enum_entry *entry;

	for (entry = omen_simd_options; entry->name != NULL; entry++)
	{
		if (entry->val == value)
			return entry->name;
	}
	return "unknown";
}

/* Check hook for omen.simd: refuse a level this CPU cannot run */
static bool
check_omen_simd(int *newval, void **extra, GucSource source)
{
	char		supported[64];
	int			level;

	if (*newval == OMEN_SIMD_AUTO || OmenCpuSupports((OmenSimdLevel) *newval))
		return true;

	/* list the levels this CPU has, best first, e.g. "avx2, scalar" */
	supported[0] = '\0';
	for (level = OMEN_SIMD_NLEVELS - 1; level >= 0; level--)
	{
		if (!OmenCpuSupports((OmenSimdLevel) level))
			continue;
		if (supported[0] != '\0')
			strlcat(supported, ", ", sizeof(supported));
		strlcat(supported, omen_simd_option_name(level), sizeof(supported));
	}

	GUC_check_errcode(ERRCODE_FEATURE_NOT_SUPPORTED);
	GUC_check_errmsg("this CPU does not support omen.simd level \"%s\"",
					 omen_simd_option_name(*newval));
	GUC_check_errdetail("The levels this CPU supports are: %s.", supported);
	GUC_check_errhint("Set omen.simd to \"auto\" to use the best of them.");
	return false;
}

/* Assign hook for omen.simd: switch omen_kernels to the chosen level */
static void
assign_omen_simd(int newval, void *extra)
{
	const OmenKernels *kernels = NULL;

	if (newval != OMEN_SIMD_AUTO)
		kernels = OmenKernelsFor((OmenSimdLevel) newval);
	/* the check hook has refused unsupported levels; be safe anyway */
	if (kernels == NULL)
		kernels = OmenKernelsFor(OmenBestSimdLevel());
	omen_kernels = kernels;
}

/* Define omen.simd; OmenSimdInit() must have run first */
void
OmenSimdDefineGuc(void)
{
	DefineCustomEnumVariable("omen.simd",
							 "Selects the SIMD instruction set used for vector distances.",
							 "\"auto\" uses the best one this CPU supports; "
							 "\"avx512\", \"avx2\" and \"scalar\" force one.",
							 &omen_simd,
							 OMEN_SIMD_AUTO,
							 omen_simd_options,
							 PGC_USERSET,
							 0,
							 check_omen_simd,
							 assign_omen_simd,
							 NULL);
}

PG_FUNCTION_INFO_V1(omen_simd_level);

/* SQL omen_simd_level(): the name of the SIMD level in use */
Datum
omen_simd_level(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(omen_kernels->name));
}

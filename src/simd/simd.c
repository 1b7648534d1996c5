/*
 * simd.c
 *	  CPU feature detection and the choice of distance kernels.
 *
 * The levels are nested: AVX2 means AVX2, FMA and F16C (the half-precision
 * kernels; every AVX2 CPU has it), and AVX-512 is only offered on a CPU that
 * also has those (every AVX-512 CPU does), so the best level is simply the highest
 * one supported.  A level counts as supported only if the CPU has the
 * instructions (CPUID) and the operating system saves the register state they
 * use (CPUID.OSXSAVE, then XCR0 through XGETBV): YMM state for AVX2, and also
 * opmask and ZMM state for AVX-512.  On anything but x86-64 only the scalar
 * kernels are built.
 *
 * No PostgreSQL header is included here (see omen_simd.h).
 */
#include "simd/omen_simd.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* The kernel sets, one per level, defined in kernels_*.c */
extern const OmenKernels omen_kernels_scalar;
#if defined(__x86_64__)
extern const OmenKernels omen_kernels_avx2;
extern const OmenKernels omen_kernels_avx512;
#endif

/* Every kernel set built into this module, indexed by level */
static const OmenKernels *const kernel_tables[OMEN_SIMD_NLEVELS] = {
	[OMEN_SIMD_SCALAR] = &omen_kernels_scalar,
#if defined(__x86_64__)
	[OMEN_SIMD_AVX2] = &omen_kernels_avx2,
	[OMEN_SIMD_AVX512] = &omen_kernels_avx512,
#endif
};

/* Scalar until OmenSimdInit() runs, so it is never NULL */
const OmenKernels *omen_kernels = &omen_kernels_scalar;

/* What detect_cpu() found; valid once cpu_detected is set */
static bool cpu_detected = false;
static bool cpu_supports[OMEN_SIMD_NLEVELS];

#if defined(__x86_64__)

/* XCR0 state bits: XMM, upper halves of YMM, opmask, upper ZMM0-15, ZMM16-31 */
#define XCR0_SSE		(1u << 1)
#define XCR0_YMM		(1u << 2)
#define XCR0_OPMASK		(1u << 5)
#define XCR0_ZMM_HI256	(1u << 6)
#define XCR0_HI16_ZMM	(1u << 7)

#define XCR0_AVX_STATE		(XCR0_SSE | XCR0_YMM)
#define XCR0_AVX512_STATE	(XCR0_AVX_STATE | XCR0_OPMASK | XCR0_ZMM_HI256 | XCR0_HI16_ZMM)

/* CPUID feature bits (leaf 1 ECX; leaf 7 subleaf 0 EBX) */
#define CPUID1_ECX_FMA		(1u << 12)
#define CPUID1_ECX_F16C		(1u << 29)
#define CPUID1_ECX_OSXSAVE	(1u << 27)
#define CPUID1_ECX_AVX		(1u << 28)
#define CPUID7_EBX_AVX2		(1u << 5)
#define CPUID7_EBX_AVX512F	(1u << 16)

/* Read XCR0; only valid to call when CPUID says OSXSAVE */
static uint64_t
read_xcr0(void)
{
	uint32_t	eax;
	uint32_t	edx;

	/* the xgetbv mnemonic, so no -mxsave or target attribute is needed */
	__asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
	return ((uint64_t) edx << 32) | eax;
}

/* Fill cpu_supports[] from CPUID and XCR0 */
static void
detect_x86(void)
{
	unsigned int eax,
				ebx,
				ecx,
				edx;
	unsigned int ecx1;
	unsigned int ebx7 = 0;
	uint64_t	xcr0 = 0;
	bool		avx2;

	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
		return;
	ecx1 = ecx;

	/* __get_cpuid_count fails if leaf 7 is beyond the CPU's highest leaf */
	if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
		ebx7 = ebx;

	if (ecx1 & CPUID1_ECX_OSXSAVE)
		xcr0 = read_xcr0();

	avx2 = (ecx1 & CPUID1_ECX_AVX) &&
		(ecx1 & CPUID1_ECX_FMA) &&
		(ecx1 & CPUID1_ECX_F16C) &&
		(ebx7 & CPUID7_EBX_AVX2) &&
		(ecx1 & CPUID1_ECX_OSXSAVE) &&
		(xcr0 & XCR0_AVX_STATE) == XCR0_AVX_STATE;

	cpu_supports[OMEN_SIMD_AVX2] = avx2;
	cpu_supports[OMEN_SIMD_AVX512] = avx2 &&
		(ebx7 & CPUID7_EBX_AVX512F) &&
		(xcr0 & XCR0_AVX512_STATE) == XCR0_AVX512_STATE;
}

#endif							/* __x86_64__ */

/* Work out once which levels this CPU and OS can run */
static void
detect_cpu(void)
{
	int			level;

	if (cpu_detected)
		return;
	for (level = 0; level < OMEN_SIMD_NLEVELS; level++)
		cpu_supports[level] = false;
	cpu_supports[OMEN_SIMD_SCALAR] = true;
#if defined(__x86_64__)
	detect_x86();
#endif
	/* never offer a level whose kernels are not built in */
	for (level = 0; level < OMEN_SIMD_NLEVELS; level++)
		if (kernel_tables[level] == NULL)
			cpu_supports[level] = false;
	cpu_detected = true;
}

/* Detect the CPU and point omen_kernels at the best supported level */
void
OmenSimdInit(void)
{
	detect_cpu();
	omen_kernels = kernel_tables[OmenBestSimdLevel()];
}

/* Whether this CPU (and OS) supports a level */
bool
OmenCpuSupports(OmenSimdLevel level)
{
	if ((int) level < 0 || level >= OMEN_SIMD_NLEVELS)
		return false;
	detect_cpu();
	return cpu_supports[level];
}

/* The kernel set for a level, or NULL if the CPU lacks it */
const OmenKernels *
OmenKernelsFor(OmenSimdLevel level)
{
	if (!OmenCpuSupports(level))
		return NULL;
	return kernel_tables[level];
}

/* The best level this CPU supports */
OmenSimdLevel
OmenBestSimdLevel(void)
{
	int			level;

	detect_cpu();
	for (level = OMEN_SIMD_NLEVELS - 1; level > OMEN_SIMD_SCALAR; level--)
		if (cpu_supports[level])
			return (OmenSimdLevel) level;
	return OMEN_SIMD_SCALAR;
}

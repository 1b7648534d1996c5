/*
 * membw.c: how fast one core reads vectors scattered over memory, the way
 * an omen_hnsw visit does (am_hnsw README, "Where a query's time goes").
 *
 *   cc -O2 -o /tmp/membw bench/tools/membw.c && /tmp/membw [bytes]
 *
 * Fills 1 GiB, then reads it (1) sequentially and (2) as random blocks of
 * `bytes` (default 3136: 784 float4), 20 at a time: every line of all 20
 * blocks is prefetched first, then each block is summed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BURST 20
#define ROUNDS 20000

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	size_t		n = (size_t) 1 << 28;	/* floats: 1 GiB */
	size_t		bytes = argc > 1 ? strtoul(argv[1], NULL, 10) : 3136;
	size_t		nblocks;
	float	   *a = malloc(n * sizeof(float));
	float		sum = 0;
	unsigned	r = 1;
	double		t;

	if (a == NULL || bytes < 64 || bytes > n)
	{
		fprintf(stderr, "membw: bad size or out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		a[i] = (float) (i & 7);

	t = now();
	for (size_t i = 0; i < n; i += 16)	/* one float per 64-byte line */
		sum += a[i];
	t = now() - t;
	printf("sequential: %.1f GB/s\n", n * sizeof(float) / t / 1e9);

	nblocks = n * sizeof(float) / bytes;
	t = now();
	for (int round = 0; round < ROUNDS; round++)
	{
		const char *blk[BURST];

		for (int j = 0; j < BURST; j++)
		{
			r = r * 1103515245 + 12345;
			blk[j] = (const char *) a + ((r >> 4) % nblocks) * bytes;
			for (size_t o = 0; o < bytes; o += 64)
				__builtin_prefetch(blk[j] + o);
		}
		for (int j = 0; j < BURST; j++)
			for (size_t o = 0; o < bytes; o += 64)
				sum += *(const float *) (blk[j] + o);
	}
	t = now() - t;
	printf("random %zu-byte blocks, prefetched %d at a time: %.1f GB/s, %.0f ns per block\n",
		   bytes, BURST, (double) ROUNDS * BURST * bytes / t / 1e9,
		   t / ((double) ROUNDS * BURST) * 1e9);
	return sum == -1.0f;		/* keep the reads */
}

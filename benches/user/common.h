/* Shared by the benchmark programs: a checksum line in one fixed format, so the runner can
 * compare a program's output under tern, QEMU and natively byte for byte. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Fold a 64-bit value into a running checksum (a multiply-xorshift mix: every input bit
 * reaches every output bit, so one wrong result anywhere changes the line). */
static inline uint64_t mix64(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

/* A size scale from argv[1] (default 1): the runner never passes it, it is there to try
 * a program quickly at a smaller or larger size while tuning. */
static inline unsigned scale_arg(int argc, char **argv, unsigned dflt)
{
    return argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : dflt;
}

static inline void print_checksum(const char *name, uint64_t h)
{
    printf("%s checksum %016llx\n", name, (unsigned long long)h);
}
#endif

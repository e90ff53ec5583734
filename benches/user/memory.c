/* Memory-bound: working sets far beyond the caches, so the time goes to loads and stores
 * and their address translation rather than ALU work. Kernels: a dependent pointer chase
 * over a random single-cycle permutation (one cache miss per step, no overlap), a naive
 * matrix transpose (one side strided: a TLB miss per element), and an LSD radix sort of
 * 64-bit keys (streaming reads, scattered writes). */
#include "common.h"

static uint64_t rng_state = 0x853c49e6748fea9bull;
static uint64_t next_rand(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* Sattolo's algorithm: a random permutation that is one single cycle, so the chase
 * visits every slot before returning to the start. */
static uint64_t pointer_chase(size_t n, size_t steps)
{
    uint32_t *next = xmalloc(n * sizeof *next);
    for (size_t i = 0; i < n; i++)
        next[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = next_rand() % i;
        uint32_t t = next[i];
        next[i] = next[j];
        next[j] = t;
    }
    uint64_t acc = 0;
    uint32_t p = 0;
    for (size_t s = 0; s < steps; s++) {
        p = next[p];
        acc += p;
    }
    free(next);
    return acc ^ p;
}

static uint64_t transpose(size_t n, unsigned reps)
{
    uint32_t *a = xmalloc(n * n * sizeof *a), *b = xmalloc(n * n * sizeof *b);
    for (size_t i = 0; i < n * n; i++)
        a[i] = (uint32_t)(i * 2654435761u);
    for (unsigned r = 0; r < reps; r++) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                b[j * n + i] = a[i * n + j] + r;
        uint32_t *t = a;
        a = b;
        b = t;
    }
    uint64_t acc = 0;
    for (size_t i = 0; i < n * n; i += 7)
        acc = acc * 31 + a[i];
    free(a);
    free(b);
    return acc;
}

static uint64_t radix_sort(size_t n)
{
    uint64_t *a = xmalloc(n * sizeof *a), *b = xmalloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++)
        a[i] = next_rand();
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[257] = { 0 };
        for (size_t i = 0; i < n; i++)
            count[((a[i] >> shift) & 0xff) + 1]++;
        for (int d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++)
            b[count[(a[i] >> shift) & 0xff]++] = a[i];
        uint64_t *t = a;
        a = b;
        b = t;
    }
    uint64_t acc = 0;
    for (size_t i = 1; i < n; i++) {
        if (a[i - 1] > a[i]) {
            fprintf(stderr, "radix sort: not sorted at %zu\n", i);
            exit(1);
        }
        acc = mix64(acc, a[i]) * (i & 1023 ? 1 : 3);
    }
    free(a);
    free(b);
    return acc;
}

int main(int argc, char **argv)
{
    unsigned scale = scale_arg(argc, argv, 4);
    uint64_t h = 0;
    h = mix64(h, pointer_chase((size_t)1 << 23, (size_t)scale << 22));
    h = mix64(h, transpose(2048, scale));
    h = mix64(h, radix_sort((size_t)scale << 20));
    print_checksum("memory", h);
    return 0;
}

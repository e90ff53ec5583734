/* Many allocations of many sizes (brk heap and mmap'd chunks), frees, reallocs, and a
 * checksum over the contents, so lost or corrupted memory changes the output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 512

static uint64_t state = 0x12345678;
static uint64_t next(void)
{
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
}

int main(void)
{
    unsigned char *p[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    uint64_t sum = 0;
    for (int round = 0; round < 20000; round++) {
        int i = next() % SLOTS;
        if (p[i]) {
            for (size_t k = 0; k < len[i]; k++)
                sum = sum * 31 + p[i][k];
            if (next() % 3 == 0) {
                size_t nl = 1 + next() % (next() % 8 == 0 ? 300000 : 2000);
                unsigned char *q = realloc(p[i], nl);
                if (!q)
                    return 1;
                for (size_t k = len[i]; k < nl; k++)
                    q[k] = (unsigned char)(k * 7 + i);
                p[i] = q;
                len[i] = nl;
                continue;
            }
            free(p[i]);
            p[i] = NULL;
        } else {
            size_t nl = 1 + next() % (next() % 16 == 0 ? 1000000 : 4000);
            p[i] = malloc(nl);
            if (!p[i])
                return 1;
            memset(p[i], (int)(i + nl), nl);
            len[i] = nl;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        free(p[i]);
    printf("checksum=%016llx\n", (unsigned long long)sum);
    return 0;
}

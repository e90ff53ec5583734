/* Integer loops: the register-to-register ALU work that dominates most compiled code.
 * Kernels: a bitwise CRC-32 (shifts, masks, data-dependent branches), a 64-bit hash mix
 * (multiplies, rotates), bit tricks (popcount, count-leading-zeros, bit reversal), and
 * integer division/remainder (gcd). Everything is unsigned so the result is the same on
 * every host; nothing touches more than a few KiB of memory. */
#include "common.h"

static uint32_t crc32_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
    return ~crc;
}

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* xoshiro-style state update plus a murmur-like finaliser. */
static uint64_t hash_mix(uint64_t seed, unsigned rounds)
{
    uint64_t s0 = seed, s1 = seed ^ 0x6a09e667f3bcc909ull, acc = 0;
    for (unsigned i = 0; i < rounds; i++) {
        uint64_t r = rotl64(s0 * 5, 7) * 9;
        uint64_t t = s1 << 17;
        s1 ^= s0;
        s0 = rotl64(s0, 24) ^ s1 ^ t;
        s1 = rotl64(s1, 37);
        r ^= r >> 33;
        r *= 0xff51afd7ed558ccdull;
        r ^= r >> 33;
        acc += r;
    }
    return acc;
}

static uint64_t bit_tricks(uint64_t x, unsigned rounds)
{
    uint64_t acc = 0;
    for (unsigned i = 0; i < rounds; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t v = x | 1;
        uint64_t rev = v;
        rev = ((rev >> 1) & 0x5555555555555555ull) | ((rev & 0x5555555555555555ull) << 1);
        rev = ((rev >> 2) & 0x3333333333333333ull) | ((rev & 0x3333333333333333ull) << 2);
        rev = ((rev >> 4) & 0x0f0f0f0f0f0f0f0full) | ((rev & 0x0f0f0f0f0f0f0f0full) << 4);
        rev = __builtin_bswap64(rev);
        acc += (uint64_t)__builtin_popcountll(v) + (uint64_t)__builtin_clzll(v) * 3 +
               (uint64_t)__builtin_ctzll(rev) * 7 + (rev & (v - 1));
        acc ^= (v & -v) << 3;
    }
    return acc;
}

static uint64_t gcd_sum(uint64_t seed, unsigned n)
{
    uint64_t acc = 0, x = seed;
    for (unsigned i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t a = (x & 0xffffffffu) + 1, b = (x >> 32) + 1;
        while (b) {
            uint64_t t = a % b;
            a = b;
            b = t;
        }
        acc += a + (x / 12345u);
    }
    return acc;
}

int main(int argc, char **argv)
{
    unsigned scale = scale_arg(argc, argv, 25);
    static uint8_t buf[4096];
    uint64_t h = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + (i >> 5));

    uint32_t crc = 0;
    for (unsigned r = 0; r < 40 * scale; r++) {
        crc = crc32_bitwise(crc, buf, sizeof buf);
        buf[r % sizeof buf] ^= (uint8_t)crc;
    }
    h = mix64(h, crc);
    h = mix64(h, hash_mix(h, 2000000u * scale));
    h = mix64(h, bit_tricks(h, 1500000u * scale));
    h = mix64(h, gcd_sum(h | 1, 150000u * scale));
    print_checksum("intloop", h);
    return 0;
}

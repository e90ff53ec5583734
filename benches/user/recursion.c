/* Call-heavy recursion: calls, returns and stack traffic dominate, which is where a JIT's
 * handling of indirect jumps (every return is one) shows. Kernels: naive Fibonacci,
 * Ackermann (deep, irregular recursion), tak, and building/walking/freeing binary trees
 * (recursion plus malloc/free). */
#include "common.h"

__attribute__((noinline)) static uint64_t fib(unsigned n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

__attribute__((noinline)) static uint64_t ack(uint64_t m, uint64_t n)
{
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}

__attribute__((noinline)) static int tak(int x, int y, int z)
{
    return y < x ? tak(tak(x - 1, y, z), tak(y - 1, z, x), tak(z - 1, x, y)) : z;
}

struct node {
    struct node *left, *right;
    uint32_t value;
};

static struct node *build(unsigned depth, uint32_t value)
{
    struct node *n = malloc(sizeof *n);
    if (!n) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    n->value = value;
    if (depth == 0) {
        n->left = n->right = NULL;
    } else {
        n->left = build(depth - 1, value * 2 + 1);
        n->right = build(depth - 1, value * 2 + 2);
    }
    return n;
}

static uint64_t walk(const struct node *n)
{
    if (!n)
        return 0;
    return n->value + 3 * walk(n->left) + walk(n->right);
}

static void release(struct node *n)
{
    if (!n)
        return;
    release(n->left);
    release(n->right);
    free(n);
}

int main(int argc, char **argv)
{
    unsigned scale = scale_arg(argc, argv, 12);
    uint64_t h = 0;
    for (unsigned r = 0; r < scale; r++) {
        h = mix64(h, fib(32 + r % 2));
        h = mix64(h, ack(2, 2000 + r));
        h = mix64(h, ack(3, 7));
        h = mix64(h, (uint64_t)tak(18 + r % 2, 12, 6));
        for (unsigned t = 0; t < 4; t++) {
            struct node *root = build(16, t + r);
            h = mix64(h, walk(root));
            release(root);
        }
    }
    print_checksum("recursion", h);
    return 0;
}

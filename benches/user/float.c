/* Floating point in double: an n-body simulation (the classic 5-body solar system:
 * mul/add/sub, one division and one sqrt per pair per step), a dense matrix multiply, and
 * Newton iterations for square roots checked against sqrt(). Every operation is a single
 * IEEE-754 rounding (the Makefile passes -ffp-contract=off, and only sqrt is taken from
 * libm, which IEEE requires to be correctly rounded), so the bits of the results are the
 * same natively on x86_64 and on riscv64, and the checksum hashes those bits. */
#include <math.h>
#include <string.h>
#include "common.h"

static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

#define PI 3.141592653589793
#define SOLAR_MASS (4 * PI * PI)
#define DAYS_PER_YEAR 365.24

struct body {
    double x, y, z, vx, vy, vz, mass;
};

static void advance(struct body *b, int n, double dt)
{
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
            double d2 = dx * dx + dy * dy + dz * dz;
            double mag = dt / (d2 * sqrt(d2));
            b[i].vx -= dx * b[j].mass * mag;
            b[i].vy -= dy * b[j].mass * mag;
            b[i].vz -= dz * b[j].mass * mag;
            b[j].vx += dx * b[i].mass * mag;
            b[j].vy += dy * b[i].mass * mag;
            b[j].vz += dz * b[i].mass * mag;
        }
    }
    for (int i = 0; i < n; i++) {
        b[i].x += dt * b[i].vx;
        b[i].y += dt * b[i].vy;
        b[i].z += dt * b[i].vz;
    }
}

static double energy(const struct body *b, int n)
{
    double e = 0;
    for (int i = 0; i < n; i++) {
        e += 0.5 * b[i].mass * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for (int j = i + 1; j < n; j++) {
            double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
            e -= b[i].mass * b[j].mass / sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

static uint64_t nbody(int steps)
{
    struct body b[5] = {
        { 0, 0, 0, 0, 0, 0, SOLAR_MASS },
        { 4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
          1.66007664274403694e-03 * DAYS_PER_YEAR, 7.69901118419740425e-03 * DAYS_PER_YEAR,
          -6.90460016972063023e-05 * DAYS_PER_YEAR, 9.54791938424326609e-04 * SOLAR_MASS },
        { 8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
          -2.76742510726862411e-03 * DAYS_PER_YEAR, 4.99852801234917238e-03 * DAYS_PER_YEAR,
          2.30417297573763929e-05 * DAYS_PER_YEAR, 2.85885980666130812e-04 * SOLAR_MASS },
        { 1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
          2.96460137564761618e-03 * DAYS_PER_YEAR, 2.37847173959480950e-03 * DAYS_PER_YEAR,
          -2.96589568540237556e-05 * DAYS_PER_YEAR, 4.36624404335156298e-05 * SOLAR_MASS },
        { 1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
          2.68067772490389322e-03 * DAYS_PER_YEAR, 1.62824170038242295e-03 * DAYS_PER_YEAR,
          -9.51592254519715870e-05 * DAYS_PER_YEAR, 5.15138902046611451e-05 * SOLAR_MASS },
    };
    /* Offset the sun's momentum so the system's total momentum is zero. */
    double px = 0, py = 0, pz = 0;
    for (int i = 0; i < 5; i++) {
        px += b[i].vx * b[i].mass;
        py += b[i].vy * b[i].mass;
        pz += b[i].vz * b[i].mass;
    }
    b[0].vx = -px / SOLAR_MASS;
    b[0].vy = -py / SOLAR_MASS;
    b[0].vz = -pz / SOLAR_MASS;
    uint64_t h = bits(energy(b, 5));
    for (int s = 0; s < steps; s++)
        advance(b, 5, 0.01);
    return mix64(h, bits(energy(b, 5)));
}

static uint64_t matmul(int n, int reps)
{
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n),
           *c = malloc(sizeof(double) * n * n);
    if (!a || !b || !c) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int i = 0; i < n * n; i++) {
        a[i] = (double)(i % 17) / 7.0 - 1.0;
        b[i] = (double)(i % 13) * 0.25 + 0.5;
    }
    uint64_t h = 0;
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++)
                c[i * n + j] = 0;
            for (int k = 0; k < n; k++) {
                double aik = a[i * n + k];
                for (int j = 0; j < n; j++)
                    c[i * n + j] += aik * b[k * n + j];
            }
        }
        for (int i = 0; i < n * n; i += n + 1)
            h = mix64(h, bits(c[i]));
        a[r % (n * n)] += 0.5;
    }
    free(a);
    free(b);
    free(c);
    return h;
}

/* Newton's iteration x' = (x + v/x) / 2 from a crude start, compared with sqrt(v): a
 * division-heavy loop with a data-dependent exit. */
static uint64_t newton(int n)
{
    uint64_t h = 0;
    double worst = 0;
    for (int i = 1; i <= n; i++) {
        double v = (double)i * 1.000001, x = v > 1 ? v / 2 : 1;
        int iters = 0;
        while (fabs(x * x - v) > v * 1e-15 && iters < 64) {
            x = 0.5 * (x + v / x);
            iters++;
        }
        double err = fabs(x - sqrt(v));
        if (err > worst)
            worst = err;
        h += (uint64_t)iters;
    }
    return mix64(h, bits(worst));
}

int main(int argc, char **argv)
{
    unsigned scale = scale_arg(argc, argv, 6);
    uint64_t h = 0;
    h = mix64(h, nbody(250000 * (int)scale));
    h = mix64(h, matmul(160, (int)scale));
    h = mix64(h, newton(100000 * (int)scale));
    print_checksum("float", h);
    return 0;
}

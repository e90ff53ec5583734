/* Floating point through libc: sscanf of doubles, arithmetic, and printf %f %e %g. */
#include <math.h>
#include <stdio.h>

int main(void)
{
    double a, b;
    float c;
    if (sscanf("3.14159265358979 -2.5e-3 1.5", "%lf %lf %f", &a, &b, &c) != 3)
        return 1;
    printf("%f %e %g\n", a, b, (double)c);
    printf("%.10f\n", a * b);
    printf("%g %g %g\n", a / 7.0, sqrt(2.0), 1e300 * 10);
    printf("%.3e %G\n", 6.02214076e23, -0.000012345);
    double s = 0;
    for (int i = 1; i <= 1000; i++)
        s += 1.0 / ((double)i * i);
    printf("%.12f\n", s);
    printf("%d %d\n", (int)-7.9, (int)(c * 3.0f));
    return 0;
}

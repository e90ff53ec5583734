/* Ways to end: argv[1] is a number to exit with, "abort", or "segv" (uncaught NULL write). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int *volatile null_ptr = 0;

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    if (strcmp(argv[1], "abort") == 0)
        abort();
    if (strcmp(argv[1], "segv") == 0) {
        *null_ptr = 1;
        return 1;
    }
    exit(atoi(argv[1]));
}

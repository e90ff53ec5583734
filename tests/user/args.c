/* Echoes argc, argv and one environment variable, so the initial stack can be checked. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    printf("argc=%d\n", argc);
    for (int i = 1; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    const char *v = getenv("TERN_TEST_VAR");
    printf("TERN_TEST_VAR=%s\n", v ? v : "(unset)");
    return 0;
}

/* File I/O in the directory given as argv[1]: create, write, read back, lseek, stat,
 * readdir, rename, unlink. Prints one line per step. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fileio DIR\n");
        return 2;
    }
    if (chdir(argv[1]) != 0) {
        perror("chdir");
        return 1;
    }
    int fd = open("a.txt", O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    const char msg[] = "The quick brown fox jumps over the lazy dog\n";
    printf("write=%zd\n", write(fd, msg, strlen(msg)));
    printf("lseek=%ld\n", (long)lseek(fd, 4, SEEK_SET));
    char buf[64] = {0};
    printf("read=%zd\n", read(fd, buf, 5));
    printf("data=%s\n", buf);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        perror("fstat");
        return 1;
    }
    printf("size=%ld regular=%d\n", (long)st.st_size, S_ISREG(st.st_mode));
    close(fd);

    FILE *f = fopen("b.txt", "w");
    fprintf(f, "%d %s\n", 12345, "second");
    fclose(f);
    if (stat("b.txt", &st) != 0) {
        perror("stat");
        return 1;
    }
    printf("b.size=%ld\n", (long)st.st_size);
    f = fopen("b.txt", "r");
    int n;
    char word[32];
    if (fscanf(f, "%d %31s", &n, word) != 2)
        return 1;
    fclose(f);
    printf("b.content=%d %s\n", n, word);
    mkdir("sub", 0755);
    if (rename("b.txt", "sub/c.txt") != 0) {
        perror("rename");
        return 1;
    }

    DIR *d = opendir(".");
    char *names[16];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && count < 16)
        if (e->d_name[0] != '.')
            names[count++] = strdup(e->d_name);
    closedir(d);
    qsort(names, count, sizeof(names[0]), cmp);
    printf("entries:");
    for (int i = 0; i < count; i++)
        printf(" %s", names[i]);
    printf("\n");

    printf("unlink=%d\n", unlink("a.txt"));
    printf("unlink2=%d\n", unlink("sub/c.txt"));
    printf("rmdir=%d\n", rmdir("sub"));
    printf("gone=%d\n", access("a.txt", F_OK) != 0);
    return 0;
}

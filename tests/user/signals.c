/* Signal handlers: argv[1] selects the case.
 *   segv  - a NULL write caught by a SIGSEGV handler that siglongjmps out
 *   ill   - an illegal instruction caught by a SIGILL handler
 *   usr1  - raise(SIGUSR1) with a handler, which runs before raise returns
 *   sigint - waits (printing "ready") for a SIGINT from outside, caught by a handler */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Through a volatile pointer, so the compiler cannot see the bad address. */
static volatile int *volatile null_ptr = 0;
static volatile int *volatile low_ptr = (volatile int *)8;
static sigjmp_buf env;
static volatile sig_atomic_t got;
static volatile void *fault_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got = sig;
    fault_addr = si->si_addr;
    siglongjmp(env, 1);
}

static void on_signal(int sig)
{
    got = sig;
}

static void install(int sig, int siginfo)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    if (siginfo) {
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO;
    } else {
        sa.sa_handler = on_signal;
    }
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *what = argv[1];
    if (strcmp(what, "segv") == 0) {
        install(SIGSEGV, 1);
        if (sigsetjmp(env, 1) == 0) {
            *null_ptr = 1;
            printf("not reached\n");
            return 1;
        }
        printf("caught signal %d at address %p\n", got, (void *)fault_addr);
        /* The mask was restored by siglongjmp: a second fault is caught too. */
        got = 0;
        if (sigsetjmp(env, 1) == 0)
            *low_ptr = 1;
        printf("caught again %d at address %p\n", got, (void *)fault_addr);
    } else if (strcmp(what, "ill") == 0) {
        install(SIGILL, 1);
        if (sigsetjmp(env, 1) == 0) {
            __asm__ volatile(".word 0");
            printf("not reached\n");
            return 1;
        }
        printf("caught signal %d\n", got);
    } else if (strcmp(what, "usr1") == 0) {
        install(SIGUSR1, 0);
        printf("raise=%d\n", raise(SIGUSR1));
        printf("handler saw %d\n", got);
    } else if (strcmp(what, "sigint") == 0) {
        install(SIGINT, 0);
        printf("ready\n");
        fflush(stdout);
        struct timespec ts = {0, 10 * 1000 * 1000};
        for (int i = 0; i < 3000 && !got; i++)
            nanosleep(&ts, NULL);
        printf("got %d\n", got);
    } else {
        return 2;
    }
    return 0;
}

/* arch_prctl: FS and GS bases set, read back, and used by %fs:/%gs: loads */
#include "sys.h"

#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004

static u64 fs_block[4] = {0x1111, 0x2222, 0x3333, 0};
static u64 gs_block[2] = {0xaaaa, 0xbbbb};

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fs_block[3] = (u64)fs_block; /* like a TCB's self pointer */
    if (sys3(SYS_arch_prctl, ARCH_SET_FS, fs_block, 0) != 0)
        return 1;
    if (sys3(SYS_arch_prctl, ARCH_SET_GS, gs_block, 0) != 0)
        return 2;
    u64 a, b, self, g;
    __asm__ volatile("mov %%fs:8, %0" : "=r"(a));
    __asm__ volatile("mov %%fs:16, %0" : "=r"(b));
    __asm__ volatile("mov %%fs:24, %0" : "=r"(self));
    __asm__ volatile("mov %%gs:8, %0" : "=r"(g));
    u64 got_fs = 0, got_gs = 0;
    sys3(SYS_arch_prctl, ARCH_GET_FS, &got_fs, 0);
    sys3(SYS_arch_prctl, ARCH_GET_GS, &got_gs, 0);
    puts_("fs:8 ");
    putu(a, 16);
    puts_(" fs:16 ");
    putu(b, 16);
    puts_(" gs:8 ");
    putu(g, 16);
    puts_(self == (u64)fs_block ? " self ok" : " self BAD");
    puts_(got_fs == (u64)fs_block ? " get_fs ok" : " get_fs BAD");
    puts_(got_gs == (u64)gs_block ? " get_gs ok" : " get_gs BAD");
    puts_("\n");
    __asm__ volatile("movq $0x4444, %%fs:0" ::: "memory");
    puts_(fs_block[0] == 0x4444 ? "fs store ok\n" : "fs store BAD\n");
    i64 bad = sys3(SYS_arch_prctl, 0x9999, 0, 0);
    puts_("bad code -> -");
    putu((u64)-bad, 10);
    puts_("\n");
    return 0;
}

#!/bin/sh
# /init of tern's Linux test guests (busybox sh, the same file for x86_64 and riscv64).
#
# The host side (tern's integration tests) only sees the serial console, so every check
# prints one fixed marker line that a test can wait for and parse:
#
#   TERN-GUEST-INIT-OK                      first line from userspace: the kernel booted
#   TERN-UPTIME-AT-INIT: <seconds>          guest clock when /init started
#   TERN-KERNEL: <uname -r> <uname -m>
#   TERN-CPU: <model name or ISA> (online: N)
#   TERN-MODULES: N loaded                  modules insmod'ed (0 when there are none)
#   TERN-DISK: vda size=<bytes>             only when /dev/vda exists
#   TERN-DISK-HEAD: <hex of the first 16 bytes of vda>
#   TERN-DISK-WRITTEN                       only for the test disk (see below)
#   TERN-NET: <ifname> <mac>                each interface except lo
#   TERN-MD5: <md5> ok|BAD (guest uptime A -> B)   64 MiB of zeros through md5sum
#   TERN-GUEST-DONE                         then power off
#
# Words read from the kernel command line:
#   tern.shell   print TERN-SHELL and run an interactive shell on the console instead of
#                powering off
#   tern.reboot  reboot -f instead of poweroff -f (for a machine that implements reset
#                but not ACPI power-off)
#   tern.quick   skip the md5 compute check (saves ~1 s of guest time under TCG)
#
# Write check: when the disk head is the test pattern written by make-test-disk.sh
# ("TERN-DISK-TEST-1"), the guest writes "TERN-DISK-WRITE1" at byte offset 4096 of
# /dev/vda, syncs it to the device and prints TERN-DISK-WRITTEN, so a test can look
# at the host file after the guest exits and see that writes reached the backend.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# The initramfs holds only /bin/busybox and /bin/sh; the applet links are made here at
# boot, so the image does not depend on whether the build host can run the binary.
/bin/busybox mount -t proc proc /proc
[ -e /bin/mount ] || /bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

echo "TERN-GUEST-INIT-OK"
echo "TERN-UPTIME-AT-INIT: $(cut -d' ' -f1 /proc/uptime)"
echo "TERN-KERNEL: $(uname -r) $(uname -m)"
# x86 reports "model name", riscv "isa" (and "uarch" on some kernels).
cpu=$(grep -m1 -E '^(model name|uarch|isa)[[:space:]]*:' /proc/cpuinfo | sed 's/^[^:]*:[ ]*//')
echo "TERN-CPU: ${cpu:-unknown} (online: $(grep -c '^processor' /proc/cpuinfo))"
cmdline=" $(cat /proc/cmdline) "
has_word() {
    case "$cmdline" in *" $1 "*) return 0 ;; esac
    return 1
}

# Modules: /lib/modules/load-order lists .ko files (relative to /lib/modules) with every
# module after the modules it depends on, so plain insmod works. A kernel with everything
# built in has no list and reports 0.
n=0
if [ -f /lib/modules/load-order ]; then
    while read -r m; do
        if insmod "/lib/modules/$m" 2>/dev/null; then
            n=$((n + 1))
        fi
    done < /lib/modules/load-order
fi
echo "TERN-MODULES: $n loaded"

# virtio-blk: the sysfs entry may appear a moment before devtmpfs has the node.
i=0
while [ ! -b /dev/vda ] && [ -e /sys/block/vda ] && [ $i -lt 20 ]; do
    sleep 0.1
    i=$((i + 1))
done
if [ -b /dev/vda ]; then
    echo "TERN-DISK: vda size=$(blockdev --getsize64 /dev/vda)"
    head=$(dd if=/dev/vda bs=16 count=1 2>/dev/null | hexdump -v -e '16/1 "%02x"')
    echo "TERN-DISK-HEAD: $head"
    # "TERN-DISK-TEST-1" in hex: only the disposable test disk is ever written to.
    if [ "$head" = 5445524e2d4449534b2d544553542d31 ]; then
        printf 'TERN-DISK-WRITE1' | dd of=/dev/vda bs=16 seek=256 count=1 2>/dev/null
        sync
        blockdev --flushbufs /dev/vda 2>/dev/null
        back=$(dd if=/dev/vda bs=16 skip=256 count=1 2>/dev/null)
        if [ "$back" = TERN-DISK-WRITE1 ]; then
            echo "TERN-DISK-WRITTEN"
        else
            echo "TERN-DISK-WRITE-FAILED"
        fi
    fi
fi

for n in /sys/class/net/*; do
    [ -e "$n" ] && [ "${n##*/}" != lo ] && echo "TERN-NET: ${n##*/} $(cat "$n/address")"
done

# Compute check: the md5 of 64 MiB of zeros is 7f614da9329cd3aebf59b91aadc30bf0; a wrong
# sum means the CPU emulation computed something wrong.
if ! has_word tern.quick; then
    t0=$(cut -d' ' -f1 /proc/uptime)
    sum=$(dd if=/dev/zero bs=1M count=64 2>/dev/null | md5sum | cut -d' ' -f1)
    t1=$(cut -d' ' -f1 /proc/uptime)
    ok=BAD
    [ "$sum" = 7f614da9329cd3aebf59b91aadc30bf0 ] && ok=ok
    echo "TERN-MD5: $sum $ok (guest uptime $t0 -> $t1)"
fi

if has_word tern.shell; then
    echo "TERN-SHELL"
    exec setsid cttyhack sh
fi
echo "TERN-GUEST-DONE"
sync
if has_word tern.reboot; then
    reboot -f
fi
poweroff -f
# Only reached when power-off is not implemented by the machine.
sleep 1
reboot -f

#!/usr/bin/env python3
# One timed boot of a tern test guest, for the boot benchmarks (benches/*-boot-vs-qemu.sh):
#   measure_boot.py TIMEOUT_S CONSOLE_LOG COMMAND...
# spawns COMMAND with stdin from /dev/null, timestamps each console line as it arrives, and
# prints "init_s exit_s md5_s": wall time to the TERN-GUEST-INIT-OK line, wall time to exit,
# and the guest's own md5 time from its "TERN-MD5: <sum> ok (guest uptime A -> B)" line. The
# guest must reach its init, compute the right md5 and power off (exit status 0) within the
# time limit; otherwise it prints the reason on stderr, leaves it in CONSOLE_LOG.problem, and
# exits 1 (the console is in CONSOLE_LOG, tern's stderr in CONSOLE_LOG.stderr).
import re, subprocess, sys, threading, time
timeout, log_path, cmd = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
md5_re = re.compile(r"TERN-MD5: (\S+) (\S+) \(guest uptime ([0-9.]+) -> ([0-9.]+)\)")
init = md5 = None
md5_ok = False
with open(log_path, "wb") as log, open(log_path + ".stderr", "wb") as err:
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    killer = threading.Timer(timeout, p.kill)
    killer.start()
    for raw in p.stdout:
        t = time.monotonic() - t0
        log.write(raw)
        line = raw.decode("utf-8", "replace")
        if init is None and "TERN-GUEST-INIT-OK" in line:
            init = t
        m = md5_re.search(line)
        if m and md5 is None:
            md5 = float(m.group(4)) - float(m.group(3))
            md5_ok = m.group(2) == "ok"
    status = p.wait()
    t_exit = time.monotonic() - t0
    killer.cancel()
problem = None
if t_exit >= timeout:
    problem = "killed after %.0f s" % timeout
elif status != 0:
    problem = "exit status %d" % status
elif init is None:
    problem = "no TERN-GUEST-INIT-OK line"
elif md5 is None or not md5_ok:
    problem = "no 'TERN-MD5: ... ok' line"
if problem:
    with open(log_path + ".problem", "w") as f:
        f.write(problem + "\n")
    print("FAIL: %s: %s (console: %s)" % (" ".join(cmd), problem, log_path), file=sys.stderr)
    sys.exit(1)
print("%.6f %.6f %.6f" % (init, t_exit, md5))

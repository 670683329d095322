#!/usr/bin/env python3
"""Share of the machine each process, and each of the service's thread groups, used while a
command ran.

    bench/cpu-share.py [--service PID] -- COMMAND [ARG ...]

Reads the CPU time (user + system) of every thread in /proc before and after COMMAND, and
prints, largest first, each process name's share of the machine (cores x wall time) while it
ran: the PostgreSQL server's processes sum under "postgres", COMMAND's own under its name
(COMMAND's output goes to standard error, the shares to standard output). With --service,
the service's own threads are listed apart by group (argon2-* hashing threads,
tokio-rt-worker request threads, the rest by name). The machine's steal time (CPU the
hypervisor gave to others), idle time and time in interrupts are printed too; none of them is in
any process's share. Threads that start
and end while COMMAND runs are missed; the ones that matter here live through it.
"""

import os
import re
import resource
import subprocess
import sys
import time
from collections import defaultdict

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def thread_group(name):
    if name.startswith("argon2-"):
        return "argon2-* (hashing)"
    return re.sub(r"[-_]?\d+$", "", name) or name


def tasks():
    """(pid, tid) -> (process name, thread name, ticks) for every thread alive now."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                process = f.read().strip()
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
                # The name is in parentheses and may hold spaces; the fields after it are fixed.
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                found[(int(pid), int(tid))] = (process, name, int(fields[11]) + int(fields[12]))
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return found


def machine_ticks():
    """The machine's busy (user + nice + system), idle (idle + iowait), interrupt (irq +
    softirq) and steal ticks so far, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields[0:3]), fields[3] + fields[4], fields[5] + fields[6], fields[7]


def main():
    args = sys.argv[1:]
    service = None
    if len(args) >= 2 and args[0] == "--service":
        service, args = int(args[1]), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    before, machine_before, started = tasks(), machine_ticks(), time.monotonic()
    code = subprocess.run(args, stdout=sys.stderr).returncode
    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    after, machine_after, seconds = tasks(), machine_ticks(), time.monotonic() - started
    machine = TICK * CORES * seconds
    processes, threads = defaultdict(int), defaultdict(int)
    for key, (process, name, ticks) in after.items():
        used = ticks - before.get(key, (process, name, 0))[2]
        if key[0] == service:
            threads[thread_group(name)] += used
        else:
            processes[process] += used
    share = lambda ticks: f"{100 * ticks / machine:.1f} %"
    busy, idle, interrupts, steal = (b - a for a, b in zip(machine_before, machine_after))
    print(f"{seconds:.1f} s on {CORES} cores; busy {share(busy)}, idle {share(idle)}, "
          f"interrupts {share(interrupts)}, steal {share(steal)}")
    if service is not None:
        print(f"service (pid {service}): {share(sum(threads.values()))}")
        for name, used in sorted(threads.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<28} {share(used):>7}")
    # COMMAND has ended before the second reading; its own time comes from the kernel's account.
    processes[f"{os.path.basename(args[0])} (COMMAND)"] += round((own.ru_utime + own.ru_stime) * TICK)
    # Busy time no thread alive at both readings accounts for: processes that started and ended
    # meanwhile (the machine's own monitoring, say). A thread's time includes the interrupts
    # the kernel handled while it ran, which /proc/stat counts apart from busy time.
    listed = sum(threads.values()) + sum(processes.values())
    print(f"{'(not in any thread listed)':<30} {share(busy + interrupts - listed):>7}")
    for name, used in sorted(processes.items(), key=lambda kv: -kv[1]):
        if used:
            print(f"{name:<30} {share(used):>7}")
    sys.exit(code)


if __name__ == "__main__":
    main()

"""check_affinity.py — while a raana-mpi job runs (paused by
RAANA_FAULT_INJECT), every thread of every rank runs only on the CPUs
Slurm gave that rank: reads the "binding: rank R on HOST (pid P): cpus
LIST" lines of the log's last header and, for each pid, the
Cpus_allowed_list of every thread in /proc/P/task/*/status.

Usage: /usr/bin/python3 check_affinity.py LOG RANKS CPUS_PER_TASK MIN_THREADS
Checks: RANKS binding lines; each rank's list has CPUS_PER_TASK CPUs; the
lists of the ranks are disjoint; every thread (at least MIN_THREADS per
rank: the main thread and the OpenMP/OpenBLAS workers) has exactly that
list. Exit 1 with one line per problem."""
import glob
import re
import sys


def expand(cpus):
    out = set()
    for part in cpus.strip().split(","):
        if "-" in part:
            a, b = part.split("-")
            out.update(range(int(a), int(b) + 1))
        elif part:
            out.add(int(part))
    return out


def main():
    log, ranks, per_task, min_threads = sys.argv[1], *map(int, sys.argv[2:5])
    text = open(log, errors="replace").read()
    header = text[text.rfind("==== raana-mpi"):]
    found = re.findall(r"^binding: rank (\d+) on \S+ \(pid (\d+)\): cpus (\S+),", header, re.M)
    problems = []
    if len(found) != ranks:
        problems.append(f"{len(found)} binding lines, expected {ranks}")
    seen = set()
    for rank, pid, cpus in found:
        want = expand(cpus)
        if len(want) != per_task:
            problems.append(f"rank {rank}: cpus {cpus} are not {per_task} CPUs")
        if want & seen:
            problems.append(f"rank {rank}: cpus {cpus} overlap another rank's")
        seen |= want
        threads = glob.glob(f"/proc/{pid}/task/*/status")
        if len(threads) < min_threads:
            problems.append(f"rank {rank} (pid {pid}): {len(threads)} threads, expected "
                            f">= {min_threads}")
        for status in threads:
            try:
                line = [l for l in open(status) if l.startswith("Cpus_allowed_list:")][0]
            except (OSError, IndexError):
                continue  # the thread ended meanwhile
            have = expand(line.split(":", 1)[1])
            if have != want:
                problems.append(f"rank {rank} thread {status.split('/')[4]}: runs on "
                                f"{line.split(':', 1)[1].strip()}, not {cpus}")
    for p in problems:
        print("check_affinity.py:", p)
    if not problems:
        print(f"check_affinity.py: {len(found)} ranks, each thread on its rank's "
              f"{per_task} CPU(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

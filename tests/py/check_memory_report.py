"""check_memory_report.py — every run reports each rank's measured peak
memory (VmHWM, src/pipeline/memory_report.c) in the job log.

- P = 1, raana-mpi started directly: the reported peak equals the kernel's
  own maximum resident set of the process, read independently here with
  getrusage(RUSAGE_CHILDREN).ru_maxrss (the largest of the waited-for
  children: raana-mpi, whose weights make it larger than Open MPI's helper),
  within 5% (under ASan only bounded by it: its leak check at exit allocates);
- P = 1..3 under mpiexec: one line per rank; every rank's peak is at least
  its f32 weights (4 bytes x its parameters from --dry-run's rank table);
  the summary's total is the sum of the rank lines and names the largest
  rank; the estimate quoted per rank is the plan's.
Usage: check_memory_report.py RAANA_MPI SOURCE_DIR MPIEXEC [PART]
PART: "few" (the direct run, P = 1 and 2, and the 1 and 8 windows in flight
comparison at P = 1 and 2), "many" (P = 3), or both (the default). ctest
runs them as two entries: only "many" starts 3 ranks and must run alone
(RUN_SERIAL); "few", most of the runs, shares the machine with another test
(tests/CMakeLists.txt).
"""
import os
import re
import resource
import subprocess
import sys
import tempfile

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, file=sys.stderr)


def job(tmp, src, text="calib.txt", n_samples=1, seq_len=64, name="job.ini"):
    path = os.path.join(tmp, name)
    fixture = os.path.join(src, "tests", "data", "kjv-tiny")
    with open(path, "w") as f:
        f.write(f"[model]\npath = {fixture}\n[calibration]\nsource = text\n"
                f"text_file = {fixture}/{text}\nn_samples = {n_samples}\nseq_len = {seq_len}\n"
                f"[output]\npath = {tmp}/out.h5\n")
    return path


RANK = re.compile(r"^(?:\S+Z )?memory: rank (\d+) peak ([0-9.]+) MiB \(estimate ([0-9.]+) MiB, "
                  r"x([0-9.]+)\); at the end anon ([0-9.]+) MiB, file-backed ([0-9.]+) MiB$")
SUMMARY = re.compile(r"^(?:\S+Z )?memory: measured peak \(VmHWM\) ([0-9.]+) MiB on rank (\d+), "
                     r"([0-9.]+) MiB in all; its estimate ([0-9.]+) MiB")


def parse(stderr):
    ranks = {int(m[1]): [float(x) for x in m.groups()[1:]]
             for m in (RANK.match(ln) for ln in stderr.splitlines()) if m}
    summ = [SUMMARY.match(ln) for ln in stderr.splitlines()]
    summ = [m for m in summ if m]
    return ranks, summ[0] if len(summ) == 1 else None


def dry_run_ranks(cmd):
    """rank -> (params, estimated peak MiB) from the --dry-run table."""
    r = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True)
    rows = {}
    for ln in r.stdout.splitlines()[r.stdout.splitlines().index(
            next(l for l in r.stdout.splitlines() if l.startswith("ranks:"))):]:
        f = ln.split()
        if len(f) >= 6 and f[0].isdigit():
            size = float(f[4]) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[f[5]]
            rows[int(f[0])] = (int(f[2]), size)
    return rows


def check_windows_in_flight(tmp, src, bin_, mpiexec):
    """Measured peaks with 1 and with 8 windows in flight (a comparison)."""
    ini = job(tmp, src, text="heldout.txt", n_samples=8, seq_len=256, name="rounds.ini")
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:  # freed traces must not wait in ASan's quarantine
        env["ASAN_OPTIONS"] += ":quarantine_size_mb=0"
    for p in (1, 2):
        peaks = {}
        for m in (1, 8):
            r = subprocess.run([mpiexec, "-n", str(p), bin_, "--calibrate-only", ini, "--set",
                                f"calibration.windows_in_flight={m}"],
                               capture_output=True, text=True, env=env)
            check(r.returncode == 0, f"P={p} M={m}: exit {r.returncode}: {r.stderr}")
            check(f"8 windows of 256 tokens, {m} in flight" in r.stderr,
                  f"P={p} M={m}: the log does not say {m} in flight")
            peaks[m] = parse(r.stderr)[0]
        check(sorted(peaks[1]) == list(range(p)) and sorted(peaks[8]) == list(range(p)),
              f"P={p}: rank lines {peaks}")
        for rk in peaks[1]:
            (hwm1, est1, *_), (hwm8, est8, *_) = peaks[1][rk], peaks.get(8, {}).get(rk, [0, 0])
            check(hwm1 + 0.5 * (est8 - est1) < hwm8,
                  f"P={p} rank {rk}: peak {hwm1} MiB with M=1, {hwm8} MiB with M=8; the "
                  f"estimates {est1} and {est8} MiB")


def main():
    bin_, src, mpiexec = sys.argv[1:4]
    part = sys.argv[4] if len(sys.argv) > 4 else "all"
    if part not in ("few", "many", "all"):
        sys.exit(f"check_memory_report.py: PART is few, many or all, not {part}")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl="self,vader", OMPI_MCA_rmaps_base_oversubscribe="1",
               OPENBLAS_NUM_THREADS="1")
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as tmp:
        if part != "many":  # the direct run first: its getrusage peak is over earlier children
            check_ranks(tmp, src, bin_, mpiexec, (1, 2), direct=True)
            check_windows_in_flight(tmp, src, bin_, mpiexec)
        if part != "few":
            check_ranks(tmp, src, bin_, mpiexec, (3,), direct=False)
    print(f"check_memory_report.py {part}: {'OK' if failures == 0 else f'{failures} failed'}")
    sys.exit(1 if failures else 0)


def check_ranks(tmp, src, bin_, mpiexec, counts, direct):
    """The direct run against getrusage (this process's first child), and
    each P of counts under mpiexec."""
    ini = job(tmp, src)
    if direct:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        r = subprocess.run([bin_, "--calibrate-only", ini], capture_output=True, text=True)
        kernel_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        check(r.returncode == 0, f"P=1 direct: exit {r.returncode}: {r.stderr}")
        ranks, summ = parse(r.stderr)
        check(list(ranks) == [0] and summ is not None, f"P=1 direct: lines: {r.stderr}")
        if ranks and kernel_kib > before:
            # the report is taken before MPI_Finalize: the lifetime peak can only be
            # larger, and (without a sanitizer, whose leak check at exit allocates)
            # barely so
            hwm, life = ranks[0][0], kernel_kib / 1024
            check(hwm <= life * 1.02 + 1, f"P=1: reported peak {hwm} MiB > lifetime {life:.1f} MiB")
            check("ASAN_OPTIONS" in os.environ or hwm >= 0.95 * life - 2,
                  f"P=1: reported peak {hwm} MiB, getrusage says {life:.1f} MiB")
    for p in counts:
        cmd = [mpiexec, "-n", str(p), bin_, ini]
        r = subprocess.run(cmd[:3] + [bin_, "--calibrate-only", ini], capture_output=True,
                           text=True)
        check(r.returncode == 0, f"P={p}: exit {r.returncode}: {r.stderr}")
        ranks, summ = parse(r.stderr)
        check(sorted(ranks) == list(range(p)), f"P={p}: rank lines {sorted(ranks)}")
        check(summ is not None, f"P={p}: no summary line: {r.stderr}")
        plan = dry_run_ranks(cmd[:3] + [bin_, ini])
        check(sorted(plan) == list(range(p)), f"P={p}: dry-run rows {plan}")
        for rk, (hwm, est, ratio, anon, filed) in ranks.items():
            params, est_plan = plan.get(rk, (0, 0))
            check(hwm * 1048576 >= 4 * params,
                  f"P={p} rank {rk}: peak {hwm} MiB below its f32 weights {4 * params} B")
            check(abs(est - est_plan) <= 0.05 + 0.001 * est_plan,
                  f"P={p} rank {rk}: estimate {est} MiB, dry run says {est_plan} MiB")
            check(abs(ratio - hwm / est) <= 0.01 + 0.02 * ratio, f"P={p} rank {rk}: ratio {ratio}")
            check(anon > 0 and filed > 0 and anon + filed <= hwm + 1,
                  f"P={p} rank {rk}: now anon {anon} + file {filed} > peak {hwm}")
        if summ and ranks:
            # the lines print 0.1 MiB: two ranks may tie there, and the summary
            # may then name either of them (it compares the exact byte counts)
            largest = max(v[0] for v in ranks.values())
            named = ranks.get(int(summ[2]), [-1])[0]
            check(abs(float(summ[1]) - largest) < 0.05 and abs(named - largest) < 0.05,
                  f"P={p}: summary names rank {summ[2]} ({named} MiB), largest is {largest} MiB")
            check(abs(float(summ[3]) - sum(v[0] for v in ranks.values())) <= 0.05 * p + 0.01,
                  f"P={p}: total {summ[3]} != sum of ranks")


main()

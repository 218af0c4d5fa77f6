#!/usr/bin/env python3
"""test_memory_fit.py — when a job does not fit the memory limit, the dry run
and the job name the rank, what does not fit and how many ranks would (issue
11), against the closed form of the estimate (docs/SCALING.md, "Memory of one
rank") computed here from kjv-tiny's config.json:

    need = 4 params + max(calibration activations, quantize working set)

(the estimated peak less the 28 MiB process; memory_estimate.c's terms), for
the split of blocks nearest r/P of the parameters (plan.c).
- P = 1..4 (1 and 3 under RAANA_TEST_QUICK=1), no limit: the dry run's rank table is this closed form (to its
  printed 0.1 MiB; once with the calibration activations the larger working
  set, once the quantize stage's, which from P = 2 on counts the buffer for a
  layer received from another rank) and it says no limit was found.
- A fake memory cgroup (RAANA_CGROUP_ROOT) whose room, less one 128 MiB OpenBLAS
  buffer, lies between the closed form's largest need at 3 and at 2 ranks
  (8 windows in flight): the dry run at P = 1 and 2 names exactly the ranks
  whose need exceeds the room, with their need, and says 3 ranks are needed
  and the largest need then; at P = 3 it says every rank fits. The job at P = 1
  fails with exit 6, one error line naming rank 0, the cgroup and the 3 ranks,
  and leaves no output; at P = 3 (--calibrate-only) it runs.
- windows_in_flight = auto is judged at 1 window, the least it is lowered to.
- Room for no rank count: the dry run says so, with the smallest largest need.
Usage: test_memory_fit.py RAANA_MPI SOURCE_DIR MPIEXEC [PART]
PART: "few" (the runs on 1 and 2 ranks), "many" (those on 3 and 4), or both
(the default). ctest runs them as two entries: only "many" must run alone
(RUN_SERIAL); "few", most of the runs, shares the machine with another test
(tests/CMakeLists.txt)."""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

MIB = 1024 * 1024
BASE = 28 * MIB
BLAS_BUFFER = 128 * MIB + 4096
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", file=sys.stderr)


def model(src):
    with open(f"{src}/tests/data/kjv-tiny/config.json") as f:
        c = json.load(f)
    h, inter, heads = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]
    kv, hd = c["num_key_value_heads"], c.get("head_dim", h // heads)
    # (d_in, d_out) of q, k, v, o, gate, up, down
    linears = [(h, heads * hd), (h, kv * hd), (h, kv * hd), (heads * hd, h), (h, inter),
               (h, inter), (inter, h)]
    block = 2 * h + sum(a * b for a, b in linears)
    return dict(h=h, inter=inter, heads=heads, vocab=c["vocab_size"], L=c["num_hidden_layers"],
                tied=c.get("tie_word_embeddings", False), linears=linears, block=block)


def split_point(m, P, r):
    """First block of rank r: the boundary nearest r/P of the parameters, ties lower."""
    best, best_gap, cum, total = 0, None, 0, m["L"] * m["block"]
    for b in range(m["L"] + 1):
        gap = abs(P * cum - r * total)
        if best_gap is None or gap < best_gap:
            best, best_gap = b, gap
        cum += m["block"]
    return best


def quantized_layer_bytes(d_in, d_out, avg_bits, rate):
    # codes, a rescale per column, centralize's mean, norm_col's held-out columns
    return (math.ceil(d_in * d_out * avg_bits / 8) + 4 * d_out + 4 * d_in
            + math.floor(rate * d_out) * (4 * d_in + 4))


def needs(m, P, T, M, avg_bits=3, rate=0.003):
    """The closed form's need of every rank at P ranks, T tokens, M windows in flight."""
    h, inter, V = m["h"], m["inter"], m["vocab"]
    out = []
    for r in range(P):
        nb = split_point(m, P, r + 1) - split_point(m, P, r)
        params = nb * m["block"] + (V * h if r == 0 else 0)
        if r == P - 1:
            params += h + (0 if m["tied"] else V * h)
        acts = (M * nb * T * (8 * h + 3 * inter + 2 + m["heads"]) + 4 * T * h + 2 * T * inter
                + 2 * 128 * 128 + T)
        if r == P - 1:  # logits (their gradient in place) and the head gradients
            acts += T * V + M * T * h
        # the receive buffer for another rank's largest layer (when other ranks
        # hold blocks), the working copy of the largest layer it may encode, and
        # its blocks' quantized layers
        largest = 4 * max(a * b for a, b in m["linears"])
        foreign = largest if nb < m["L"] else 0
        own = largest if nb else 0
        quant = foreign + max(own, foreign) + nb * sum(
            quantized_layer_bytes(a, b, avg_bits, rate) for a, b in m["linears"])
        out.append(4 * params + max(4 * acts, quant))
    return out


def fake_cgroup(root, limit):
    """A hierarchy mirroring /proc/self/cgroup whose every memory limit is limit."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, rel = line.rstrip("\n").split(":", 2)
            rel = "" if rel == "/" else rel
            if controllers == "":
                files = (f"{root}{rel}", "memory.max", "memory.current")
            elif "memory" in controllers.split(","):
                files = (f"{root}/memory{rel}", "memory.limit_in_bytes", "memory.usage_in_bytes")
            else:
                continue
            os.makedirs(files[0], exist_ok=True)
            with open(f"{files[0]}/{files[1]}", "w") as g:
                g.write(f"{limit}\n")
            with open(f"{files[0]}/{files[2]}", "w") as g:
                g.write("0\n")


def mib(b):
    return f"{b / MIB:.1f} MiB"


def main():
    bin_, src, mpiexec = sys.argv[1:4]
    part = sys.argv[4] if len(sys.argv) > 4 else "all"
    if part not in ("few", "many", "all"):
        sys.exit(f"test_memory_fit.py: PART is few, many or all, not {part}")

    def mine(P):
        """whether this part runs the checks at P ranks"""
        return part == "all" or (part == "few") == (P <= 2)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl="self,vader", OMPI_MCA_rmaps_base_oversubscribe="1",
               OPENBLAS_NUM_THREADS="1")
    m = model(src)
    job = f"{src}/jobs/kjv-tiny.ini"
    T, M = 256, 8
    sets = ["--set", "calibration.n_samples=8", "--set", f"calibration.seq_len={T}",
            "--set", "quantize.tricks=centralize, norm_col", "--set", "quantize.norm_col_rate=0.003"]
    fixed = sets + ["--set", f"calibration.windows_in_flight={M}"]

    def raana(P, *args, cgroup=None):
        e = dict(env)
        cmd = [mpiexec, "-n", str(P)]
        if cgroup:
            cmd += ["-x", f"RAANA_CGROUP_ROOT={cgroup}"]
        return subprocess.run(cmd + [bin_] + list(args), capture_output=True, text=True, env=e)

    # no limit: the rank table is the closed form, with the calibration
    # activations larger (8 windows of 256 tokens) and with the quantize
    # working set larger (1 window of 16 tokens: from P = 2 on, the receive
    # buffer for another rank's layer counts)
    short = ["--set", "calibration.n_samples=1", "--set", "calibration.seq_len=16",
             "--set", "quantize.tricks=centralize, norm_col", "--set", "quantize.norm_col_rate=0.003"]
    # (the sanitizer build, RAANA_TEST_QUICK=1: P = 1 and 3 only)
    quick = os.environ.get("RAANA_TEST_QUICK") == "1"
    for P in [P for P in ((1, 3) if quick else (1, 2, 3, 4)) if mine(P)]:
        for args, t, w in ((fixed, T, M), (short, 16, 1)):
            r = raana(P, "--dry-run", job, *args)
            check(r.returncode == 0, f"P={P} T={t} dry run rc {r.returncode}: {r.stderr}")
            rows = re.findall(r"^\s+(\d+)\s+\S+\s+\d+\s+\d+\s+([0-9.]+) MiB", r.stdout, re.M)
            want = [f"{(n + BASE) / MIB:.1f}" for n in needs(m, P, t, w)]
            check([p for _, p in rows] == want, f"P={P} T={t}: est. peaks {rows}, closed form {want}")
            check("memory limits: none found (ulimit -v, ulimit -d, memory cgroup)" in r.stdout,
                  f"P={P}: no limit line:\n{r.stdout}")

    largest = {P: max(needs(m, P, T, M)) for P in range(1, 11)}
    check(largest[3] < largest[2] and largest[2] < largest[1], f"closed form not decreasing: {largest}")
    room = (largest[3] + largest[2]) // 2  # 3 ranks fit, 2 do not
    with tempfile.TemporaryDirectory() as tmp:
        cg = f"{tmp}/cgroup"
        fake_cgroup(cg, room + BLAS_BUFFER)
        for P in [P for P in (1, 2) if mine(P)]:
            r = raana(P, "--dry-run", job, *fixed, cgroup=cg)
            check(r.returncode == 0, f"P={P} in the cgroup: dry run rc {r.returncode}: {r.stderr}")
            over = [i for i, n in enumerate(needs(m, P, T, M)) if n > room]
            named = [int(x) for x in re.findall(r"^memory: does not fit: rank (\d+) ", r.stdout, re.M)]
            check(named == over, f"P={P}: ranks named {named}, over the room {over}:\n{r.stdout}")
            for i in over:
                line = (f"rank {i} ", f"needs {mib(needs(m, P, T, M)[i])} beyond the process",
                        f"{M} windows in flight", f"the memory cgroup ({cg}", f"leaves rank {i} {mib(room)}")
                text = next((l for l in r.stdout.splitlines() if l.startswith(f"memory: does not fit: rank {i} ")), "")
                check(all(s in text for s in line), f"P={P} rank {i}: expected {line} in '{text}'")
            want = f"the job needs at least 3 ranks: then the largest need is {mib(largest[3])}"
            check(want in r.stdout, f"P={P}: expected '{want}' in\n{r.stdout}")
        if mine(3):
            r = raana(3, "--dry-run", job, *fixed, cgroup=cg)
            check(f"memory limits: every rank fits; the largest need is {mib(largest[3])}" in r.stdout,
                  f"P=3 in the cgroup: expected every rank to fit:\n{r.stdout}")
            check("does not fit" not in r.stdout, "P=3 in the cgroup: a rank said not to fit")

        # the job: fails at once on 1 rank, saying so; runs on 3
        out = f"{tmp}/out.h5"
        if mine(1):
            r = raana(1, job, *fixed, "--set", f"output.path={out}", cgroup=cg)
            check(r.returncode == 6, f"job P=1 in the cgroup: rc {r.returncode}, expected 6: {r.stderr}")
            errs = [l for l in r.stderr.splitlines() if l.startswith("raana-mpi: error:")]
            check(len(errs) == 1, f"job P=1: {len(errs)} error lines: {r.stderr}")
            for s in ("rank 0 on ", "out of memory before starting", f"memory cgroup ({cg}",
                      f"rank 0 (blocks 0-3, embedding, lm_head) needs {mib(largest[1])} beyond the process",
                      "the job needs at least 3 ranks"):
                check(s in (errs or [""])[0], f"job P=1: error lacks '{s}': {errs}")
            check(not os.path.exists(out), "job P=1: output left behind")
        if mine(3):
            r = raana(3, "--calibrate-only", job, *fixed, "--set", f"output.path={out}", cgroup=cg)
            check(r.returncode == 0, f"job P=3 in the cgroup: rc {r.returncode}: {r.stderr}")
        if not mine(1):  # the rest runs on 1 rank
            print(f"test_memory_fit.py {part}: {'ok' if failures == 0 else f'{failures} failed'}")
            sys.exit(1 if failures else 0)

        # auto: judged at one window in flight, the least auto lowers M to
        auto = sets + ["--set", "calibration.windows_in_flight=auto"]
        low = {P: max(needs(m, P, T, 1)) for P in range(1, 11)}
        check(low[2] < low[1], f"closed form at M = 1 not decreasing: {low}")
        fake_cgroup(cg, (low[1] + low[2]) // 2 + BLAS_BUFFER)
        r = raana(1, "--dry-run", job, *auto, cgroup=cg)
        for s in (f"rank 0 (blocks 0-3, embedding, lm_head) needs {mib(low[1])}",
                  "(1 window in flight, auto at its least)",
                  f"the job needs at least 2 ranks: then the largest need is {mib(low[2])}"):
            check(s in r.stdout, f"auto P=1: expected '{s}' in\n{r.stdout}")

        # no rank count fits: the smallest largest need over every count tried
        fake_cgroup(cg, 1 * MIB + BLAS_BUFFER)
        r = raana(1, "--dry-run", job, *fixed, cgroup=cg)
        n_max = 2 * m["L"] + 2
        least = min(max(needs(m, P, T, M)) for P in range(1, n_max + 1))
        want = f"no number of ranks fits: at best (any count up to {n_max} ranks) the largest need is {mib(least)}"
        check(want in r.stdout, f"1 MiB of room: expected '{want}' in\n{r.stdout}")

    passed = "ok" if failures == 0 else f"{failures} failed"
    print(f"test_memory_fit.py {part}: {passed}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

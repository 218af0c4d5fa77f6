# lib.sh — assertions for the shell-level tests: run a command, check its
# exit code and that stderr/stdout contain given text. Each test file ends
# with `finish`, which prints "N passed, N failed" and sets the exit code.
passed=0
failed=0

# run CMD...: runs it, keeping status in $rc, stdout in $out, stderr in $errout
run() {
  local o e
  o=$(mktemp) e=$(mktemp)
  "$@" >"$o" 2>"$e"
  rc=$?
  out=$(cat "$o")
  errout=$(cat "$e")
  rm -f "$o" "$e"
}

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

expect_rc() { # expect_rc CODE what
  if [ "$rc" -eq "$1" ]; then ok; else bad "$2: exit $rc, expected $1; stderr: $errout"; fi
}
expect_err() { # expect_err TEXT what
  if grep -qF -- "$1" <<<"$errout"; then ok; else bad "$2: stderr lacks '$1': $errout"; fi
}
expect_out() { # expect_out TEXT what
  if grep -qF -- "$1" <<<"$out"; then ok; else bad "$2: stdout lacks '$1'"; fi
}
# exactly one line on stderr from raana (mpirun may add its own lines after)
expect_one_error_line() {
  local n
  n=$(grep -c '^raana-mpi: error:' <<<"$errout")
  if [ "$n" -eq 1 ]; then ok; else bad "$1: $n error lines: $errout"; fi
}

finish() {
  echo "$(basename "$0"): $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

# mpi_test_env: Open MPI as root, shared memory only, more ranks than
# cores, one OpenBLAS thread per rank (every MPI test script's settings)
mpi_test_env() {
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
  export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
}

# fake_cgroup DIR LIMIT [USED]: a memory cgroup hierarchy under DIR mirroring
# /proc/self/cgroup (v2 memory.max/current, v1 memory.limit_in_bytes/
# usage_in_bytes) with LIMIT bytes and USED (default 0) in use; the tools
# read it instead of /sys/fs/cgroup when RAANA_CGROUP_ROOT=DIR
fake_cgroup() {
  local used=${3:-0} _ controllers rel
  while IFS=: read -r _ controllers rel; do
    if [ -z "$controllers" ]; then
      mkdir -p "$1$rel" && echo "$2" >"$1$rel/memory.max" && echo "$used" >"$1$rel/memory.current"
    elif [[ ",$controllers," == *,memory,* ]]; then
      mkdir -p "$1/memory$rel" && echo "$2" >"$1/memory$rel/memory.limit_in_bytes" &&
        echo "$used" >"$1/memory$rel/memory.usage_in_bytes"
    fi
  done </proc/self/cgroup
}

# moe_window_job FILE FIXTURE_DIR AVG_BITS OUTPUT [CANDIDATE_BITS]: the MoE
# tests' job: calibration on the fixture's 96-token window, seed 1234
moe_window_job() {
  cat >"$1" <<INI
[model]
path = $2
[calibration]
source = text
text_file = $2/window.txt
n_samples = 1
seq_len = 96
[quantize]
avg_bits = $3
bits = ${5:-1, 2, 3, 4, 5, 6, 8}
seed = 1234
[output]
path = $4
overwrite = true
INI
}

# ---- rank counts (as PETSc declares nsize) ----------------------------------------
# A script that runs the same checks for several rank counts P takes them
# from the environment, so that ctest declares one entry per (test, P)
# (tests/CMakeLists.txt, raana_ranks_test):
#   RAANA_TEST_RANKS   the P to run, e.g. "3" (default "1 2 3 4": all, by hand)
#   RAANA_TEST_COMMON  1: also the checks that do not depend on P (default 1)
#   RAANA_TEST_REF     where P = 1 leaves the outputs the other P compare
#                      against (default: a directory under the script's tmp)
# P = 1 always writes the reference; ctest runs that entry first (a fixture).
# A script whose common checks are split (raana_ranks_test SPLIT_COMMON) also
# takes RAANA_TEST_COMMON=few (the checks that start at most 2 ranks) or
# many (the others) and asks common_part.
test_ranks=${RAANA_TEST_RANKS-1 2 3 4}
test_common=${RAANA_TEST_COMMON:-1}
# common_part few|many: this run does that part of the common checks
common_part() { [ "$test_common" = 1 ] || [ "$test_common" = "$1" ]; }
# ref_dir TMP: the reference directory (created)
ref_dir() {
  local d=${RAANA_TEST_REF:-$1/ref}
  mkdir -p "$d" && echo "$d"
}
# has_ref FILE what: the reference exists (else one failure that says why)
has_ref() {
  if [ -e "$1" ]; then ok; else bad "$2: no reference $1 (run the P=1 entry first)"; return 1; fi
}

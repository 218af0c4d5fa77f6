#!/usr/bin/env bash
# test_expert_teams.sh — expert parallelism (docs/MOE.md, "Expert
# parallelism"; issue 13) on both MoE fixtures (2 sparse blocks; mixtral 4
# experts, qwen3-moe 8), per rank count P (ranks owning no block: P - 2
# for P >= 2):
#   - [calibration] expert_ranks = N with N - 1 spare ranks (P = 3: N = 2;
#     P = 4: N = 3): the log names the team, the 3-bit container equals P = 1's
#     (auto, no team) outside /provenance and config.ini
#     (tests/py/compare_containers.py), and the --calibrate-only statistics
#     JSON is byte-identical to P = 1's;
#   - a forced team without N - 1 spare ranks (N = P, N = 2 at P = 1): the
#     job and the dry run exit 3 with one error line naming the block, its
#     expert bytes (closed form 4 x E x 3 x hidden x width) and "run with at
#     least P + N - 1 - spare ranks"; N > experts: exit 3 (P = 1); never an
#     output file, never a hang;
#   - auto under a fake memory cgroup (as test_windows_in_flight.sh) whose room
#     is 0.2 MiB below the largest need without a team: P <= 2 (no spare
#     rank) exit 6 naming the block and "run with at least P + 1 ranks";
#     P >= 3 exit 8 (a team would only compute the experts: their owner still
#     holds the weights).
# Under RAANA_TEST_QUICK (the sanitizer build) only the mixtral fixture, and
# no dry runs of forced teams.
# Usage: test_expert_teams.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC
set -u
mpi_bin=$1 plugin_dir=$2 src=$(cd "$3" && pwd) mpiexec=$4
. "$src/tests/cli/lib.sh"
mpi_test_env
export HDF5_PLUGIN_PATH=$plugin_dir
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref=$(ref_dir "$tmp")

write_job() { # fixture_dir
  cat >"$tmp/job.ini" <<INI
[model]
path = $1
[calibration]
source = text
text_file = $1/window.txt
n_samples = 1
seq_len = 96
[quantize]
avg_bits = 3
bits = 1, 2, 3, 4, 5, 6, 8
seed = 1234
[output]
path = $tmp/out.h5
overwrite = true
INI
}

# a fake cgroup hierarchy mirroring /proc/self/cgroup with `room` bytes free
fake_cgroup() { # dir room
  while IFS=: read -r _ controllers rel; do
    if [ -z "$controllers" ]; then
      mkdir -p "$1$rel" && echo "$2" >"$1$rel/memory.max" && echo 0 >"$1$rel/memory.current"
    elif [[ ",$controllers," == *,memory,* ]]; then
      mkdir -p "$1/memory$rel" && echo "$2" >"$1/memory$rel/memory.limit_in_bytes" &&
        echo 0 >"$1/memory$rel/memory.usage_in_bytes"
    fi
  done </proc/self/cgroup
}

no_output() { # what
  if [ -e "$tmp/out.h5" ] || [ -e "$tmp/out.h5.calibration.json" ]; then
    bad "$1: left an output"
  else ok; fi
}

# fixture experts expert_MiB (the sanitizer build: mixtral only)
fixtures=("mixtral-tiny-random 4 1.50")
[ -z "${RAANA_TEST_QUICK:-}" ] && fixtures+=("qwen3-moe-tiny-random 8 0.75")
for fixture in "${fixtures[@]}"; do
  read -r name experts emib <<<"$fixture"
  write_job "$src/tests/data/$name"
  for p in $test_ranks; do
    spare=$((p > 2 ? p - 2 : 0))
    team=$((spare + 1 <= experts ? spare + 1 : experts)) # the largest team the job has
    n_set=$([ "$team" -gt 1 ] && echo "$team" || echo auto)
    # statistics and container: P = 1 without a team is the reference
    run "$mpiexec" -n "$p" "$mpi_bin" --calibrate-only "$tmp/job.ini" \
      --set calibration.expert_ranks=$n_set
    expect_rc 0 "$name P=$p expert_ranks=$n_set statistics"
    [ "$team" -gt 1 ] && expect_err "calibrate: expert team of $team ranks per sparse block" \
      "$name P=$p expert_ranks=$n_set"
    [ "$p" = 1 ] && cp "$tmp/out.h5.calibration.json" "$ref/$name.calibration.json"
    if has_ref "$ref/$name.calibration.json" "$name P=$p"; then
      cmp -s "$tmp/out.h5.calibration.json" "$ref/$name.calibration.json" && ok ||
        bad "$name P=$p expert_ranks=$n_set: statistics differ from P = 1"
    fi
    rm -f "$tmp/out.h5.calibration.json"
    if [ "$p" = 1 ] || [ "$team" -gt 1 ]; then
      run "$mpiexec" -n "$p" "$mpi_bin" "$tmp/job.ini" --set calibration.expert_ranks=$n_set
      expect_rc 0 "$name P=$p expert_ranks=$n_set job"
      [ "$p" = 1 ] && cp "$tmp/out.h5" "$ref/$name.h5"
      if has_ref "$ref/$name.h5" "$name P=$p"; then
        "$py" "$src/tests/py/compare_containers.py" "$ref/$name.h5" "$tmp/out.h5" \
          --ignore config.ini && ok || bad "$name P=$p expert_ranks=$n_set: container differs"
      fi
      rm -f "$tmp/out.h5"
    fi
    # forced teams the job lacks ranks (or experts) for
    for run_n in "$((p > 1 ? p : 2)) job" "$((p > 1 ? p : 2)) --dry-run" \
      "$((experts + 1)) --dry-run"; do
      read -r n mode <<<"$run_n"
      [ "$n" -gt "$experts" ] && [ "$p" != 1 ] && continue # P-independent: once
      [ -n "${RAANA_TEST_QUICK:-}" ] && [ "$mode" = --dry-run ] && continue
      what="$name P=$p expert_ranks=$n $mode"
      [ "$mode" = job ] && mode=
      run timeout 120 "$mpiexec" -n "$p" "$mpi_bin" $mode "$tmp/job.ini" \
        --set calibration.expert_ranks=$n
      expect_rc 3 "$what"; expect_err "expert_ranks = $n: block " "$what"
      if [ "$n" -gt "$experts" ]; then
        expect_err "has only $experts experts" "$what"
      else
        expect_err "experts ($emib MiB f32) need a team of $n ranks" "$what"
        expect_err "run with at least $((p + n - 1 - spare)) ranks" "$what"
      fi
      expect_one_error_line "$what"
      no_output "$what"
      [ "$mode" = --dry-run ] && expect_out "expert teams: $n ranks per sparse block" "$what"
    done
    # auto under a memory limit the experts do not fit (team of 2 moves
    # at least half of one block's experts, more than 0.25 MiB)
    mib=$("$mpiexec" -n "$p" "$mpi_bin" --dry-run "$tmp/job.ini" |
      sed -n 's/.*(needs \([0-9.]*\) MiB without a team).*/\1/p')
    room=$("$py" -c "print(int(($mib - 0.2) * 1048576) + 128 * 1048576 + 4096)")
    rm -rf "$tmp/cg" && fake_cgroup "$tmp/cg" "$room"
    what="$name P=$p auto in a ($mib - 0.2) MiB budget"
    run timeout 120 "$mpiexec" -n "$p" -x RAANA_CGROUP_ROOT="$tmp/cg" "$mpi_bin" "$tmp/job.ini"
    if [ "$spare" -eq 0 ]; then
      expect_rc 6 "$what"
      expect_err "experts ($emib MiB f32) do not fit the memory budget of its owner rank" "$what"
      expect_err "run with at least $((p + 1)) ranks or raise the memory limit" "$what"
    else
      expect_rc 8 "$what"; expect_err "need a team of 2 ranks" "$what"
      expect_err "their owner still holds their weights" "$what"
    fi
    expect_one_error_line "$what"
    no_output "$what"
  done
done
finish

#!/usr/bin/env bash
# test_expert_teams.sh — expert parallelism (docs/MOE.md, "Expert
# parallelism"; issue 13), per rank count P, on mixtral-tiny-random (2
# sparse blocks of 4 experts, 1.50 MiB f32 each; ranks owning no block:
# P - 2 for P >= 2); 3 bits, one 96-token window:
#   P = 1: the reference container (no team); expert_ranks = 2 (no spare
#     rank) and 5 (> 4 experts): the job and the dry run exit 3 with one
#     line naming the block, its expert bytes (closed form 4 x E x 3 x
#     hidden x width) and "run with at least P + N - 1 - spare ranks";
#   P = 2: auto under a fake memory cgroup (as test_windows_in_flight.sh)
#     whose room is 0.2 MiB below the largest need without a team: no
#     spare rank, so exit 6 naming the block, its expert bytes and "run
#     with at least 3 ranks"; never an output file, never a hang;
#   P = 3: auto under the same kind of cgroup: the owner alone does not fit,
#     a team of 2 does; the dry run says so ("expert teams: 2 ranks", every
#     rank fits), the job runs the team (its log names it: the owners load
#     only experts e % 2 == 0, rank 1 (no block) holds and quantizes or ships the odd
#     ones) and its container equals P = 1's outside /provenance and
#     config.ini (tests/py/compare_containers.py); a forced team of 2 whose
#     member is killed after its 4th layer resumes to the same container;
#   P = 4: expert_ranks = 3 (both spare ranks), the same container; outside
#     the sanitizer build also qwen3-moe-tiny-random (8 experts: 3, 3, 2 per
#     rank), against its own P = 1 reference.
# Under RAANA_TEST_QUICK (the sanitizer build) the P = 3 leg only, and at
# P = 1 the forced team's refusal and the Mixtral reference (one rank: made
# there rather than in the P = 3 entry, which runs alone).
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

write_job() { moe_window_job "$tmp/job.ini" "$1" 3 "$tmp/out.h5"; } # fixture_dir

no_output() { # what
  if [ -e "$tmp/out.h5" ] || [ -e "$tmp/out.h5.calibration.json" ]; then
    bad "$1: left an output"
  else ok; fi
}

quick=${RAANA_TEST_QUICK:-}
mixtral=$src/tests/data/mixtral-tiny-random

# the job's container against P = 1's
same_container() { # name what
  has_ref "$ref/$1.h5" "$2" || return
  "$py" "$src/tests/py/compare_containers.py" "$ref/$1.h5" "$tmp/out.h5" --ignore config.ini &&
    ok || bad "$2: container differs from P = 1's"
}

reference() { # name fixture_dir: the P = 1 container, no team
  write_job "$2"
  run "$mpiexec" -n 1 "$mpi_bin" "$tmp/job.ini"
  expect_rc 0 "$1 P=1 reference"
  cp "$tmp/out.h5" "$ref/$1.h5" && rm -f "$tmp/out.h5"
}

# a fake cgroup 0.2 MiB below the largest need without a team at P ranks
# (the dry run's "needs X MiB without a team"; the room is the limit less
# one 128 MiB OpenBLAS buffer)
tight_cgroup() { # p
  local mib room
  mib=$("$mpiexec" -n "$1" "$mpi_bin" --dry-run "$tmp/job.ini" |
    sed -n 's/.*(needs \([0-9.]*\) MiB without a team).*/\1/p')
  room=$("$py" -c "print(int(($mib - 0.2) * 1048576) + 128 * 1048576 + 4096)")
  rm -rf "$tmp/cg" && fake_cgroup "$tmp/cg" "$room"
  echo "$mib"
}

forced_refusal() { # p n mode experts
  local what="mixtral P=$1 expert_ranks=$2 ${3:-job}"
  run timeout 120 "$mpiexec" -n "$1" "$mpi_bin" $3 "$tmp/job.ini" --set calibration.expert_ranks=$2
  expect_rc 3 "$what"; expect_err "expert_ranks = $2: block " "$what"
  if [ "$2" -gt "$4" ]; then
    expect_err "has only $4 experts" "$what"
  else
    expect_err "experts (1.50 MiB f32) need a team of $2 ranks" "$what"
    expect_err "run with at least $(($1 + $2 - 1)) ranks" "$what"
  fi
  expect_one_error_line "$what"
  no_output "$what"
  [ "$3" = --dry-run ] && expect_out "expert teams: $2 ranks per sparse block" "$what"
}

for p in $test_ranks; do
  [ -n "$quick" ] && [ "$p" != 1 ] && [ "$p" != 3 ] && continue
  case $p in
  1)
    write_job "$mixtral"
    forced_refusal 1 2 "" 4
    reference mixtral "$mixtral"
    [ -n "$quick" ] && continue
    reference qwen3-moe "$src/tests/data/qwen3-moe-tiny-random"
    write_job "$mixtral"
    forced_refusal 1 2 --dry-run 4
    forced_refusal 1 5 --dry-run 4
    ;;
  2)
    write_job "$mixtral"
    mib=$(tight_cgroup 2)
    what="mixtral P=2 auto in a ($mib - 0.2) MiB budget"
    run timeout 120 "$mpiexec" -n 2 -x RAANA_CGROUP_ROOT="$tmp/cg" "$mpi_bin" "$tmp/job.ini"
    expect_rc 6 "$what"
    expect_err "block 1's experts (1.50 MiB f32) do not fit the memory budget of its owner rank" \
      "$what"
    expect_err "need a team of 2 ranks" "$what"
    expect_err "run with at least 3 ranks or raise the memory limit" "$what"
    expect_one_error_line "$what"
    no_output "$what"
    ;;
  3)
    [ -e "$ref/mixtral.h5" ] || reference mixtral "$mixtral"
    write_job "$mixtral"
    mib=$(tight_cgroup 3)
    what="mixtral P=3 auto in a ($mib - 0.2) MiB budget"
    run timeout 120 "$mpiexec" -n 3 -x RAANA_CGROUP_ROOT="$tmp/cg" "$mpi_bin" --dry-run \
      "$tmp/job.ini"
    expect_rc 0 "$what dry run"
    expect_out "expert teams: 2 ranks per sparse block (auto;" "$what dry run"
    expect_out "memory limits: every rank fits" "$what dry run"
    run timeout 120 "$mpiexec" -n 3 -x RAANA_CGROUP_ROOT="$tmp/cg" "$mpi_bin" "$tmp/job.ini"
    expect_rc 0 "$what job"
    expect_err "calibrate: expert team of 2 ranks per sparse block: its owner computes experts \
e % 2 == 0, rank 1 e % 2 == 1" "$what job"
    same_container mixtral "$what"
    rm -f "$tmp/out.h5"
    [ -n "$quick" ] && continue
    # the member dies after its 4th layer; the rerun resumes the finished
    # layers on the ranks holding their weights (member included)
    what="mixtral P=3 expert_ranks=2 resumed after rank 1 (the member) was killed"
    run timeout 120 "$mpiexec" -n 3 -x RAANA_FAULT_INJECT=quantize:1:4 "$mpi_bin" "$tmp/job.ini" \
      --set calibration.expert_ranks=2
    [ "$rc" -ne 0 ] && [ ! -e "$tmp/out.h5" ] && ok || bad "$what: exit $rc or an output"
    run timeout 120 "$mpiexec" -n 3 "$mpi_bin" "$tmp/job.ini" --set calibration.expert_ranks=2
    expect_rc 0 "$what"
    read -r enc res < <(sed -n 's/^layers: \([0-9]*\) encoded, \([0-9]*\) resumed$/\1 \2/p' <<<"$out")
    [ "${enc:-0}" -gt 0 ] && [ "${res:-0}" -ge 4 ] && [ $((enc + res)) -eq 32 ] && ok ||
      bad "$what: expected at least 4 layers resumed, some encoded: $(grep layers: <<<"$out")"
    same_container mixtral "$what"
    rm -f "$tmp/out.h5"
    ;;
  4)
    for fixture in "mixtral $mixtral" "qwen3-moe $src/tests/data/qwen3-moe-tiny-random"; do
      read -r name dir <<<"$fixture"
      write_job "$dir"
      run timeout 120 "$mpiexec" -n 4 "$mpi_bin" "$tmp/job.ini" --set calibration.expert_ranks=3
      expect_rc 0 "$name P=4 expert_ranks=3"
      expect_err "calibrate: expert team of 3 ranks per sparse block" "$name P=4 expert_ranks=3"
      same_container "$name" "$name P=4 expert_ranks=3"
      rm -f "$tmp/out.h5"
    done
    ;;
  esac
done
finish

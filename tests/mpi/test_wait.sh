#!/usr/bin/env bash
# test_wait.sh — tests/unit/test_wait.c (the back-off waits of
# src/pipeline/wait.c) under mpiexec with P = 1..4 ranks: every rank's
# checks pass. Usage: test_wait.sh TEST_WAIT SOURCE_DIR MPIEXEC
# (RAANA_TEST_RANKS: tests/cli/lib.sh)
set -u
bin=$1 src=$2 mpiexec=$3
. "$src/tests/cli/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
export OMPI_MCA_rmaps_base_oversubscribe=1

for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$bin"
  expect_rc 0 "P=$p"
  n=$(grep -c '^test_wait: [1-9][0-9]* passed, 0 failed$' <<<"$out")
  [ "$n" -eq "$p" ] && ok || bad "P=$p: $n of $p ranks reported all checks passed"
done
finish

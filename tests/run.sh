#!/usr/bin/env bash
# run.sh — the README's test command: installs dependencies, builds with
# warnings as errors, checks the formatting (tests/check-format.sh), runs the
# whole ctest suite (unit, numpy cross-check, command line, MPI with 1..4
# ranks, one entry per rank count), again under AddressSanitizer +
# UndefinedBehaviorSanitizer (quick modes: MPI tests for P = 1 and 3 only,
# the first case of each loop; tests/CMakeLists.txt; no benchmarks built),
# then each libFuzzer target for a bounded time. ctest runs two tests at a
# time, the longest first (COST); the tests that start 3 or 4 ranks and the
# Slurm tests are RUN_SERIAL (they run alone); one-process runs start no
# orted (OMPI_MCA_ess_singleton_isolated, tests/CMakeLists.txt).
#   FUZZ_SECONDS=N   seconds per fuzz target (default 12; every target runs,
#                    CTEST_JOBS of them at a time)
#   CTEST_JOBS=N     tests run at once (default: the number of cores, at most 2)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
bash tests/setup-debian.sh
jobs=$(nproc)
ctest_jobs=${CTEST_JOBS:-$((jobs < 2 ? jobs : 2))}
fuzz_seconds=${FUZZ_SECONDS:-12}
# libFuzzer targets (tests/fuzz/fuzz_NAME.c) and their seed corpora
# (tests/fuzz/corpus/DIR), as NAME:DIR; a new target must be listed here
fuzz_targets=(safetensors_header:safetensors config:config tokenizer_json:tokenizer_json
  model_config_json:model_config_json container:container)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OPENBLAS_NUM_THREADS=1

step() { printf '\n=== %s\n' "$*"; }
# ctest_all DIR: every test of the build in DIR passes, none is skipped
ctest_all() {
  local log
  log=$(mktemp)
  (cd "$1" && ctest --output-on-failure --no-tests=error -j"$ctest_jobs") | tee "$log"
  if grep -qE '\*\*\*Skipped|Not Run' "$log"; then
    echo "tests/run.sh: a test did not run; CI requires every test"
    exit 1
  fi
  rm -f "$log"
}

step "formatting (clang-format, tests/check-format.sh)"
bash tests/check-format.sh

step "build (Release, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRAANA_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
step "tests"
ctest_all build
step "install (cmake --install) and run the installed programs"
prefix=$(mktemp -d)
cmake --install build --prefix "$prefix" >/dev/null
# (outputs captured, not piped into head: with pipefail, a writer killed by
# SIGPIPE when head stops reading early would fail the script at random)
"$prefix/bin/raana-mpi" --version
help=$("$prefix/bin/raana-eval" --help) && head -1 <<<"$help"
test -f "$prefix/lib/libraana.a" && test -f "$prefix/include/raana/raana.h" &&
  test -f "$prefix/lib/pkgconfig/raana.pc" && test -f "$prefix/lib/cmake/raana/raanaConfig.cmake" &&
  test ! -e "$prefix/include/raana/fault.h" && test -f "$prefix/share/raana-mpi/raana.ini"
# the installed programs make a container; h5dump reads it through the installed plugin
plugin_dir=$(dirname "$(find "$prefix" -name libraana_h5zstd.so)")
mpirun --oversubscribe -n 2 "$prefix/bin/raana-mpi" jobs/kjv-tiny.ini \
  --set output.path="$prefix/kjv.h5" >/dev/null
summary=$("$prefix/bin/raana-inspect" "$prefix/kjv.h5") && head -3 <<<"$summary"
dump=$(HDF5_PLUGIN_PATH=$plugin_dir h5dump -d /layers/model.layers.0.mlp.up_proj/rescale "$prefix/kjv.h5")
grep -qE '^ *\(0\): [0-9]\.[0-9]+, ' <<<"$dump" || { echo "h5dump with the installed plugin: no data"; exit 1; }
echo "h5dump with $plugin_dir/libraana_h5zstd.so: reads the container"
rm -rf "$prefix"

step "build (AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAANA_WERROR=ON -DRAANA_SANITIZE=ON \
  -DRAANA_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
step "tests under ASan + UBSan"
ctest_all build-asan

step "fuzzers (libFuzzer, $fuzz_seconds s each)"
fuzz_names=("${fuzz_targets[@]%%:*}")
for f in tests/fuzz/fuzz_*.c; do # a target missing from the list would never run
  name=$(basename "$f" .c)
  [[ " ${fuzz_names[*]} " == *" ${name#fuzz_} "* ]] ||
    { echo "tests/run.sh: $f is not in fuzz_targets"; exit 1; }
done
CC=clang cmake -S . -B build-fuzz -DRAANA_WERROR=ON -DRAANA_SANITIZE=ON -DRAANA_FUZZ=ON \
  -DRAANA_OPENMP=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target "${fuzz_names[@]/#/fuzz_}"
# $ctest_jobs targets at a time (each single-threaded, each its full
# $fuzz_seconds), reported in the list's order
batch=()
fuzz_batch() { # runs the targets in batch=(NAME:CORPUS...) side by side
  local target name corpus i
  local -a works=() pids=()
  for target in "${batch[@]}"; do
    name=${target%%:*} corpus=tests/fuzz/corpus/${target##*:}
    [ -d "$corpus" ] || { echo "tests/run.sh: no seed corpus $corpus for fuzz_$name"; exit 1; }
    works+=("$(mktemp -d)")
    # tests/lsan.supp: HDF5's own leak on a header that fails to decode
    # (fuzz_container); the full unwind lets the suppression see HDF5's frames
    LSAN_OPTIONS=suppressions=$src/tests/lsan.supp:print_suppressions=0 \
      ASAN_OPTIONS=fast_unwind_on_malloc=0 \
      ./build-fuzz/tests/fuzz_"$name" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
      "${works[-1]}" "$corpus" 2>"${works[-1]}.log" &
    pids+=($!)
  done
  for i in "${!batch[@]}"; do
    name=${batch[$i]%%:*}
    wait "${pids[$i]}" || { tail -50 "${works[$i]}.log"; kill "${pids[@]}" 2>/dev/null; exit 1; }
    grep -E 'stat::number_of_executed_units' "${works[$i]}.log" | sed "s/^/fuzz_$name: /"
    rm -rf "${works[$i]}" "${works[$i]}.log"
  done
  batch=()
}
for target in "${fuzz_targets[@]}"; do
  batch+=("$target")
  [ ${#batch[@]} -lt "$ctest_jobs" ] || fuzz_batch
done
[ ${#batch[@]} -eq 0 ] || fuzz_batch
step "all tests passed"

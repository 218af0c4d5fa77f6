#!/usr/bin/env bash
# run.sh — the README's test command: installs dependencies, builds with
# warnings as errors, runs the whole ctest suite (unit, numpy cross-check,
# command line, MPI with 1..4 ranks), again under AddressSanitizer +
# UndefinedBehaviorSanitizer, then each libFuzzer target for a bounded time.
#   FUZZ_SECONDS=N   seconds per fuzz target (default 60)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
bash tests/setup-debian.sh
jobs=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OPENBLAS_NUM_THREADS=1

step() { printf '\n=== %s\n' "$*"; }

step "independent reference implementations (npm, tests/js)"
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

step "build (Release, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRAANA_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
step "tests"
(cd build && ctest --output-on-failure)
step "install (cmake --install) and run the installed programs"
prefix=$(mktemp -d)
cmake --install build --prefix "$prefix" >/dev/null
"$prefix/bin/raana-mpi" --version && "$prefix/bin/raana-eval" --help | head -1
test -f "$prefix/lib/libraana.a" && test -f "$prefix/include/raana/qlayer.h" &&
  test -f "$prefix/share/raana-mpi/raana.ini"
# the installed programs make a container; h5dump reads it through the installed plugin
plugin_dir=$(dirname "$(find "$prefix" -name libraana_h5zstd.so)")
mpirun --oversubscribe -n 2 "$prefix/bin/raana-mpi" jobs/kjv-tiny.ini \
  --set output.path="$prefix/kjv.h5" >/dev/null
"$prefix/bin/raana-inspect" "$prefix/kjv.h5" | head -3
dump=$(HDF5_PLUGIN_PATH=$plugin_dir h5dump -d /layers/model.layers.0.mlp.up_proj/rescale "$prefix/kjv.h5")
grep -qE '^ *\(0\): [0-9]\.[0-9]+, ' <<<"$dump" || { echo "h5dump with the installed plugin: no data"; exit 1; }
echo "h5dump with $plugin_dir/libraana_h5zstd.so: reads the container"
rm -rf "$prefix"

step "build (AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAANA_WERROR=ON -DRAANA_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
step "tests under ASan + UBSan"
(cd build-asan && ctest --output-on-failure)

step "fuzzers (libFuzzer, ${FUZZ_SECONDS:-60} s each)"
CC=clang cmake -S . -B build-fuzz -DRAANA_WERROR=ON -DRAANA_SANITIZE=ON -DRAANA_FUZZ=ON \
  -DRAANA_OPENMP=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_safetensors_header fuzz_config fuzz_tokenizer_json \
  fuzz_model_config_json
for target in safetensors_header:safetensors config:config tokenizer_json:tokenizer_json \
  model_config_json:model_config_json; do
  name=${target%%:*} corpus=${target##*:}
  work=$(mktemp -d)
  ./build-fuzz/tests/fuzz_"$name" -max_total_time="${FUZZ_SECONDS:-60}" -print_final_stats=1 \
    "$work" "tests/fuzz/corpus/$corpus" 2>"$work.log" || { tail -50 "$work.log"; exit 1; }
  grep -E 'stat::number_of_executed_units' "$work.log" | sed "s/^/fuzz_$name: /"
  rm -rf "$work" "$work.log"
done
step "all tests passed"

#!/bin/bash
# test_install.sh — the installed tree is a usable library: `cmake --install`
# to a temporary prefix puts exactly the public headers under
# include/raana; tests/consumer/consumer.c builds against it with
# `pkg-config --cflags --libs raana` and with find_package(raana); both
# builds open a container of the fixture job, dequantize a layer (checked
# against the numpy reader, tests/py/check_consumer.py) and agree byte for
# byte; the installed raana-inspect reads the container too.
#
# Usage: test_install.sh BUILD_DIR SOURCE_DIR PLUGIN_DIR
set -u
build=$1 src=$2 plugin=$3
. "$src/tests/cli/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 OMPI_MCA_ess_singleton_isolated=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

run cmake --install "$build" --prefix "$prefix"
expect_rc 0 "cmake --install"
headers=$(cd "$prefix/include/raana" && ls | tr '\n' ' ')
want="bits.h container.h error.h hadamard.h qlayer.h raana.h tricks.h "
if [ "$headers" = "$want" ]; then ok; else bad "installed headers: '$headers', expected '$want'"; fi
# a public header includes only public headers
for h in "$prefix"/include/raana/*.h; do
  for inc in $(sed -n 's/^#include "raana\/\(.*\)".*/\1/p' "$h"); do
    if [ -f "$prefix/include/raana/$inc" ]; then ok; else bad "$(basename "$h") includes private $inc"; fi
  done
done

pcdir=$(dirname "$(find "$prefix" -name raana.pc)")
run env PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs raana
expect_rc 0 "pkg-config raana"
flags=$out
run cc -std=c11 -Wall -Wextra -Werror -o "$work/consumer-pc" "$src/tests/consumer/consumer.c" $flags
expect_rc 0 "consumer built with pkg-config"

run cmake -S "$src/tests/consumer" -B "$work/consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release
expect_rc 0 "consumer configured with find_package(raana)"
run cmake --build "$work/consumer-cmake"
expect_rc 0 "consumer built with find_package(raana)"

# a container from the fixture job, made by the installed raana-mpi
run "$prefix/bin/raana-mpi" "$src/jobs/kjv-tiny.ini" --set output.path="$work/kjv.h5"
expect_rc 0 "installed raana-mpi on the fixture job"
run "$prefix/bin/raana-inspect" --verify "$work/kjv.h5"
expect_rc 0 "installed raana-inspect --verify"

layer=model.layers.1.self_attn.o_proj
for c in consumer-pc consumer-cmake/consumer; do
  run "$work/$c" "$work/kjv.h5" "$work/$(basename $c).f32" $layer
  expect_rc 0 "$c"
  line=$out
  run env HDF5_PLUGIN_PATH="$plugin" /usr/bin/python3 "$src/tests/py/check_consumer.py" \
    "$work/kjv.h5" "$work/$(basename $c).f32" "$line"
  expect_rc 0 "$c against the numpy reader"
  echo "$out"
done
if cmp -s "$work/consumer-pc.f32" "$work/consumer.f32"; then ok; else bad "the two consumer builds disagree"; fi
run "$work/consumer-pc" "$work/nonexistent.h5" "$work/x.f32"
expect_rc 4 "consumer on a missing file"
expect_err "consumer: error: $work/nonexistent.h5" "consumer names the file"

finish

#!/usr/bin/env bash
# test_container_ranks.sh — the whole job on the fixture (jobs/kjv-tiny.ini)
# for P = 1, 2, 3, 4: the log's lines after its header in one format (and the
# quantize stage's per-rank balance lines parsed); every container's datasets, attributes and allocation
# are byte-identical to P = 1 (outside /provenance), also at P = 6 where two
# ranks without a block encode layers sent to them; a numpy-only rebuild of
# every layer matches raana's dequantization (tests/py/check_container.py),
# also for a sub-bit / norm_row / excluded-layer variant; h5dump with the
# installed-style plugin prints a dataset's numbers (and without the plugin
# it cannot, but metadata such as /config.ini reads in h5dump and h5py
# without it: tests/py/check_no_plugin.py); raana-inspect reads the report back, and refuses a container
# with a corrupted chunk (Fletcher-32) or truncated. With [quantize]
# side_bits = 16, P = 3 gives P = 1's container, numpy rebuilds it, a
# resumed job gives it again and another width encodes again (that last in
# the Release build only).
# Usage: test_container_ranks.sh RAANA_MPI RAANA_INSPECT PLUGIN_DIR SOURCE_DIR MPIEXEC
# (RAANA_TEST_RANKS, RAANA_TEST_COMMON, RAANA_TEST_REF: tests/cli/lib.sh; the
# common checks in two parts: "many", the jobs (threads, P = 6, the sub-bit
# variant, side_bits = 16), and "few", the reads of P = 1's container, one
# process at a time)
set -u
mpi_bin=$1 inspect_bin=$2 plugin_dir=$3 src=$4 mpiexec=$5
. "$src/tests/cli/lib.sh"
mpi_test_env
py=/usr/bin/python3
fixture=$src/tests/data/kjv-tiny
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini
out_h5=$tmp/kjv.h5

ref=$(ref_dir "$tmp")
# config.ini of a container, its output path (which names this run's tmp) cut out
config_ini() {
  HDF5_PLUGIN_PATH=$plugin_dir "$py" -c 'import sys, h5py
sys.stdout.write(h5py.File(sys.argv[1], "r")["config.ini"][...].tobytes().decode())' "$1" |
    sed "s|$2||g"
}
for p in $test_ranks; do
  run "$mpiexec" -n "$p" "$mpi_bin" "$job" --set "output.path=$out_h5"
  expect_rc 0 "job P=$p"
  expect_out "allocation: target 3 bits, achieved 3.0000 (exact DP)" "job P=$p"
  expect_out "wrote $out_h5" "job P=$p"
  [ -f "$out_h5" ] && [ ! -e "$out_h5.partial" ] && [ ! -e "$out_h5.resume" ] && ok ||
    bad "P=$p: container in place, no temporary or resume files left"
  # the log (joblog.h): after the header, every line is "UTC STAGE: TEXT"
  utc='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
  odd=$(sed -En "/^$utc /,\$p" <<<"$errout" | grep -vE "^$utc [a-z][a-z ()]*: ")
  [ -z "$odd" ] && ok || bad "P=$p: log lines not in the one format: $odd"
  grep -qE "^$utc write: $out_h5.partial \([0-9]+ bytes reserved\)\$" <<<"$errout" && ok ||
    bad "P=$p: no timestamped 'write: ... bytes reserved' line: $errout"
  grep -qE "^$utc quantize: .* \[[0-9]+/28 layers, all ranks, [0-9]+%, elapsed [0-9:]+, ETA [0-9:?]+\]\$" \
    <<<"$errout" && ok || bad "P=$p: no quantize progress line: $errout"
  # the quantize stage's balance (balance.h): one line per rank, in rank
  # order, the layers adding up to 28 and the predicted shares to 100%; the
  # cost-balanced spread is no worse than the split by blocks
  shares=$(sed -nE "s/^$utc quantize: rank ([0-9]+) encoded ([0-9]+) layers in [0-9.]+ s; predicted share ([0-9.]+)% \(its own blocks alone: ([0-9.]+)%\)\$/\1 \2 \3 \4/p" <<<"$errout")
  awk -v p="$p" '{ if ($1 != NR - 1) bad = 1; n += $2; s += $3; b += $4 }
    END { exit !(NR == p && !bad && n == 28 && s > 99.7 && s < 100.3 && b > 99.7 && b < 100.3) }' \
    <<<"$shares" && ok || bad "P=$p: per-rank quantize lines: $shares"
  spread=$(sed -nE "s/^$utc quantize: balance max\/mean: predicted ([0-9.]+) by cost \(([0-9.]+) by blocks\), measured [0-9.]+\$/\1 \2/p" <<<"$errout")
  awk 'NR == 1 { good = NF == 2 && $1 >= 1 && $1 <= $2 } END { exit !(NR == 1 && good) }' \
    <<<"$spread" && ok ||
    bad "P=$p: balance line: '$spread'"
  # rounds in step cannot beat the busiest rank: each >= its max/mean above
  step=$(sed -nE "s/^$utc quantize: rounds in step \(each waits for its costliest layer\): predicted stage time ([0-9.]+) x the mean load by cost \(([0-9.]+) by blocks\)\$/\1 \2/p" <<<"$errout")
  awk -v s="$spread" 'NR == 1 { split(s, m, " "); good = NF == 2 && $1 >= m[1] && $2 >= m[2] }
    END { exit !(NR == 1 && good) }' <<<"$step" && ok || bad "P=$p: rounds-in-step line: '$step'"
  mv "$out_h5" "$tmp/p$p.h5"
  printf '%s\n' "$out" | grep -v '^time:' | sed "s|$out_h5||" >"$tmp/report$p.txt"
  config_ini "$tmp/p$p.h5" "$out_h5" >"$tmp/config$p.ini"
  if [ "$p" = 1 ]; then
    cp "$tmp/p1.h5" "$tmp/report1.txt" "$tmp/config1.ini" "$ref/"
    continue
  fi
  has_ref "$ref/p1.h5" "P=$p" || continue
  # another run's tmp: everything but config.ini's output path is the same
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$ref/p1.h5" \
    "$tmp/p$p.h5" --ignore config.ini && ok || bad "container P=$p differs from P=1"
  cmp -s "$ref/config1.ini" "$tmp/config$p.ini" && ok || bad "config.ini P=$p differs from P=1"
  cmp -s "$ref/report1.txt" "$tmp/report$p.txt" && ok || bad "report P=$p differs from P=1"
done
[ "$test_common" != 0 ] || { finish; exit; }
has_ref "$ref/p1.h5" "the checks on P=1's container" || { finish; exit; }
cp "$ref/p1.h5" "$tmp/p1.h5"

if common_part many; then
  # OpenMP threads inside a rank do not change the codes either
  run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$out_h5" --set run.threads=2
  expect_rc 0 "job P=2, 2 threads"
  mv "$out_h5" "$tmp/threads.h5"
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$tmp/p1.h5" \
    "$tmp/threads.h5" --ignore config.ini && ok || bad "container with 2 threads per rank differs"

  # more ranks than blocks: the two ranks without a block encode layers that
  # their owners send them, and the container is still P = 1's (Release build
  # only: six ranks under the sanitizers take a minute and a half on 2 cores,
  # and P = 3 already sends layers to ranks that do not own them)
  if [ "${RAANA_TEST_QUICK:-0}" != 1 ]; then
    run "$mpiexec" -n 6 "$mpi_bin" "$job" --set "output.path=$out_h5"
    expect_rc 0 "job P=6"
    mv "$out_h5" "$tmp/p6.h5"
    HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$tmp/p1.h5" \
      "$tmp/p6.h5" --ignore config.ini && ok || bad "container P=6 differs from P=1"
    helpers=$(grep -cE "quantize: rank [0-9]+ encoded [1-9][0-9]* layers in [0-9.]+ s; predicted share [0-9.]+% \(its own blocks alone: 0\.0%\)" <<<"$errout")
    [ "$helpers" -eq 2 ] && ok || bad "P=6: expected 2 block-less ranks encoding layers: $errout"
  fi

  run "$mpiexec" -n 3 "$mpi_bin" "$job" --set "output.path=$tmp/sub.h5" \
    --set quantize.bits=0.5,0.75,1,2 --set quantize.avg_bits=0.9 \
    --set quantize.tricks=centralize,norm_col,norm_row --set 'quantize.exclude=*.k_proj' \
    --set quantize.encoder=fast
  expect_rc 0 "sub-bit variant"
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/check_container.py" "$tmp/sub.h5" \
    "$inspect_bin" "$fixture" && ok || bad "check_container on the sub-bit variant"

  # 16-bit side vectors ([quantize] side_bits = 16): the same container from 1
  # and 3 ranks, version 3, rebuilt by numpy (uint16 halves times 2^exponent)
  # to raana's dequantization; 16 bits counted per rescale, mean and row scale
  side16=(--set quantize.side_bits=16 --set quantize.tricks=centralize,norm_col,norm_row)
  for p in 1 3; do
    run "$mpiexec" -n "$p" "$mpi_bin" "$job" --set "output.path=$tmp/side16_$p.h5" "${side16[@]}"
    expect_rc 0 "side_bits = 16, P=$p"
  done
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$tmp/side16_1.h5" \
    "$tmp/side16_3.h5" --ignore config.ini && ok || bad "side_bits = 16: P=3 differs from P=1"
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/check_container.py" "$tmp/side16_3.h5" \
    "$inspect_bin" "$fixture" && ok || bad "check_container with side_bits = 16"
  HDF5_PLUGIN_PATH=$plugin_dir "$py" - "$tmp/side16_1.h5" "$tmp/p1.h5" <<'PY' && ok ||
import sys, h5py
# every side vector uint16 with an exponent; the effective bits are P=1's
# float32 ones minus 16 bits per rescale, mean and row scale (P=1 has no
# row scales: its tricks are centralize, norm_col)
compared = 0
with h5py.File(sys.argv[1], "r") as h, h5py.File(sys.argv[2], "r") as f:
    assert int(h.attrs["format_version"]) == 3
    for name, g in h["layers"].items():
        for ds in ("rescale", "mu", "row_scale"):
            assert g[ds].dtype == "uint16" and "exponent" in g[ds].attrs, (name, ds)
        d_in, d_out = int(g.attrs["d_in"]), int(g.attrs["d_out"])
        if int(g.attrs["n_held"]) != int(f["layers"][name].attrs["n_held"]) or \
                g.attrs["bits"] != f["layers"][name].attrs["bits"]:
            continue
        want = f["layers"][name].attrs["effective_bits"] - 16 * (d_out + d_in) / (d_in * d_out) \
            + 16 * d_in / (d_in * d_out)
        assert abs(g.attrs["effective_bits"] - want) < 1e-12, (name, g.attrs["effective_bits"], want)
        compared += 1
assert compared >= 10, compared  # layers of the same bits in both jobs
PY
    bad "side_bits = 16: dtypes, exponents or effective bits"
  # killed while writing, the rerun reuses every 16-bit layer and writes the
  # same container; the width is part of each layer's fingerprint, so a rerun
  # in float32 encodes every layer again (Release build only: the resume code
  # is mpi_resume's under the sanitizers, and this is its width)
  widths="16 32"
  [ "${RAANA_TEST_QUICK:-0}" = 1 ] && widths=
  for width in $widths; do
    run env RAANA_FAULT_INJECT=write:0:10 "$mpiexec" -n 2 "$mpi_bin" "$job" \
      --set "output.path=$tmp/side_resume.h5" "${side16[@]}"
    [ "$rc" -ne 0 ] && [ ! -e "$tmp/side_resume.h5" ] && ok || bad "side_bits = 16: kill in writing"
    run "$mpiexec" -n 2 "$mpi_bin" "$job" --set "output.path=$tmp/side_resume.h5" "${side16[@]}" \
      --set "quantize.side_bits=$width"
    expect_rc 0 "side_bits = $width after a kill"
    if [ "$width" = 16 ]; then
      expect_out "layers: 0 encoded, 28 resumed" "side_bits = 16 after a kill"
      HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" \
        "$tmp/side16_1.h5" "$tmp/side_resume.h5" --ignore config.ini && ok ||
        bad "side_bits = 16: the resumed container differs"
    else
      expect_out "layers: 28 encoded, 0 resumed" "side_bits = 32 after a 16-bit kill"
    fi
    rm -f "$tmp/side_resume.h5"
  done
fi
common_part few || { finish; exit; }

# numpy-only reconstruction, signs, rel_error, unquantized tensors
HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/check_container.py" "$tmp/p1.h5" \
  "$inspect_bin" "$fixture" && ok || bad "check_container on the fixture job"

# h5dump reads the zstd datasets only through the plugin; without it, it
# prints DATA { } and exits 1
ds=/layers/model.layers.0.self_attn.k_proj/rescale
run env HDF5_PLUGIN_PATH="$plugin_dir" h5dump -d "$ds" "$tmp/p1.h5"
expect_rc 0 "h5dump with the plugin"
grep -qE '^ *\(0\): [0-9]\.[0-9]+, ' <<<"$out" && ok || bad "h5dump printed no numbers: $out"
run env -u HDF5_PLUGIN_PATH h5dump -d "$ds" "$tmp/p1.h5"
grep -qE '^ *\(0\): [0-9]' <<<"$out" && bad "h5dump decoded zstd without the plugin" || ok
expect_rc 1 "h5dump of a zstd dataset without the plugin"
# ... but the metadata (deflate) reads without it: /config.ini's bytes are
# "[model]\n" = 91, 109, 111, 100, 101, 108, 93, 10
run env -u HDF5_PLUGIN_PATH h5dump -d /config.ini "$tmp/p1.h5"
expect_rc 0 "h5dump /config.ini without the plugin"
grep -qE '^ *\(0\): 91, 109, 111, 100, 101, 108, 93, 10,' <<<"$out" && ok ||
  bad "h5dump without the plugin printed no /config.ini data: $out"
# h5py with Debian's packages and no HDF5_PLUGIN_PATH reads every metadata
# dataset, equal to the plugin-enabled read
"$py" "$src/tests/py/check_no_plugin.py" "$tmp/p1.h5" "$plugin_dir" && ok ||
  bad "check_no_plugin.py"

run "$inspect_bin" "$tmp/p1.h5"
expect_rc 0 "raana-inspect"; expect_out "achieved average bits (codes): 3" "raana-inspect"
expect_out "model.layers.3.mlp.down_proj" "raana-inspect table"
# one flipped byte inside a compressed chunk of codes: the checksum catches it
cp "$tmp/p1.h5" "$tmp/bad.h5"
HDF5_PLUGIN_PATH=$plugin_dir "$py" - "$tmp/bad.h5" <<'PY'
import sys, h5py
path = sys.argv[1]
with h5py.File(path, "r") as f:
    info = f["layers/model.layers.2.mlp.up_proj/codes"].id.get_chunk_info(0)
with open(path, "r+b") as fh:
    fh.seek(info.byte_offset + info.size // 2)
    b = fh.read(1)
    fh.seek(info.byte_offset + info.size // 2)
    fh.write(bytes([b[0] ^ 0x10]))
PY
run "$inspect_bin" "$tmp/bad.h5" --dequantize model.layers.2.mlp.up_proj "$tmp/w.f32"
expect_rc 4 "corrupt chunk"
expect_err "/layers/model.layers.2.mlp.up_proj/codes: missing, of the wrong size, or unreadable" \
  "corrupt chunk"
run "$inspect_bin" "$tmp/bad.h5" --dequantize model.layers.2.mlp.down_proj "$tmp/w.f32"
expect_rc 0 "an intact layer of the corrupt file"
head -c 100000 "$tmp/p1.h5" >"$tmp/trunc.h5"
run "$inspect_bin" "$tmp/trunc.h5"
expect_rc 4 "truncated container"; expect_err "trunc.h5: truncated: 100000 bytes of the" "truncated container"
run "$inspect_bin" "$fixture/config.json"
expect_rc 4 "raana-inspect on a non-container"; expect_err "cannot open as HDF5" "raana-inspect"
finish

# lib.sh — what the shell benchmarks share (source it after setting $src, the
# source tree): the MPI settings of the tests (tests/cli/lib.sh's
# mpi_test_env: Open MPI as root, shared memory only, more ranks than cores,
# one OpenBLAS thread per rank), and the job they run.
. "$src/tests/cli/lib.sh"

# bench_setup: the MPI settings, and $tmp, a directory removed on exit.
bench_setup() {
  mpi_test_env
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
}

# bench_write_job FILE [LINE...]: a job on FILE's directory's model/ (the
# checkpoint), 2 calibration windows of 256 tokens of the kjv-tiny text (both
# in flight: the memory benchmark's documented activations), 3
# bits on average, written to out.h5 there; each LINE is added to [quantize]
# (e.g. "encoder = fast").
bench_write_job() {
  local file=$1 line
  shift
  {
    printf '%s\n' "[model]" "path = model" "[calibration]" "source = text" \
      "text_file = $src/tests/data/kjv-tiny/calib.txt" "n_samples = 2" "seq_len = 256" \
      "windows_in_flight = 2" \
      "[quantize]" "avg_bits = 3"
    for line in "$@"; do printf '%s\n' "$line"; done
    printf '%s\n' "[output]" "path = out.h5" "overwrite = true"
  } >"$file"
}

# keep_faster KEY LINE: best[KEY] (an associative array the caller declares)
# becomes LINE when it is unset or LINE's first field (seconds) is smaller.
keep_faster() {
  if [ -z "${best[$1]:-}" ] || awk -v a="${2%% *}" -v b="${best[$1]%% *}" 'BEGIN{exit !(a<b)}'; then
    best[$1]=$2
  fi
}

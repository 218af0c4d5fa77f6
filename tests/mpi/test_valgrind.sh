#!/usr/bin/env bash
# test_valgrind.sh — raana-eval (two sides, sliding windows), raana-mpi
# --calibrate-only (forward and backward through every block), the whole job
# (quantize, the HDF5 container) and raana-eval on that container, on the
# small model, and a job with low-rank factors on the Mixtral fixture, under
# valgrind memcheck: no invalid access, no use of
# uninitialized values, no leak outside Open MPI's own (tests/valgrind.supp). Indirect leaks are not counted: those
# here hang off Open MPI's suppressed blocks (an indirect leak of raana's
# would hang off a definite one, which is). Usage: test_valgrind.sh RAANA_MPI RAANA_EVAL SOURCE_DIR
set -u
mpi_bin=$1 eval_bin=$2 src=$3
. "$src/tests/cli/lib.sh"
export OMPI_MCA_mca_base_component_disable_dlclose=1 OPENBLAS_NUM_THREADS=1
fixture=$src/tests/data/kjv-tiny
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vg=(valgrind -q --error-exitcode=42 --leak-check=full --errors-for-leak-kinds=definite
    --suppressions="$src/tests/valgrind.supp")
head -c 1200 "$fixture/heldout.txt" >"$tmp/small.txt"
# two sliding windows: the first scores all its tokens, the second (stride 24
# of 32) only its new ones; a third would repeat the second's path (9 s)
run "${vg[@]}" "$eval_bin" --model "$fixture" --compare "$fixture" --text "$tmp/small.txt" \
  --seq-len 32 --stride 24 --max-windows 2 --quiet
expect_rc 0 "raana-eval under valgrind"
expect_out "KL divergence: mean 0.000000" "raana-eval under valgrind"
run "${vg[@]}" "$mpi_bin" --calibrate-only --set calibration.n_samples=1 \
  --set calibration.seq_len=48 --set output.path="$tmp/out.h5" "$src/jobs/kjv-tiny.ini"
expect_rc 0 "calibrate under valgrind"; expect_out "1 windows of 48 tokens" "calibrate under valgrind"
# the whole job: calibrate (with LDLQ's grams), allocate, quantize (the exact
# codes, then LDLQ's), write the container, verify. The first and the last
# block are quantized, every projection shape of the model (2 to 5 bits: the
# code paths are the same for 2..7 bits, bitpack.c special-cases 8 only);
# blocks 1 and 2 are stored unquantized (the excluded-tensor path): their 14
# layers repeated the same code on the same shapes (50 s under valgrind)
run "${vg[@]}" "$mpi_bin" --set calibration.n_samples=1 --set calibration.seq_len=48 \
  --set quantize.ldlq=true --set 'quantize.exclude=model.layers.1.*, model.layers.2.*' \
  --set output.path="$tmp/full.h5" "$src/jobs/kjv-tiny.ini"
expect_rc 0 "whole job under valgrind"; expect_out "wrote $tmp/full.h5" "whole job under valgrind"
# both sides, the quantized one from that container alone (fingerprint check
# too); one window: without a stride every window takes the first one's path
# (evaluate.c), and the sliding case ran above
run "${vg[@]}" "$eval_bin" --model "$fixture" --container "$tmp/full.h5" --text "$tmp/small.txt" \
  --seq-len 32 --max-windows 1 --json --quiet
expect_rc 0 "raana-eval --container under valgrind"
expect_out '"kl":{"mean":' "raana-eval --container under valgrind"
# low-rank compensation on the Mixtral fixture (small: its 8 attention layers get
# rank-2 factors from LAPACK's SVD, written, read back and verified; the experts
# and the router go through the sparse path; the experts, which have no
# factors, are encoded as split layers, column_split.h, one piece each)
moe_window_job "$tmp/moe.ini" "$src/tests/data/mixtral-tiny-random" 3 "$tmp/moe.h5"
run "${vg[@]}" "$mpi_bin" "$tmp/moe.ini" --set calibration.seq_len=48 \
  --set quantize.lowrank_rank=2 --set quantize.split_min_weights=1
expect_rc 0 "low-rank job under valgrind"
expect_err "low-rank factors of rank 2 on 8 layers" "low-rank job under valgrind"
expect_err "layers split by output columns over 1 rank, a piece each" "split layers under valgrind"
finish

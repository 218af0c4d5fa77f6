#!/usr/bin/env bash
# test_cli.sh — raana-mpi's command line in one process: --help, --version,
# usage errors, config errors with FILE:LINE, checkpoint errors, the Slurm
# launch check, --dry-run and --set. Usage: test_cli.sh RAANA_MPI SOURCE_DIR
set -u
bin=$1 src=$2
. "$src/tests/cli/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini

run "$bin" --help
expect_rc 0 "--help"; expect_out "Usage: raana-mpi [OPTIONS] CONFIG.ini" "--help"; expect_out "--dry-run" "--help"
run "$bin" --version
expect_rc 0 "--version"; expect_out "raana-mpi 0." "--version"
run "$bin"
expect_rc 2 "no args"; expect_err "raana-mpi: error: missing CONFIG.ini (see --help)" "no args"
run "$bin" --frobnicate "$job"
expect_rc 2 "unknown option"; expect_err "unknown option '--frobnicate'" "unknown option"

# config errors: one line, naming file:line
printf '[model]\npath = x\nspeed = 11\n' >"$tmp/bad.ini"
run "$bin" --dry-run "$tmp/bad.ini"
expect_rc 3 "unknown key"; expect_err "$tmp/bad.ini:3: unknown key 'speed' in [model]" "unknown key"
expect_one_error_line "unknown key"
run "$bin" --dry-run "$tmp/missing.ini"
expect_rc 3 "missing config"; expect_err "$tmp/missing.ini: cannot open" "missing config"
run "$bin" --dry-run --set quantize.avg_bits=0.2 "$job"
expect_rc 3 "--set out of range"; expect_err "--set quantize.avg_bits=0.2" "--set out of range"
run "$bin" --dry-run --set quantize.bits=2,3 --set quantize.avg_bits=4 "$job"
expect_rc 3 "avg_bits outside"; expect_err "avg_bits = 4 is outside the candidate bits [2, 3]" "avg_bits outside"

# checkpoint errors name the file
mkdir -p "$tmp/model"
printf '{"model_type": "gpt_neox", "vocab_size": 8}' >"$tmp/model/config.json"
printf '[model]\npath = model\n' >"$tmp/neox.ini"
run "$bin" --dry-run "$tmp/neox.ini"
expect_rc 8 "unsupported arch"; expect_err "$tmp/model/config.json: model_type 'gpt_neox' is not supported" "unsupported arch"
cp "$src/tests/data/kjv-tiny/config.json" "$tmp/model/config.json"
head -c 4000000 "$src/tests/data/kjv-tiny/model.safetensors" >"$tmp/model/model.safetensors"
run "$bin" --dry-run "$tmp/neox.ini"
expect_rc 4 "truncated"; expect_err "$tmp/model/model.safetensors: file is truncated" "truncated"
expect_one_error_line "truncated"

# Slurm said 2 tasks but there is no PMIx to join them: launched wrongly
run env SLURM_NTASKS=2 "$bin" --dry-run "$job"
expect_rc 7 "slurm mismatch"; expect_err "Slurm started 2 tasks without PMIx" "slurm mismatch"
run env SLURM_NTASKS=1 "$bin" --dry-run "$job"
expect_rc 0 "slurm match"

# the dry run: plan without weights, --set applies
run "$bin" --dry-run --set quantize.exclude=*.down_proj "$job"
expect_rc 0 "dry run"
expect_out "dry run (plan only; no weights are read)" "dry run"
expect_out "model.layers.3.mlp.down_proj" "dry run"
expect_out "no (excluded)" "dry run"
expect_out "1277952 to quantize in 28 linear layers" "dry run"
expect_out "calibration window: 256 tokens" "dry run"
run "$bin" --print-config --set run.threads=3 "$job"
expect_rc 0 "print-config"; expect_out "threads = 3" "print-config"
# what --print-config writes is a config that reads back the same
printf '%s\n' "$out" >"$tmp/printed.ini"
run "$bin" --print-config "$tmp/printed.ini"
expect_rc 0 "print-config round trip"; expect_out "threads = 3" "print-config round trip"
# every shipped job parses, and printing it reads back to the same text
for j in "$src"/jobs/*.ini; do
  run "$bin" --print-config "$j"
  expect_rc 0 "job $(basename "$j") parses"
  printf '%s\n' "$out" >"$tmp/job.ini"
  first=$out
  run "$bin" --print-config "$tmp/job.ini"
  [ "$out" = "$first" ] && ok || bad "job $(basename "$j"): print-config is not a fixed point"
done
run "$bin" --print-config "$src/jobs/llama-2-70b.ini"
expect_out "avg_bits = 2.1" "shortest round-trip doubles"

# sharded and single-file checkpoints give the same plan
run "$bin" --dry-run "$job"
single=$(grep -v '^checkpoint:' <<<"$out")
run "$bin" --dry-run --set model.path="$src/tests/data/kjv-tiny/sharded" "$job"
expect_rc 0 "sharded dry run"; expect_out "(2 files)" "sharded dry run"
sharded=$(grep -v '^checkpoint:' <<<"$out")
if [ "$single" = "$sharded" ]; then ok; else bad "sharded plan differs"; fi

# the whole job in one process (no mpirun): the container appears, nothing else stays
# (with Open MPI's default singleton start-up, which forks an orted: ctest sets
# OMPI_MCA_ess_singleton_isolated=1 for every other one-process run)
run env -u OMPI_MCA_ess_singleton_isolated "$bin" "$job" --set "output.path=$tmp/one.h5"
expect_rc 0 "full run, one process"; expect_out "wrote $tmp/one.h5" "full run, one process"
[ -f "$tmp/one.h5" ] && [ ! -e "$tmp/one.h5.resume" ] && ok || bad "full run: files left"
finish

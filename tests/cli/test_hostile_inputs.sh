#!/usr/bin/env bash
# test_hostile_inputs.sh — the input side of issue 15, each case with its
# exact input: tokenizer.json ids of 10^9 (under a memory limit) and
# 2^31 - 1; config.json sizes of 1e9, infinite floats, a duplicated key
# (Python's json keeps the last); config.ini's seq_len = 1, a long line,
# seed = 010, paths with " ;" or a line break; FIFOs, devices and
# directories given as shard, tokenizer.json, config.json or config file;
# tensor names the container cannot hold; a finite weight of 3.39e38; and
# memory limits (ulimit -v, a cgroup) that used to hang inside OpenBLAS.
# Each gives one clear message and its documented exit code, leaves nothing
# at the output path, and runs under `timeout`: a hang is a failure.
# Usage: test_hostile_inputs.sh RAANA_MPI RAANA_EVAL SOURCE_DIR MPIEXEC SANITIZED
# (SANITIZED=1: ASan reserves terabytes of address space, so the ulimit -v
# runs are replaced by the same limits given as a cgroup; and each loop over
# cases of one kind, which the same code reads, runs its first case only:
# the Release build runs them all.)
set -u
bin=$1 eval_bin=$2 src=$3 mpiexec=$4 sanitized=$5
. "$src/tests/cli/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
export OMPI_MCA_rmaps_base_oversubscribe=1
unset OPENBLAS_NUM_THREADS # the issue's runs left OpenBLAS its default threads
py=/usr/bin/python3
mk=$src/tests/cli/hostile_model.py
fixture=$src/tests/data/kjv-tiny
job=$src/jobs/kjv-tiny.ini
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out_h5=$tmp/out.h5
first_only() { [ "$sanitized" = 1 ]; } # the sanitizer build's quick mode
limit=$([ "$sanitized" = 1 ] && echo 600 || echo 120) # seconds: a hang guard, far above any run (a few s)

nothing_at() { # nothing_at PATH what
  [ ! -e "$1" ] && [ ! -e "$1.partial" ] && ok || bad "$2: something was left at $1"
}
not_hung() { # after run: timeout's 124 means the program hung
  if [ "$rc" -ne 124 ]; then ok; else bad "$1: still running after ${limit} s (hang)"; fi
}
model() { # model NAME: a fresh copy of the fixture, its path on stdout
  rm -rf "$tmp/$1"
  "$py" "$mk" copy "$fixture" "$tmp/$1" && echo "$tmp/$1"
}
job_on() { # job_on MODEL_DIR [--set ...]: the whole job, bounded
  local dir=$1
  shift
  run timeout "$limit" "$bin" "$job" --set "model.path=$dir" --set "output.path=$out_h5" "$@"
}
case_end() { # case_end CODE TEXT what: the usual four checks
  expect_rc "$1" "$3"; expect_err "$2" "$3"; expect_one_error_line "$3"; nothing_at "$out_h5" "$3"
  not_hung "$3"
}

# ---- tokenizer.json ---------------------------------------------------------------
d=$(model tok1e9)
"$py" "$mk" vocab-id "$d" "<unk>" 1000000000
if [ "$sanitized" = 1 ]; then
  job_on "$d"
else # the issue's crash needed a memory limit (the calloc failed)
  run bash -c 'ulimit -v 1500000; exec timeout "$0" "$1" "$2" --set "model.path=$3" --set "output.path=$4"' \
    "$limit" "$bin" "$job" "$d" "$out_h5"
fi
case_end 4 "tokenizer.json: vocab entry '<unk>' has id 1000000000" "vocab id 10^9"
d=$(model tokmax)
"$py" "$mk" vocab-id "$d" "<unk>" 2147483647
job_on "$d"
case_end 4 "vocab entry '<unk>' has id 2147483647" "vocab id 2^31-1"

# ---- config.json ---------------------------------------------------------------------
for key in num_attention_heads head_dim num_key_value_heads; do
  d=$(model "cfg-$key")
  "$py" "$mk" config-append "$d" "\"$key\": 1000000000"
  job_on "$d"
  case_end 4 "config.json: key '$key' must be an integer in [1, 16777216]" "$key = 1e9"
  first_only && break
done
for member in '"rope_theta": 1e999' '"rms_norm_eps": 1e999' \
  '"rope_scaling": {"rope_type": "linear", "factor": 1e999}'; do
  key=$(sed -E 's/.*"([a-z_]+)": 1e999.*/\1/' <<<"$member")
  d=$(model "inf-$key")
  "$py" "$mk" config-append "$d" "$member"
  job_on "$d"
  case_end 4 "key '$key' must be a finite positive number" "$key = 1e999"
  first_only && break
done
# a duplicated key: raana must read what Python's json (Hugging Face) reads
d=$(model dup)
"$py" "$mk" config-append "$d" '"num_hidden_layers": 2'
want=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"] * 7)' \
  "$d/config.json")
run timeout "$limit" "$bin" --dry-run "$job" --set "model.path=$d"
expect_rc 0 "duplicated key"; expect_out "in $want linear layers" "duplicated key (Python: $want)"

# ---- config.ini -------------------------------------------------------------------------
printf '[model]\npath = %s\n[calibration]\nseq_len = 1\n[output]\npath = %s\n' "$fixture" "$out_h5" \
  >"$tmp/seq1.ini"
run timeout "$limit" "$bin" "$tmp/seq1.ini"
case_end 3 "$tmp/seq1.ini:4: [calibration] seq_len: 1 is too short" "seq_len = 1"
{
  printf '[model]\npath = %s\n[quantize]\navg_bits = 0.' "$fixture"
  printf '0%.0s' $(seq 300)
  printf '3\n[output]\npath = %s\n' "$out_h5"
} >"$tmp/long.ini"
run timeout "$limit" "$bin" "$tmp/long.ini"
case_end 3 "$tmp/long.ini:4: line longer than 198 characters" "long line"
if grep -q "out of range" <<<"$errout"; then bad "long line: still blamed on avg_bits"; else ok; fi
run timeout "$limit" "$bin" --print-config "$job" --set quantize.seed=010
expect_rc 0 "seed 010"; expect_out "seed = 10" "seed 010 is decimal"
printf '[model]\npath = %s\n[quantize]\nseed = 010\n' "$fixture" >"$tmp/seed.ini"
run timeout "$limit" "$bin" --print-config "$tmp/seed.ini"
expect_out "seed = 10" "seed = 010 in a file"
run timeout "$limit" "$bin" "$job" --set "output.path=$tmp/a ;b.h5"
case_end 3 "contains ' ;' (the start of a comment), which config.ini cannot hold" "path with ' ;'"
run timeout "$limit" "$bin" "$job" --set "output.path=$tmp/a
b.h5"
case_end 3 "contains a line break" "path with a newline"
mkdir -p "$tmp/x ;y"
printf '[model]\npath = %s\n[output]\npath = out.h5\n' "$fixture" >"$tmp/x ;y/job.ini"
run timeout "$limit" "$bin" --print-config "$tmp/x ;y/job.ini"
expect_rc 3 "config in a ' ;' directory"; expect_err "$tmp/x ;y/job.ini:4:" "config in a ' ;' directory"
# what is accepted reads back the same
run timeout "$limit" "$bin" --print-config "$job" --set "output.path=$tmp/a;b #c.h5"
expect_rc 0 "path with ';' and '#'"
printf '%s\n' "$out" >"$tmp/printed.ini"
first=$out
run timeout "$limit" "$bin" --print-config "$tmp/printed.ini"
[ "$out" = "$first" ] && ok || bad "a path with ';' and '#' does not read back"

# ---- non-regular files ---------------------------------------------------------------
for file in model.safetensors tokenizer.json config.json; do
  d=$(model "fifo-$file")
  rm "$d/$file" && mkfifo "$d/$file"
  job_on "$d"
  case_end 4 "$d/$file: is a FIFO (named pipe), not a regular file" "FIFO as $file"
  first_only && break
done
d=$tmp/fifo-shard
cp -r "$fixture/sharded" "$d"
rm "$d/model-00002-of-00002.safetensors" && mkfifo "$d/model-00002-of-00002.safetensors"
job_on "$d"
case_end 4 "model-00002-of-00002.safetensors: is a FIFO" "FIFO as a shard"
d=$(model dev-shard)
rm "$d/model.safetensors" && ln -s /dev/zero "$d/model.safetensors"
job_on "$d"
case_end 4 "is a character device" "/dev/zero as the weights"
d=$(model dir-config)
rm "$d/config.json" && mkdir "$d/config.json"
job_on "$d"
case_end 4 "$d/config.json: is a directory" "a directory as config.json"
mkfifo "$tmp/job.fifo"
run timeout "$limit" "$bin" "$tmp/job.fifo"
case_end 3 "$tmp/job.fifo: is a FIFO" "FIFO as the config file"
run timeout "$limit" "$eval_bin" --model "$fixture" --text "$tmp/job.fifo" --seq-len 64
expect_rc 4 "FIFO as raana-eval's text"; expect_err "is a FIFO" "FIFO as raana-eval's text"
not_hung "FIFO as raana-eval's text"

# ---- tensor names ------------------------------------------------------------------------
for name in extra/evil . ''; do
  d=$(model "name-${name//\//_}x")
  "$py" "$mk" extra-tensor "$d" "$name"
  job_on "$d"
  case_end 4 "tensor name '$name'" "tensor name '$name'"
  first_only && break
done

# ---- the candidate 16 (keep the 16-bit weight) on an F32 weight ----------------------------
d=$(model f32)
"$py" "$mk" f32-weight "$d" model.layers.1.mlp.up_proj.weight
job_on "$d" --set "quantize.bits=1,2,3,4,16" --dry-run
case_end 3 "[quantize] bits lists 16, which keeps a layer's 16-bit weight as stored, but model.layers.1.mlp.up_proj.weight is F32" \
  "bits 16 with an F32 weight"
job_on "$d" --set "quantize.bits=1,2,3,4,16" --set "quantize.exclude=*.up_proj" --dry-run
expect_rc 0 "bits 16 with the F32 weight excluded"

# ---- a finite weight of 3.39e38 ----------------------------------------------------------
d=$(model big)
"$py" "$mk" big-weight "$d" model.layers.0.self_attn.q_proj.weight
job_on "$d"
case_end 9 "model.layers.0.self_attn.q_proj.weight: calibration statistic grad_rms" "weight 3.39e38"
expect_err "the largest weight norm is 3.38" "weight 3.39e38 names the cause"

# ---- memory limits ------------------------------------------------------------------------
limited() { # limited KB CMD...: CMD under ulimit -v KB
  local kb=$1
  shift
  run bash -c 'ulimit -v "$0"; exec "$@"' "$kb" timeout "$limit" "$@"
}
if [ "$sanitized" != 1 ]; then
  # 100 MB: "cannot mmap", exit 5; 200-500 MB: spun in OpenBLAS's blas_memory_alloc
  for mb in 100 200 300 450; do
    limited $((mb * 1024)) "$bin" "$job" --set "output.path=$out_h5"
    case_end 6 "out of memory" "raana-mpi under ulimit -v $mb MB"
    expect_err "MiB" "raana-mpi under ulimit -v $mb MB names sizes"
  done
  limited $((450 * 1024)) "$bin" "$job" --set "output.path=$out_h5"
  expect_err "rank 0 on " "ulimit -v 450 MB names the rank"
  expect_err "RLIMIT_AS" "ulimit -v 450 MB names the limit"
  limited $((300 * 1024)) "$eval_bin" --model "$fixture" --text "$fixture/heldout.txt" --seq-len 256
  expect_rc 6 "raana-eval under ulimit -v 300 MB"; not_hung "raana-eval under ulimit -v 300 MB"
  for np in 1 2; do
    limited $((300 * 1024)) "$mpiexec" -n $np "$bin" "$job" --set "output.path=$out_h5"
    expect_rc 6 "$np ranks under ulimit -v 300 MB"; expect_err "out of memory" "$np ranks, 300 MB"
    nothing_at "$out_h5" "$np ranks, 300 MB"; not_hung "$np ranks under ulimit -v 300 MB"
  done
fi
# a memory cgroup with 90 MiB free (a fake hierarchy mirroring /proc/self/cgroup)
cg=$tmp/cgroup
fake_cgroup "$cg" 104857600 10485760
for np in 1 2; do
  run timeout "$limit" "$mpiexec" -n $np -x RAANA_CGROUP_ROOT="$cg" "$bin" "$job" --set "output.path=$out_h5"
  expect_rc 6 "$np ranks in a 100 MiB cgroup"
  expect_err "out of memory before starting" "$np ranks in a 100 MiB cgroup"
  expect_err "memory cgroup ($cg" "$np ranks in a 100 MiB cgroup names it"
  expect_err "90 MiB free" "$np ranks in a 100 MiB cgroup: sizes"
  expect_err "rank 0 on " "$np ranks in a 100 MiB cgroup: the rank"
  expect_one_error_line "$np ranks in a 100 MiB cgroup"
  nothing_at "$out_h5" "$np ranks in a 100 MiB cgroup"; not_hung "$np ranks in a 100 MiB cgroup"
done
run timeout "$limit" env RAANA_CGROUP_ROOT="$cg" "$eval_bin" --model "$fixture" \
  --text "$fixture/heldout.txt" --seq-len 256
expect_rc 6 "raana-eval in a 100 MiB cgroup"; expect_err "memory cgroup" "raana-eval in a cgroup"
finish

#!/usr/bin/env bash
# test_output_paths.sh — the paths a job writes next to OUTPUT (issue 15):
# a symbolic link at OUTPUT.resume, OUTPUT.partial, OUTPUT.lock or OUTPUT
# is never followed and its target is left as it was; files the user left
# in OUTPUT.resume/ are named and left alone; an early failure leaves no
# empty OUTPUT.resume/; a SIGTERM during the removal of OUTPUT.resume/ waits
# for it, a SIGKILL leaves OUTPUT.resume.removing that the next job on the
# output deletes; a second job on the same output stops at once naming the
# holder of OUTPUT.lock, and a lock left by a dead job is taken over; the
# reservation is still held in OUTPUT.partial when the writing starts; a
# 300-character output path works on 1 and 2 ranks. Each job that succeeds
# must give a container identical to a lone run's (outside /provenance).
# Usage: test_output_paths.sh RAANA_MPI PLUGIN_DIR SOURCE_DIR MPIEXEC
set -u
bin=$1 plugin_dir=$2 src=$3 mpiexec=$4
. "$src/tests/cli/lib.sh"
mpi_test_env
unset OMPI_MCA_sharedfp RAANA_FAULT_INJECT SLURM_JOB_ID
py=/usr/bin/python3
tmp=$(mktemp -d)
held_pid=
trap '[ -n "$held_pid" ] && kill -CONT "$held_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
job=$src/jobs/kjv-tiny.ini
dst=$tmp/out.h5
host=$(hostname)
T="timeout 300"

raana() { run $T "$bin" "$job" --set "output.path=$dst" "$@"; }
same_as_lone() { # same_as_lone FILE what [--ignore config.ini]
  HDF5_PLUGIN_PATH=$plugin_dir "$py" "$src/tests/py/compare_containers.py" "$tmp/lone.h5" "$1" \
    "${@:3}" >/dev/null && ok || bad "$2: container differs from a lone run's"
}
nothing_at() { # nothing_at what: no output, partial, lock or resume directory
  local p
  for p in "$dst" "$dst.partial" "$dst.lock" "$dst.resume" "$dst.resume.removing"; do
    [ ! -e "$p" ] && [ ! -L "$p" ] && ok || bad "$1: $p was left behind"
  done
}
same_text() { # same_text FILE TEXT what
  [ -f "$1" ] && [ ! -L "$1" ] && [ "$(cat "$1")" = "$2" ] && ok || bad "$3: $1 was changed"
}
nothing_at_but_out() { # what: only OUTPUT
  [ ! -e "$dst.lock" ] && [ ! -e "$dst.resume" ] && [ ! -e "$dst.partial" ] && ok ||
    bad "$1: leftovers next to the output"
}
fresh() { rm -rf "$dst" "$dst".*; }

# the reference, at the same path (the container keeps config.ini, path included)
run $T "$bin" "$job" --set "output.path=$dst"
expect_rc 0 "lone run"
mv "$dst" "$tmp/lone.h5"

# ---- symbolic links are never followed --------------------------------------
mkdir -p "$tmp/victim/layers"
echo "user data" >"$tmp/victim/a.txt"
echo "user layer" >"$tmp/victim/layers/b.bin"
ln -s "$tmp/victim" "$dst.resume"
raana
expect_rc 5 "OUTPUT.resume is a link"
expect_err "$dst.resume is a symbolic link" "OUTPUT.resume is a link"
expect_one_error_line "OUTPUT.resume is a link"
same_text "$tmp/victim/a.txt" "user data" "OUTPUT.resume is a link"
same_text "$tmp/victim/layers/b.bin" "user layer" "OUTPUT.resume is a link"
[ -L "$dst.resume" ] && ok || bad "OUTPUT.resume is a link: the link itself was removed"
rm "$dst.resume"
nothing_at "OUTPUT.resume is a link"

echo "user file" >"$tmp/victim.txt"
ln -s "$tmp/victim.txt" "$dst.partial"
raana
expect_rc 5 "OUTPUT.partial is a link"
expect_err "$dst.partial is a symbolic link" "OUTPUT.partial is a link"
expect_one_error_line "OUTPUT.partial is a link"
same_text "$tmp/victim.txt" "user file" "OUTPUT.partial is a link"
[ ! -e "$dst" ] && [ ! -L "$dst" ] && ok || bad "OUTPUT.partial is a link: OUTPUT exists"
rm "$dst.partial"
nothing_at "OUTPUT.partial is a link"

ln -s "$tmp/victim.txt" "$dst.lock"
raana
expect_rc 5 "OUTPUT.lock is a link"; expect_err "$dst.lock is a symbolic link" "OUTPUT.lock"
same_text "$tmp/victim.txt" "user file" "OUTPUT.lock is a link"
rm "$dst.lock"
nothing_at "OUTPUT.lock is a link"

# OUTPUT itself a link: replaced by the container (overwrite), target kept
ln -s "$tmp/victim.txt" "$dst"
raana --set output.overwrite=true
expect_rc 0 "OUTPUT is a link"
same_text "$tmp/victim.txt" "user file" "OUTPUT is a link"
[ -f "$dst" ] && [ ! -L "$dst" ] && ok || bad "OUTPUT is a link: not replaced by a regular file"
same_as_lone "$dst" "OUTPUT was a link"
fresh

# ---- files the user left in OUTPUT.resume/ -----------------------------------
mkdir "$dst.resume"
echo "notes" >"$dst.resume/notes.txt"
raana
expect_rc 5 "user file in OUTPUT.resume"
expect_err "holds 1 file raana did not create (it has no MANIFEST): notes.txt" \
  "user file in OUTPUT.resume"
expect_one_error_line "user file in OUTPUT.resume"
same_text "$dst.resume/notes.txt" "notes" "user file in OUTPUT.resume"
[ "$(ls -A "$dst.resume")" = notes.txt ] && ok || bad "user file in OUTPUT.resume: dir changed"
fresh

# ... and in the directory of an interrupted job: refused, then resumed
run $T env RAANA_FAULT_INJECT=quantize:0:5 "$bin" "$job" --set "output.path=$dst"
[ "$rc" -ne 0 ] && [ -f "$dst.resume/MANIFEST" ] && ok || bad "kill in quantize: rc $rc"
echo "mine" >"$dst.resume/layers/mine.txt"
# a link named as a layer file the killed job had not written yet (which
# layers finish first follows the quantize stage's cost order)
link=
for b in 3 2 1 0; do
  for p in mlp.down_proj mlp.up_proj mlp.gate_proj self_attn.o_proj self_attn.q_proj; do
    [ -n "$link" ] || [ -e "$dst.resume/layers/model.layers.$b.$p.bin" ] ||
      link=model.layers.$b.$p.bin
  done
done
[ -n "$link" ] && ok || bad "interrupted job: every layer name already written"
ln -s "$tmp/victim.txt" "$dst.resume/layers/$link"
raana
expect_rc 5 "user files in an interrupted job's OUTPUT.resume"
expect_err "holds 2 files raana did not create" "interrupted job's OUTPUT.resume"
expect_err "layers/mine.txt" "interrupted job's OUTPUT.resume"
expect_err "layers/$link (a symbolic link)" "interrupted job's OUTPUT.resume"
same_text "$dst.resume/layers/mine.txt" "mine" "interrupted job's OUTPUT.resume"
[ -f "$dst.resume/calibration.bin" ] && ok || bad "interrupted job's resume files were deleted"
same_text "$tmp/victim.txt" "user file" "interrupted job's OUTPUT.resume"
rm "$dst.resume/layers/mine.txt" "$dst.resume/layers/$link"
raana
expect_rc 0 "resume after moving the user files out"; expect_out "(resumed)" "resume"
same_as_lone "$dst" "resumed after user files"
fresh

# ---- no empty OUTPUT.resume/ after an early failure --------------------------
raana --set calibration.source=text --set "calibration.text_file=$tmp/missing.txt"
expect_rc 4 "missing calibration text"; expect_err "missing.txt: cannot open" "missing text"
nothing_at "missing calibration text"

# ---- signals while OUTPUT.resume/ is removed ---------------------------------
run $T env RAANA_FAULT_INJECT=remove:0:3:term "$bin" "$job" --set "output.path=$dst"
expect_rc 143 "SIGTERM during removal (dies by it, after the removal)"
expect_out "wrote $dst" "SIGTERM during removal"
[ -f "$dst" ] && ok || bad "SIGTERM during removal: no output"
for p in "$dst.resume" "$dst.resume.removing" "$dst.lock" "$dst.partial"; do
  [ ! -e "$p" ] && ok || bad "SIGTERM during removal: $p left behind"
done
same_as_lone "$dst" "SIGTERM during removal"
fresh

run $T env RAANA_FAULT_INJECT=remove:0:3 "$bin" "$job" --set "output.path=$dst"
expect_rc 137 "SIGKILL during removal"
[ -f "$dst" ] && [ -d "$dst.resume.removing" ] && [ ! -e "$dst.resume" ] && ok ||
  bad "SIGKILL during removal: expected OUTPUT and OUTPUT.resume.removing only"
cp "$dst" "$tmp/killed.h5"
raana --set output.overwrite=false
expect_rc 3 "the next job on a finished output"; expect_err "output exists" "next job"
expect_err "removed $dst.resume.removing, left by an interrupted job" "next job"
[ ! -e "$dst.resume.removing" ] && [ ! -e "$dst.lock" ] && ok || bad "next job: leftovers"
cmp -s "$dst" "$tmp/killed.h5" && ok || bad "next job: the finished output was changed"
same_as_lone "$dst" "SIGKILL during removal"
fresh

# ---- two jobs on one output --------------------------------------------------
# the first stops itself right after taking the lock (SIGSTOP), the second
# runs meanwhile on 2 ranks, then the first continues
$T env RAANA_FAULT_INJECT=locked:0:1:stop SLURM_JOB_ID=4242 "$bin" "$job" \
  --set "output.path=$dst" >"$tmp/a.out" 2>"$tmp/a.err" &
a_timeout=$!
for _ in $(seq 600); do # until it is stopped, at most 60 s
  held_pid=$(sed -n 's/^host=.* pid=\([0-9]*\) job=4242$/\1/p' "$dst.lock" 2>/dev/null)
  [ -n "$held_pid" ] && [ "$(awk '{print $3}' "/proc/$held_pid/stat" 2>/dev/null)" = T ] && break
  held_pid=
  sleep 0.1
done
[ -n "$held_pid" ] && ok || bad "first job: never stopped holding the lock"
run $T "$mpiexec" -n 2 "$bin" "$job" --set "output.path=$dst"
expect_rc 5 "second job on the same output"
expect_err "$dst.lock: another job is writing this output: pid $held_pid on host $host (Slurm job 4242) holds the lock" \
  "second job"
expect_one_error_line "second job"
[ ! -e "$dst" ] && [ ! -e "$dst.resume" ] && [ ! -e "$dst.partial" ] && ok ||
  bad "second job wrote something"
[ -n "$held_pid" ] && kill -CONT "$held_pid"
wait "$a_timeout"
a_rc=$? held_pid=
[ "$a_rc" -eq 0 ] && ok || bad "first job: exit $a_rc: $(cat "$tmp/a.err")"
same_as_lone "$dst" "first job after the second was refused"
nothing_at_but_out "two jobs"
fresh

# a lock file left by a job that is gone (no one holds the flock)
sh -c 'exit 0' &
dead=$!
wait "$dead"
echo "host=$host pid=$dead job=-" >"$dst.lock"
raana
expect_rc 0 "stale lock"
expect_err "lock: taking over $dst.lock from pid $dead on host $host, which is no longer running" \
  "stale lock"
same_as_lone "$dst" "stale lock"; nothing_at_but_out "stale lock"
fresh

# the flock held by some other process while the recorded job is gone
echo "host=$host pid=$dead job=-" >"$dst.lock"
run $T flock -o "$dst.lock" "$bin" "$job" --set "output.path=$dst"
expect_rc 0 "lock held for a dead job"
expect_err "names pid $dead on host $host, which is gone, but another process holds it" \
  "lock held for a dead job"
same_as_lone "$dst" "lock held for a dead job"
fresh

# ... and while the recorded process is alive: refused, naming it
echo "host=$host pid=$$ job=-" >"$dst.lock"
run $T flock -o "$dst.lock" "$bin" "$job" --set "output.path=$dst"
expect_rc 5 "lock held by a live process"
expect_err "another job is writing this output: pid $$ on host $host holds the lock" "live holder"
[ "$(cat "$dst.lock")" = "host=$host pid=$$ job=-" ] && ok || bad "live holder: record changed"
fresh

# ---- the reservation is held when writing starts -----------------------------
# killed after the first dataset: OUTPUT.partial still has the blocks
run $T env RAANA_FAULT_INJECT=write:0:1 "$bin" "$job" --set "output.path=$dst"
expect_rc 137 "kill after the first dataset"
reserved=$(sed -n 's/^[0-9TZ:-]* write: .*\.partial (\([0-9]*\) bytes reserved)$/\1/p' <<<"$errout")
read -r blocks size < <(stat -c '%b %s' "$dst.partial" 2>/dev/null || echo 0 0)
[ -n "$reserved" ] && [ $((blocks * 512)) -ge "$reserved" ] && [ "$size" -lt "$reserved" ] && ok ||
  bad "reservation: ${reserved:-no} bytes reserved, $((blocks * 512)) allocated, size $size"
raana
expect_rc 0 "rerun over a killed job's OUTPUT.partial"
same_as_lone "$dst" "rerun over OUTPUT.partial"
[ -n "$reserved" ] && [ $(($(stat -c %b "$dst") * 512)) -lt "$reserved" ] && ok ||
  bad "the unused reservation was not given back: $(stat -c '%b blocks' "$dst")"
fresh

# ---- long paths --------------------------------------------------------------
long=$tmp/$(printf 'd%.0s' $(seq 120))
mkdir -p "$long"
lp=$long/$(printf 'x%.0s' $(seq $((296 - ${#long}))) ).h5
[ ${#lp} -eq 300 ] && ok || bad "long path is ${#lp} characters"
for n in 1 2; do
  run $T "$mpiexec" -n $n "$bin" "$job" --set "output.path=$lp"
  expect_rc 0 "300-character path on $n rank(s)"
  same_as_lone "$lp" "300-character path on $n rank(s)" --ignore config.ini
  [ "$(ls -A "$long")" = "$(basename "$lp")" ] && ok || bad "long path, $n ranks: leftovers"
  rm -f "$lp"
done
run $T env OMPI_MCA_sharedfp=lockedfile "$mpiexec" -n 2 "$bin" "$job" --set "output.path=$lp"
expect_rc 3 "lockedfile forced"
expect_err "the path is 300 characters; Open MPI's sharedfp component 'lockedfile'" "lockedfile"
expect_one_error_line "lockedfile forced"
[ -z "$(ls -A "$long")" ] && ok || bad "lockedfile forced: leftovers"
name=$tmp/$(printf 'n%.0s' $(seq 245))
run $T "$bin" "$job" --set "output.path=$name"
expect_rc 3 "name too long for the suffixes"
expect_err "the file name is 245 bytes; raana adds up to 16 more" "long name"
[ -z "$(ls -A "$tmp" | grep '^nnnn')" ] && ok || bad "long name: leftovers"
finish

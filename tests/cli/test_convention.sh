#!/usr/bin/env bash
# test_convention.sh — the command-line convention every tool shares
# (src/tools/cli.h, issue 14), checked the same way for each: the --help
# layout (Usage line, blank, description, blank, Options: with the texts in
# one column), every option --help lists is known to the parser, an unknown
# option and a missing value are named with exit 2, `--opt=value` and
# `--opt value` are the same, and options may follow the operands; --help,
# --version and the operand count, which cli.c handles for every tool.
# Usage: test_convention.sh RAANA_MPI RAANA_EVAL RAANA_EXPORT SOURCE_DIR
set -u
mpi_bin=$1 eval_bin=$2 export_bin=$3 src=$4
. "$src/tests/cli/lib.sh"
py=/usr/bin/python3
job=$src/jobs/kjv-tiny.ini

# --help: the shared layout, checked line by line
tmp_err=$(mktemp)
trap 'rm -f "$tmp_err"' EXIT
layout_checker=$(cat <<'PY'
import re, sys
tool, usage = sys.argv[1], sys.argv[2]
lines = sys.stdin.read().split("\n")
assert lines[0] == f"Usage: {tool} {usage}", f"first line {lines[0]!r}"
assert lines[1] == "", "no blank line after Usage"
assert lines[2] and not lines[2].startswith(" "), "no description paragraph"
i = lines.index("Options:")
assert lines[i - 1] == "", "no blank line before Options:"
columns = set()
for line in lines[i + 1:]:
    if not line:
        break
    m = re.match(r"^  (-[A-Za-z], )?--[a-z][a-z0-9-]*( [A-Z][A-Za-z0-9.=_]*)? +(\S)", line)
    if m:
        columns.add(m.start(3))
    else:
        assert re.match(r"^ +\S", line), f"not an option line: {line!r}"
assert len(columns) == 1, f"option texts start in columns {sorted(columns)}"
PY
)
check_help() { # check_help TOOL BIN USAGE_ARGS
  run "$2" --help
  expect_rc 0 "$1 --help"
  if "$py" -c "$layout_checker" "$1" "$3" <<<"$out" 2>"$tmp_err"; then ok; else
    bad "$1 --help layout: $(tail -1 "$tmp_err")"
  fi
}
check_help raana-mpi "$mpi_bin" "[OPTIONS] CONFIG.ini"
check_help raana-eval "$eval_bin" "[OPTIONS] --text FILE"
check_help raana-export "$export_bin" "[OPTIONS] CONTAINER.h5 OUTDIR"

# every option in --help is one the parser knows: a flag is not "unknown",
# an option with a value given none names it as needing one
check_options() { # check_options TOOL BIN
  local help line name value
  help=$("$2" --help)
  while read -r name value; do
    run "$2" "$name"
    if [ -n "$value" ]; then
      expect_rc 2 "$1 $name without its value"
      expect_err "$1: error: option '$name' needs a value" "$1 $name without its value"
    elif grep -q "unknown option" <<<"$errout"; then
      bad "$1 $name: listed in --help but unknown: $errout"
    else
      ok
    fi
  done < <(sed -nE 's/^  (-[A-Za-z], )?(--[a-z][a-z0-9-]*)( ([A-Z][A-Za-z0-9.=_]*))?( .*)?$/\2 \4/p' <<<"$help")
}
check_options raana-mpi "$mpi_bin"
check_options raana-eval "$eval_bin"
check_options raana-export "$export_bin"

# unknown options, with and without a value, long and short, named exactly
for bin in "$mpi_bin" "$eval_bin" "$export_bin"; do
  tool=$(basename "$bin")
  for arg in --frobnicate --frobnicate=3 -Z; do
    run "$bin" "$arg"
    expect_rc 2 "$tool $arg"
    expect_err "$tool: error: unknown option '${arg%%=*}' (see --help)" "$tool $arg"
    n=$(grep -c . <<<"$errout")
    [ "$n" -eq 1 ] && ok || bad "$tool $arg: $n lines on stderr"
  done
  run "$bin" --help=yes
  expect_rc 2 "$tool --help=yes"; expect_err "$tool: error: option '--help' takes no value" "$tool --help=yes"
done

# --help and --version come from cli.c in every tool: -h is --help, the
# version is raana-mpi's, --help wins over --version, and a process that is
# not the launcher's first (OMPI_COMM_WORLD_RANK=1) prints nothing
version=$("$mpi_bin" --version | sed -n 's/^raana-mpi //p')
[[ "$version" =~ ^[0-9]+\.[0-9]+ ]] && ok || bad "raana-mpi --version: '$version'"
for bin in "$mpi_bin" "$eval_bin" "$export_bin"; do
  tool=$(basename "$bin")
  run "$bin" -V
  expect_rc 0 "$tool -V"
  [ "$out" = "$tool $version" ] && ok || bad "$tool -V: '$out', not '$tool $version'"
  help=$("$bin" --help)
  run "$bin" -h
  [ "$out" = "$help" ] && ok || bad "$tool -h is not --help"
  run "$bin" --version --help
  [ "$out" = "$help" ] && ok || bad "$tool --version --help: not the help text"
  run env OMPI_COMM_WORLD_RANK=1 "$bin" --help
  expect_rc 0 "$tool --help on rank 1"
  [ -z "$out" ] && ok || bad "$tool --help on rank 1 printed $(wc -l <<<"$out") lines"
done

# operands counted by cli.c from the spec: the missing ones and the first
# one too many are named
run "$mpi_bin"
expect_rc 2 "raana-mpi without CONFIG"; expect_err "raana-mpi: error: missing CONFIG.ini (see --help)" "raana-mpi without CONFIG"
run "$mpi_bin" a.ini b.ini
expect_rc 2 "raana-mpi a.ini b.ini"; expect_err "raana-mpi: error: unexpected argument 'b.ini' (see --help)" "raana-mpi a.ini b.ini"
run "$export_bin"
expect_rc 2 "raana-export"; expect_err "raana-export: error: missing CONTAINER.h5 OUTDIR (see --help)" "raana-export without operands"
run "$export_bin" --overwrite a.h5
expect_rc 2 "raana-export a.h5"; expect_err "raana-export: error: missing OUTDIR (see --help)" "raana-export a.h5"
run "$export_bin" a.h5 out more
expect_rc 2 "raana-export a.h5 out more"; expect_err "raana-export: error: unexpected argument 'more' (see --help)" "raana-export a.h5 out more"
run "$eval_bin" --text x --model y z
expect_rc 2 "raana-eval z"; expect_err "raana-eval: error: unexpected argument 'z' (see --help)" "raana-eval z"
# a usage error is the same in every process of a launch: the first reports it
for bin in "$mpi_bin" "$eval_bin" "$export_bin"; do
  tool=$(basename "$bin")
  run env OMPI_COMM_WORLD_RANK=1 "$bin" --frobnicate
  expect_rc 2 "$tool --frobnicate on rank 1"
  [ -z "$errout" ] && ok || bad "$tool --frobnicate on rank 1 said: $errout"
done

# --opt=value is --opt value, and options may come after the operands
run "$mpi_bin" --print-config --set=calibration.seq_len=77 "$job"
a=$out
run "$mpi_bin" "$job" --set calibration.seq_len=77 --print-config
expect_rc 0 "raana-mpi CONFIG --set K=V --print-config"
[ "$a" = "$out" ] && ok || bad "raana-mpi: --set=K=V and CONFIG --set K=V differ"
grep -qx "seq_len = 77" <<<"$out" && ok || bad "raana-mpi: --set calibration.seq_len=77 not applied"
run "$eval_bin" --text x --model=y --stride=abc
expect_rc 2 "raana-eval --stride=abc"; expect_err "raana-eval: error: --stride abc: expected an integer" "--stride=abc"
run "$eval_bin" --stride abc --model y --text x
expect_err "raana-eval: error: --stride abc: expected an integer" "--stride abc"
run "$export_bin" a.h5 --max-shard-size=12XB out
expect_rc 2 "raana-export --max-shard-size=12XB"; expect_err "--max-shard-size 12XB: expected" "--max-shard-size=12XB"
run "$export_bin" --max-shard-size 12XB a.h5 out
expect_err "--max-shard-size 12XB: expected" "--max-shard-size 12XB before the operands"
finish

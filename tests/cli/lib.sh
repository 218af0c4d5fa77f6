# lib.sh — assertions for the shell-level tests: run a command, check its
# exit code and that stderr/stdout contain given text. Each test file ends
# with `finish`, which prints "N passed, N failed" and sets the exit code.
passed=0
failed=0

# run CMD...: runs it, keeping status in $rc, stdout in $out, stderr in $errout
run() {
  local o e
  o=$(mktemp) e=$(mktemp)
  "$@" >"$o" 2>"$e"
  rc=$?
  out=$(cat "$o")
  errout=$(cat "$e")
  rm -f "$o" "$e"
}

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

expect_rc() { # expect_rc CODE what
  if [ "$rc" -eq "$1" ]; then ok; else bad "$2: exit $rc, expected $1; stderr: $errout"; fi
}
expect_err() { # expect_err TEXT what
  if grep -qF -- "$1" <<<"$errout"; then ok; else bad "$2: stderr lacks '$1': $errout"; fi
}
expect_out() { # expect_out TEXT what
  if grep -qF -- "$1" <<<"$out"; then ok; else bad "$2: stdout lacks '$1'"; fi
}
# exactly one line on stderr from raana (mpirun may add its own lines after)
expect_one_error_line() {
  local n
  n=$(grep -c '^raana-mpi: error:' <<<"$errout")
  if [ "$n" -eq 1 ]; then ok; else bad "$1: $n error lines: $errout"; fi
}

finish() {
  echo "$(basename "$0"): $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

#!/usr/bin/env bash
# check-format.sh — every C source and header under src/, include/ and tests/
# is formatted as .clang-format says (clang-format --dry-run -Werror); lists
# the files that differ and exits 1 if any does. tests/run.sh runs it first.
#   CLANG_FORMAT=PROGRAM   the clang-format to use (default: clang-format)
set -euo pipefail
cd "$(dirname "$0")/.."
clang_format=${CLANG_FORMAT:-clang-format}
command -v "$clang_format" >/dev/null ||
  { echo "check-format: $clang_format not found (apt-get install clang-format)"; exit 1; }
mapfile -t files < <(find src include tests -type f \( -name '*.c' -o -name '*.h' \) | sort)
[ "${#files[@]}" -gt 0 ] || { echo "check-format: no C files found"; exit 1; }
bad=()
for f in "${files[@]}"; do
  "$clang_format" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ "${#bad[@]}" -gt 0 ]; then
  printf 'check-format: %d of %d files differ from .clang-format (run clang-format -i on them):\n' \
    "${#bad[@]}" "${#files[@]}"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"

#!/usr/bin/env bash
# Prints the compile-fail table of doc/compile-errors.md: for every case in test/compile_fail/, what it
# misuses (its first comment line), the message it must produce, and how many lines of g++ and of clang++
# output the misuse costs. Each case is checked as the test suite checks it (test/compile_fail/run.sh: the
# misuse must fail with its message, one error, within the line bound; the twin must compile with g++).
# Usage: bash scripts/compile_errors.sh     (CXX and CLANGXX pick the compilers; default g++, clang++-14)
set -uo pipefail
cd "$(dirname "$0")/.."
cxx=${CXX:-g++}
clangxx=${CLANGXX:-clang++-14}
lines_of() { sed -n 's/.* \([0-9]*\) lines of diagnostics.*/\1/p' <<<"$1"; }
echo "| case | misuse | message (excerpt) | lines of g++ output | lines of clang++ output |"
echo "|---|---|---|---|---|"
status=0
for src in test/compile_fail/*.cpp; do
  name=$(basename "$src" .cpp)
  what=$(sed -n '1s|^// ||p' "$src" | sed 's/|/\\|/g')
  expect=$(sed -n 's|^// expect: ||p' "$src" | head -n 1 | sed 's/|/\\|/g')
  out=$(bash test/compile_fail/run.sh "$src" -- "$cxx" -std=c++20 -Iinclude 2>&1)
  gcc_lines=$(lines_of "$out")
  if ! grep -q "ok: twin compiles" <<<"$out"; then status=1; gcc_lines="FAILED (${gcc_lines:-?})"; fi
  out=$(bash test/compile_fail/run.sh "$src" --no-twin -- "$clangxx" -std=c++20 -Iinclude 2>&1)
  clang_lines=$(lines_of "$out")
  if ! grep -q "^ok: fails" <<<"$out"; then status=1; clang_lines="FAILED (${clang_lines:-?})"; fi
  echo "| \`$name\` | $what | \`$expect\` | ${gcc_lines:-FAILED} | ${clang_lines:-FAILED} |"
done
exit $status

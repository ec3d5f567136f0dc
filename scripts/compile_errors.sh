#!/usr/bin/env bash
# Prints the compile-fail table of doc/compile-errors.md: for every case in test/compile_fail/, what it
# misuses (its first comment line), the message it must produce, and how many lines of g++ output the
# misuse costs. Each case is checked as the test suite checks it (test/compile_fail/run.sh: the misuse
# must fail with its message, the twin must compile).
# Usage: bash scripts/compile_errors.sh     (CXX picks the compiler; default g++)
set -uo pipefail
cd "$(dirname "$0")/.."
cxx=${CXX:-g++}
echo "| case | misuse | message (excerpt) | lines of g++ output |"
echo "|---|---|---|---|"
status=0
for src in test/compile_fail/*.cpp; do
  name=$(basename "$src" .cpp)
  what=$(sed -n '1s|^// ||p' "$src" | sed 's/|/\\|/g')
  expect=$(sed -n 's|^// expect: ||p' "$src" | head -n 1 | sed 's/|/\\|/g')
  out=$(bash test/compile_fail/run.sh "$src" -- "$cxx" -std=c++20 -Iinclude 2>&1)
  lines=$(sed -n 's/.*(\([0-9]*\) lines of diagnostics).*/\1/p' <<<"$out")
  if ! grep -q "ok: twin compiles" <<<"$out"; then status=1; lines="FAILED"; fi
  echo "| \`$name\` | $what | \`$expect\` | ${lines:-FAILED} |"
done
exit $status

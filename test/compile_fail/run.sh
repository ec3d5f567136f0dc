#!/usr/bin/env bash
# Usage: run.sh SOURCE [--max-lines N] [--no-twin] -- COMPILER [FLAGS...]
# SOURCE names its expected diagnostic on a line `// expect: TEXT`. With -DHITBOX_COMPILE_FAIL it must fail
# to compile with exactly one error, which prints TEXT, in at most N lines of diagnostics (default: 10 for
# g++, 15 for clang, whose notes take more lines): the misuse's own static_assert, and no cascade of
# errors after it. Without the macro (its must-compile twin) it must compile; --no-twin skips that check
# (meson.build compiles all twins in one translation unit with twins.sh, and a second compiler need not
# repeat it: the one error of the misuse already shows the case is clean).
# Both compiles are -fsyntax-only: templates are instantiated, nothing is generated.
set -u
src=$1; shift
max_lines= twin_check=1
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case $1 in
    --max-lines) max_lines=$2; shift 2 ;;
    --no-twin) twin_check=0; shift ;;
    *) echo "run.sh: unknown option $1"; exit 2 ;;
  esac
done
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: run.sh SOURCE [--max-lines N] [--no-twin] -- COMPILER [FLAGS...]"; exit 2; }
expect=$(sed -n 's|^// expect: ||p' "$src" | head -n 1)
[ -n "$expect" ] || { echo "no '// expect:' line in $src"; exit 1; }
if [ -z "$max_lines" ]; then
  # The compiler family from its predefined macros, so a wrapper (ccache) or a versioned name still works.
  if "$@" -dM -E -x c++ /dev/null 2>/dev/null | grep -q '__clang__'; then max_lines=15; else max_lines=10; fi
fi
out=$("$@" -fsyntax-only -DHITBOX_COMPILE_FAIL "$src" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then echo "FAIL: $src compiled, but must not"; exit 1; fi
if ! grep -qF -- "$expect" <<<"$out"; then
  echo "FAIL: diagnostic does not contain: $expect"; echo "$out" | head -n 40; exit 1
fi
lines=$(grep -c '' <<<"$out")
errors=$(grep -c 'error:' <<<"$out")
if [ "$errors" -ne 1 ]; then
  echo "FAIL: $errors errors in $lines lines of diagnostics, the misuse must give exactly one (its static_assert)"; echo "$out" | head -n 60; exit 1
fi
if [ "$lines" -gt "$max_lines" ]; then
  echo "FAIL: $lines lines of diagnostics, more than $max_lines"; echo "$out"; exit 1
fi
echo "ok: fails with the intended message, 1 error, $lines lines of diagnostics (at most $max_lines)"
[ $twin_check = 1 ] || exit 0
twin=$("$@" -fsyntax-only "$src" 2>&1) || { echo "FAIL: the must-compile twin does not compile"; echo "$twin" | head -n 40; exit 1; }
echo "ok: twin compiles"

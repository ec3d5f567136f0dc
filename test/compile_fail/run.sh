#!/usr/bin/env bash
# Usage: run.sh SOURCE -- COMPILER [FLAGS...]
# SOURCE names its expected diagnostic on a line `// expect: TEXT`. With -DHITBOX_COMPILE_FAIL it must fail
# to compile and print TEXT; without it (its must-compile twin) it must compile. Prints the diagnostic's
# length in lines, the figure kept small on purpose.
set -u
src=$1; shift; [ "$1" = "--" ] && shift
expect=$(sed -n 's|^// expect: ||p' "$src" | head -n 1)
[ -n "$expect" ] || { echo "no '// expect:' line in $src"; exit 1; }
out=$("$@" -fsyntax-only -DHITBOX_COMPILE_FAIL "$src" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then echo "FAIL: $src compiled, but must not"; exit 1; fi
if ! grep -qF -- "$expect" <<<"$out"; then
  echo "FAIL: diagnostic does not contain: $expect"; echo "$out" | head -n 40; exit 1
fi
lines=$(grep -c '' <<<"$out")
echo "ok: fails with the intended message ($lines lines of diagnostics)"
twin=$("$@" -fsyntax-only "$src" 2>&1) || { echo "FAIL: the must-compile twin does not compile"; echo "$twin" | head -n 40; exit 1; }
echo "ok: twin compiles"

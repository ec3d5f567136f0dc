#!/usr/bin/env bash
# Usage: twins.sh SOURCE... -- COMPILER [FLAGS...]
# The must-compile twins of the compile-fail cases (each SOURCE without -DHITBOX_COMPILE_FAIL) in one
# translation unit, -fsyntax-only: every #include of the cases first, at global scope, then each case in a
# namespace of its own (its #include lines are then no-ops: every header is #pragma once or guarded). One
# compile parses the headers once instead of once per case; a twin that does not compile names its file in
# the diagnostic. run.sh checks each misuse (--no-twin).
set -u
sources=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do sources+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] && [ ${#sources[@]} -gt 0 ] || { echo "usage: twins.sh SOURCE... -- COMPILER [FLAGS...]"; exit 2; }
tu=$(mktemp --suffix=.cpp)
trap 'rm -f "$tu"' EXIT
{
  for src in "${sources[@]}"; do
    sed -n 's|^#include "\(.*\)"|#include "'"$(dirname "$src")"'/\1"|p; s|^#include <\(.*\)>|#include <\1>|p' "$src"
  done | sort -u
  i=0
  for src in "${sources[@]}"; do
    i=$((i + 1))
    printf 'namespace hitbox_twin_%d {\n#include "%s"\n}\n' "$i" "$src"
  done
} >"$tu"
out=$("$@" -fsyntax-only "$tu" 2>&1) || { echo "FAIL: a must-compile twin does not compile"; echo "$out" | head -n 60; exit 1; }
echo "ok: the ${#sources[@]} twins compile"

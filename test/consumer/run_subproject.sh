#!/usr/bin/env bash
# Consumer test (a): copies test/consumer/project to a temporary directory, links its subprojects/hitbox to
# this hitbox tree, builds it with meson (dependency('hitbox') resolved through subprojects/hitbox.wrap,
# offline) and runs the program against a redis-server that RUNNER starts. COMPILED_LIB (true / false) is the
# subproject's -Dhitbox:compiled_lib: test/consumer/meson.build passes the mode the enclosing build does not use,
# so that test (b), which installs the enclosing build, and this one cover both modes. Built at -O0: the test
# checks how the program finds and links hitbox, not how fast it runs, and -O0 compiles it in a third of the time.
# Usage: run_subproject.sh SOURCE_ROOT RUNNER COMPILED_LIB
set -euo pipefail
src=$(cd "$1" && pwd); runner=$2; compiled=$3
tmp=$(mktemp -d /tmp/hitbox-consumer-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/test/consumer/project/." "$tmp/"
ln -s "$src" "$tmp/subprojects/hitbox"
echo "== meson setup (hitbox as a subproject of $tmp)"
meson setup "$tmp/build" "$tmp" --wrap-mode=nodownload -Doptimization=0 -Ddebug=false -Dhitbox:compiled_lib="$compiled" \
  >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; exit 1; }
grep -E "Dependency hitbox|Subproject hitbox|hitbox-redis|compiled_lib" "$tmp/setup.log" || true
echo "== ninja"
ninja -C "$tmp/build" >"$tmp/ninja.log" 2>&1 || { cat "$tmp/ninja.log"; exit 1; }
# The compiled library is linked in that mode, and only then.
if ldd "$tmp/build/consumer" | grep -q 'libhitbox-redis'; then linked=true; else linked=false; fi
[ "$linked" = "$compiled" ] || { echo "FAIL: compiled_lib=$compiled, but libhitbox-redis linked: $linked"; exit 1; }
echo "compiled_lib=$compiled: libhitbox-redis linked: $linked"
echo "== run"
"$runner" "$tmp/build/consumer"

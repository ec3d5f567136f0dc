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
# The compiled library is linked in that mode, and only then: statically (a subproject's libraries go into
# the parent's programs), so the program needs no hitbox library at run time.
if grep -q 'libhitbox-redis\.a' "$tmp/build/build.ninja"; then linked=true; else linked=false; fi
[ "$linked" = "$compiled" ] || { echo "FAIL: compiled_lib=$compiled, but libhitbox-redis.a linked: $linked"; exit 1; }
if ldd "$tmp/build/consumer" | grep -q 'libhitbox'; then echo "FAIL: the program needs a shared hitbox library"; exit 1; fi
echo "compiled_lib=$compiled: libhitbox-redis.a linked: $linked"
echo "== meson install --destdir"
meson install -C "$tmp/build" --no-rebuild --destdir "$tmp/dest" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
installed=$(find "$tmp/dest" -type f -name consumer | head -n 1)
[ -n "$installed" ] || { echo "FAIL: the program was not installed"; exit 1; }
if find "$tmp/dest" -path '*include/hitbox*' | grep -q .; then echo "FAIL: the subproject installed its headers"; exit 1; fi
echo "== run (installed)"
"$runner" "$installed"

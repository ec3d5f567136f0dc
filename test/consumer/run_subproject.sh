#!/usr/bin/env bash
# Consumer test (a): copies test/consumer/project to a temporary directory, links its subprojects/hitbox to
# this hitbox tree, builds it with meson (dependency('hitbox') resolved through subprojects/hitbox.wrap,
# offline) and runs the program against a redis-server that RUNNER starts.
# Usage: run_subproject.sh SOURCE_ROOT RUNNER
set -euo pipefail
src=$(cd "$1" && pwd); runner=$2
tmp=$(mktemp -d /tmp/hitbox-consumer-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/test/consumer/project/." "$tmp/"
ln -s "$src" "$tmp/subprojects/hitbox"
echo "== meson setup (hitbox as a subproject of $tmp)"
meson setup "$tmp/build" "$tmp" --wrap-mode=nodownload >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; exit 1; }
grep -E "Dependency hitbox|Subproject hitbox|hitbox-redis" "$tmp/setup.log" || true
echo "== ninja"
ninja -C "$tmp/build" >"$tmp/ninja.log" 2>&1 || { cat "$tmp/ninja.log"; exit 1; }
echo "== run"
"$runner" "$tmp/build/consumer"

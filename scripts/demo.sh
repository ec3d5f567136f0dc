#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root), builds hitbox and runs the main example: a slow function
# memoized through the cache front over Memory L1 + Redis L2 (examples/demo.cpp starts its own redis-server
# on a free loopback port, or runs with L1 alone when there is none). Takes a few seconds once built.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps
[ -d build-demo ] || meson setup build-demo -Dbuildtype=release -Dtests=false -Dbenchmarks=false >/dev/null
ninja -C build-demo examples/demo
./build-demo/examples/demo

#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root), builds hitbox and runs the main example.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps
[ -d build-demo ] || meson setup build-demo -Dbuildtype=release -Dtests=false -Dbenchmarks=false >/dev/null
ninja -C build-demo examples/formats_demo
./build-demo/examples/formats_demo

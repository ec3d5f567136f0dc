#!/usr/bin/env bash
# Consumer test (b): installs this build of hitbox into a temporary DESTDIR (meson install --destdir),
# then compiles test/consumer/project/consumer.cpp with nothing but the flags of
# `pkg-config --cflags --libs hitbox hitbox-redis` (the relocated prefix given with --define-variable) and
# runs it against a redis-server that RUNNER starts. Also checks that the installed .pc files point into
# the install, not into this source tree.
# Usage: run_pkgconfig.sh BUILD_ROOT SOURCE_ROOT RUNNER CXX...
set -euo pipefail
build=$1; src=$(cd "$2" && pwd); runner=$3; shift 3
tmp=$(mktemp -d /tmp/hitbox-pkgconfig-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
dest="$tmp/dest"
echo "== meson install --destdir $dest"
meson install -C "$build" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
pc=$(find "$dest" -name hitbox.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: no hitbox.pc installed"; exit 1; }
pcdir=$(dirname "$pc")
for f in hitbox-redis hitbox-zstd hitbox-gzip hitbox-config; do
  [ -f "$pcdir/$f.pc" ] || { echo "FAIL: $f.pc not installed next to hitbox.pc"; exit 1; }
done
prefix=$(sed -n 's/^prefix=//p' "$pc")
echo "installed .pc files in ${pcdir#$dest} (prefix $prefix)"
export PKG_CONFIG_PATH="$pcdir"
flags=$(pkg-config --define-variable=prefix="$dest$prefix" --cflags --libs hitbox hitbox-redis)
echo "pkg-config --cflags --libs hitbox hitbox-redis: $flags"
case " $flags " in *" -I$dest$prefix/include "*) ;; *) echo "FAIL: no -I into the installed include dir"; exit 1;; esac
case "$flags" in *"$src/include"*) echo "FAIL: flags point into the source tree"; exit 1;; esac
[ -f "$dest$prefix/include/hitbox/hitbox.hpp" ] || { echo "FAIL: hitbox.hpp not installed"; exit 1; }
echo "== compile with the installed headers"
# shellcheck disable=SC2086  # the flags are words
"$@" -Wall -Wextra -Werror -O0 "$src/test/consumer/project/consumer.cpp" $flags -o "$tmp/consumer"
# A compiled-library build (-Dcompiled_lib=true) installed libhitbox-redis there: the program finds it as an
# installed program would, had the prefix been a system one.
libdir=$(pkg-config --define-variable=prefix="$dest$prefix" --variable=libdir hitbox-redis)
# ... and libhitbox-config, which hitbox-config.pc then names (the run-time factory's definitions).
config_libs=$(pkg-config --define-variable=prefix="$dest$prefix" --libs hitbox-config)
echo "pkg-config --libs hitbox-config: $config_libs"
if [ -e "$libdir/libhitbox-redis.so" ]; then
  case " $config_libs " in *" -lhitbox-config "*) ;; *) echo "FAIL: hitbox-config.pc lacks -lhitbox-config: $config_libs"; exit 1;; esac
  [ -e "$libdir/libhitbox-config.so" ] || { echo "FAIL: libhitbox-config.so not installed"; exit 1; }
  # ... and libhitbox (the core: offload, envelope, key formats), which hitbox.pc names with the macro.
  core=$(pkg-config --define-variable=prefix="$dest$prefix" --cflags --libs hitbox)
  case " $core " in *" -lhitbox "*) ;; *) echo "FAIL: hitbox.pc lacks -lhitbox: $core"; exit 1;; esac
  case " $core " in *" -DHITBOX_COMPILED_LIB=1 "*) ;; *) echo "FAIL: hitbox.pc lacks -DHITBOX_COMPILED_LIB=1: $core"; exit 1;; esac
  [ -e "$libdir/libhitbox.so" ] || { echo "FAIL: libhitbox.so not installed"; exit 1; }
  # ... and the compressors' helpers, which hitbox-zstd.pc / hitbox-gzip.pc name.
  for c in zstd gzip; do
    libs=$(pkg-config --define-variable=prefix="$dest$prefix" --libs hitbox-$c)
    case " $libs " in *" -lhitbox-$c "*) ;; *) echo "FAIL: hitbox-$c.pc lacks -lhitbox-$c: $libs"; exit 1;; esac
    [ -e "$libdir/libhitbox-$c.so" ] || { echo "FAIL: libhitbox-$c.so not installed"; exit 1; }
  done
fi
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== run"
"$runner" "$tmp/consumer"

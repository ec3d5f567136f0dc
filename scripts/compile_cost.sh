#!/usr/bin/env bash
# Compile-time cost of hitbox: times compiling each translation unit below N times (default 5), once with
# -fsyntax-only (parsing and template instantiation) and once with -c -O2 (code generation too), and
# prints the medians in CPU seconds as a Markdown table (the "Compile time" table of doc/performance.md).
#
#   deps only      a TU that includes just what hitbox builds on: the Boost.Hana, cereal (binary, JSON,
#                  XML archives and std types), tl-expected, hiredis, zstd and zlib headers hitbox includes
#   hitbox.hpp     the umbrella header alone
#   two_tier.cpp   examples/two_tier.cpp: Memory + Redis (JSON, zstd) composed, used; again with
#                  HITBOX_COMPILED_LIB=1 (the compiled-library mode: the program links libhitbox-redis), and
#                  once more with <hitbox/hitbox.hpp> included too (the example includes only its parts)
#   two_tier_by_hand.cpp  examples/two_tier_by_hand.cpp: the same program written without hitbox (hiredis,
#                  cereal JSON, zstd, a mutex LRU), the baseline a user would otherwise compile
#   config.hpp     a TU that calls hitbox::make_backend (every policy the run-time factory can name); again
#                  with HITBOX_COMPILED_LIB=1 (the factory's definitions are in libhitbox-config)
#
# Usage: bash scripts/compile_cost.sh [N]     (CXX picks the compiler; default c++)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cxx=${CXX:-c++}
tmp=$(mktemp -d /tmp/hitbox-compile-cost-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
flags=(-std=c++20 -Iinclude -I/usr/include/hiredis -D_FILE_OFFSET_BITS=64)

cat >"$tmp/deps_only.cpp" <<'EOF'
#include <boost/hana/accessors.hpp>
#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/define_struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/fold_left.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>
#include <cereal/archives/json.hpp>
#include <cereal/archives/xml.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <hiredis/hiredis.h>
#include <tl/expected.hpp>
#include <zlib.h>
#include <zstd.h>
int main() { return 0; }
EOF
printf '#include <hitbox/hitbox.hpp>\nint main() { return 0; }\n' >"$tmp/umbrella.cpp"
cat >"$tmp/config.cpp" <<'EOF'
#include <hitbox/config.hpp>
int main() {
    hitbox::InlineOffload offload;
    auto c = hitbox::parse_config("tiers = memory\nmemory.max_entries = 10\n");
    return c && hitbox::make_backend(*c, offload) ? 0 : 1;
}
EOF

# Each run compiles every (unit, mode) pair once, in turn, so a burst of load from other processes spreads over
# all of them instead of skewing one row; a figure is the median of its runs. Seconds are CPU seconds
# (user + system) of the compiler, which depend much less on other processes than wall time on a shared machine.
units=("deps only:$tmp/deps_only.cpp:" "hitbox.hpp:$tmp/umbrella.cpp:" "examples/two_tier.cpp:examples/two_tier.cpp:")
# The compiled-library mode (meson -Dcompiled_lib=true): the Redis connection code is in libhitbox-redis and
# its headers only declare it.
[ -f src/redis_connection.cpp ] &&
  units+=("examples/two_tier.cpp, HITBOX_COMPILED_LIB=1:examples/two_tier.cpp:-DHITBOX_COMPILED_LIB=1")
# The same program including the umbrella header as well (what it cost before it included only its parts).
{ echo '#include <hitbox/hitbox.hpp>'; cat examples/two_tier.cpp; } >"$tmp/two_tier_umbrella.cpp"
[ -f src/redis_connection.cpp ] &&
  units+=("examples/two_tier.cpp + <hitbox/hitbox.hpp>, HITBOX_COMPILED_LIB=1:$tmp/two_tier_umbrella.cpp:-DHITBOX_COMPILED_LIB=1")
units+=("examples/two_tier_by_hand.cpp (the same by hand):examples/two_tier_by_hand.cpp:")
units+=("config.hpp (make_backend):$tmp/config.cpp:")
# The same in the compiled-library mode: the factory's tiers, policies and folds are in libhitbox-config.
[ -f src/config.cpp ] && units+=("config.hpp (make_backend), HITBOX_COMPILED_LIB=1:$tmp/config.cpp:-DHITBOX_COMPILED_LIB=1")
declare -A times
for ((i = 0; i < runs; i++)); do
  for unit in "${units[@]}"; do
    IFS=: read -r name src extra <<<"$unit"
    for mode in syntax full; do
      if [ $mode = syntax ]; then args=(-fsyntax-only "$src"); else args=(-c -O2 "$src" -o "$tmp/out.o"); fi
      /usr/bin/time -o "$tmp/time" -f "%U %S" "$cxx" "${flags[@]}" $extra "${args[@]}"
      times["$name/$mode"]+="$(awk '{printf "%d", ($1 + $2) * 1000}' "$tmp/time") "
    done
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.2f", m/1000}'; }

echo "compiler: $("$cxx" --version | head -n 1); $runs interleaved runs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| translation unit | -fsyntax-only (median CPU s) | -c -O2 (median CPU s) |"
echo "|---|---|---|"
for unit in "${units[@]}"; do
  IFS=: read -r name src extra <<<"$unit"
  echo "| $name | $(median "${times[$name/syntax]}") | $(median "${times[$name/full]}") |"
done

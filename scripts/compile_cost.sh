#!/usr/bin/env bash
# Compile-time cost of hitbox: times compiling each translation unit below N times (default 5), once with
# -fsyntax-only (parsing and template instantiation) and once with -c -O2 (code generation too), and
# prints the medians in seconds as a Markdown table (the "Compile-time cost" table of doc/performance.md).
#
#   deps only      a TU that includes just what hitbox builds on: the Boost.Hana, cereal (binary, JSON,
#                  XML archives and std types), tl-expected, hiredis, zstd and zlib headers hitbox includes
#   hitbox.hpp     the umbrella header alone
#   two_tier.cpp   examples/two_tier.cpp: Memory + Redis (JSON, zstd) composed, used
#   config.hpp     a TU that calls hitbox::make_backend (every policy the run-time factory can name)
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

# median_seconds ARGS...: runs the compiler `runs` times with ARGS, prints the median wall time.
median_seconds() {
  local times=() i start end
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s%N)
    "$cxx" "${flags[@]}" "$@"
    end=$(date +%s%N)
    times+=("$(( (end - start) / 1000000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.2f", m/1000}'
}

echo "compiler: $("$cxx" --version | head -n 1); $runs runs each; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| translation unit | -fsyntax-only (median s) | -c -O2 (median s) |"
echo "|---|---|---|"
for unit in "deps only:$tmp/deps_only.cpp" "hitbox.hpp:$tmp/umbrella.cpp" "examples/two_tier.cpp:examples/two_tier.cpp" \
            "config.hpp (make_backend):$tmp/config.cpp"; do
  name=${unit%%:*}; src=${unit#*:}
  syntax=$(median_seconds -fsyntax-only "$src")
  full=$(median_seconds -c -O2 "$src" -o "$tmp/out.o")
  echo "| $name | $syntax | $full |"
done

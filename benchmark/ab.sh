#!/usr/bin/env bash
# Runs one hitbox-bench benchmark in two or more binaries alternately N times (an A/B test of a change:
# build the binary before and after it) and prints every round's items/s and each binary's median. On a
# shared or virtual machine, whose speed swings between minutes, only interleaved runs compare fairly.
#
# Usage: benchmark/ab.sh BENCHMARK N BINARY_A BINARY_B [BINARY ...]
#   e.g. cp build-rel/benchmark/hitbox-bench /tmp/before   # then rebuild with the change
#        benchmark/ab.sh BM_RedisGet/real_time/threads:32 8 /tmp/before build-rel/benchmark/hitbox-bench
# Set HITBOX_REDIS_URL to share one redis-server between the runs (else each run starts its own).
set -euo pipefail
bench=$1 n=$2
shift 2
if (($# < 2)); then
  echo "usage: $0 BENCHMARK N BINARY_A BINARY_B [BINARY ...]" >&2
  exit 2
fi
rate() {
  "$1" --benchmark_filter="^$bench\$" --benchmark_min_time=0.5 2>/dev/null |
    grep -o 'items_per_second=[0-9.e+]*[kMG]\?' | head -n 1 | sed 's/items_per_second=//' |
    awk '{v=$1; m=1; if (v ~ /k$/) m=1e3; else if (v ~ /M$/) m=1e6; else if (v ~ /G$/) m=1e9; sub(/[kMG]$/, "", v); printf "%.0f\n", v*m}'
}
rounds=$(for _ in $(seq "$n"); do
  line=""
  for bin in "$@"; do line="$line $(rate "$bin")"; done
  echo "$line"
done)
echo "$rounds"
i=0
for bin in "$@"; do
  i=$((i + 1))
  echo "$rounds" | awk -v c="$i" '{print $c}' | sort -n |
    awk -v name="$bin" '{v[NR]=$1} END {printf "median %s/s  %s\n", v[int((NR+1)/2)], name}'
done

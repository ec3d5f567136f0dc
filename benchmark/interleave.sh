#!/usr/bin/env bash
# Runs two hitbox-bench benchmarks alternately N times and prints each pair's items/s and the median ratio
# A/B. On a shared or virtual machine, whose load swings between runs, the ratio of interleaved runs says
# more than two separate runs.
#
# Usage: benchmark/interleave.sh BENCH_BINARY BENCHMARK_A BENCHMARK_B [N=5]
#   e.g. benchmark/interleave.sh build-rel/benchmark/hitbox-bench \
#          BM_RedisGet/real_time/threads:32 BM_HiredisConnPerThreadGet/real_time/threads:32 7
set -euo pipefail
bin=$1 a=$2 b=$3 n=${4:-5}
rate() {
  "$bin" --benchmark_filter="^$1\$" --benchmark_min_time=0.5 2>/dev/null |
    grep -o 'items_per_second=[0-9.e+]*[kMG]\?' | head -n 1 | sed 's/items_per_second=//' |
    awk '{v=$1; m=1; if (v ~ /k$/) m=1e3; else if (v ~ /M$/) m=1e6; else if (v ~ /G$/) m=1e9; sub(/[kMG]$/, "", v); printf "%.0f\n", v*m}'
}
ratios=()
for _ in $(seq "$n"); do
  ra=$(rate "$a"); rb=$(rate "$b")
  r=$(awk -v x="$ra" -v y="$rb" 'BEGIN {printf "%.2f", (y > 0 ? x / y : 0)}')
  ratios+=("$r")
  echo "$a $ra/s   $b $rb/s   ratio $r"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END {print "median ratio " v[int((NR+1)/2)]}'

#!/usr/bin/env bash
# Usage: run_fuzz.sh TARGET SECONDS SEED_DIR WORK_DIR [LIBFUZZER_FLAG ...]
# Runs one libFuzzer target for SECONDS over a private copy of the seed corpus (new inputs go to WORK_DIR,
# the checked-in seeds stay untouched). A crash leaves its input in WORK_DIR and fails the test.
# The checked-in corpus is make_seeds' seeds plus what libFuzzer -merge=1 kept of a 50 s run per target (CI
# replays it, then fuzzes HITBOX_FUZZ_SECONDS from there). To grow it: run a target longer into a directory,
# then TARGET -merge=1 test/fuzz/corpus/NAME THAT_DIRECTORY. Extra flags
# come after the defaults, so they override them (libFuzzer keeps the last value of a flag).
set -u
target=$1 seconds=$2 seeds=$3 work=$4
shift 4
mkdir -p "$work"
here=$(cd "$(dirname "$0")" && pwd)
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$here/../sanitizer/ubsan.supp"
# libFuzzer exits 77 on a finding by default, which meson would count as a skip: make it a failure.
exec "$target" -error_exitcode=1 -timeout_exitcode=1 -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$work/" "$@" "$work" "$seeds"

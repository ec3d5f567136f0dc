#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root), then builds and runs every test suite:
#   1. build-test:  g++ -Werror, all suites (unit, redis, cluster, fault, examples, bench-smoke, consumer,
#                   headers, compile_fail, format: the .clang-format layout, scripts/check_format.sh), as the
#                   compiled library (-Dcompiled_lib=true: the Redis connection code once in libhitbox-redis,
#                   HITBOX_COMPILED_LIB=1, instead of in each of ~25 Redis test, example and benchmark objects
#                   at -O2); the consumer suite consumes both modes. The libraries, examples and benchmarks
#                   are compiled at -O2, the test executables at -O0 (-Dtest_optimization=0: their objects
#                   ~20% less CPU in a CI run, 288 -> ~230 CPU-s; test_cache alone 38 s against 22 s;
#                   hostile_cluster stays at -O1, test/meson.build). What runs optimized is the library code
#                   the tests call (libhitbox, libhitbox-redis at -O2), the examples and the benchmark smoke runs
#   2. build-clang: clang-14 -O0 ASan + UBSan (less the builtin check: rapidjson passes 0 to clz, see
#                   test/fuzz/meson.build), -Werror, also the compiled library (so ASan and UBSan see
#                   libhitbox-redis): suites unit and redis, and the libFuzzer targets (suite fuzz): each
#                   decoder replays its seed corpus and is fuzzed for HITBOX_FUZZ_SECONDS (default 5; two
#                   targets at a time). One build gives the sanitizers, the fuzzing and the clang toolchain
#                   check; clang at -O0 compiles these sanitized tests ~7x faster than g++ at -O1
#                   (test_envelope: 12.6 s against 92 s of CPU)
#   3. build-tsan:  clang-14 -O0 TSan, header-only: suites unit and redis less the tests that start no thread
#                   (suite single_threaded) and the run-time factory's (suite factory: it assembles types
#                   whose threads the other suites run under TSan). clang at -O0 compiles them in ~45% of
#                   g++ -O1's CPU time (test_cache: 14.9 s against 33.9 s)
#   4. build-portable: the Redis connection's portable platform layer (-Dplatform=portable: condition
#                   variable, poll, pipe instead of futex, epoll, eventfd), header-only, -O0, suite platform,
#                   -Werror
# So both modes are built, tested and sanitized: the compiled library under ASan + UBSan, header-only under
# TSan. The sanitizer builds compile only what their suites run: the compile-time suites (headers,
# compile_fail) check the compiler, not run-time code, and cluster / fault stay in the main build.
# Each build after the first compiles beside the previous build's tests, in the background at the lowest CPU
# priority (build_beside below); the tests that run alone (is_parallel: false) run first in each build
# (meson.build, prio_alone). The time table at the end says how long each build was waited for, how long it
# compiled beside the previous tests, and how long its tests ran.
# The last line is "N passed, N failed" (", N skipped" if any), counted from the meson test logs.
# HITBOX_TEST_QUICK=1 runs only step 1.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps clang-14 libclang-rt-14-dev clang-format-14 || { echo "package installation failed"; echo "0 passed, 1 failed"; exit 1; }

jobs=$(nproc 2>/dev/null || echo 2)
supp="$PWD/test/sanitizer/ubsan.supp"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
logs=()
phases=()   # "name build_s beside_s test_s" per build, for the time table at the end
status=0
declare -A targets_of bg_pid bg_t0 build_s beside_s

# setup DIR "ENV ASSIGNMENTS" "MESON TEST ARGS" MESON-SETUP-ARG...: configures DIR and records the ninja
# targets its suites need.
setup() {
  local dir=$1 envs=$2 testargs=$3
  shift 3
  echo "=== $dir: meson setup $*; meson test $testargs"
  rm -f "$dir/meson-logs/testlog.json"   # a failed build must not count an old run
  # meson keeps a build directory's compiler: one kept from a run with other ENV ASSIGNMENTS starts afresh.
  [ "$(cat "$dir/ci-env" 2>/dev/null)" = "$envs" ] || rm -rf "$dir"
  if [ -d "$dir" ]; then
    env $envs meson setup --reconfigure "$dir" "$@" >/dev/null || return 1
  else
    env $envs meson setup "$dir" "$@" >/dev/null || return 1
  fi
  echo "$envs" >"$dir/ci-env"
  # Build only the executables the chosen suites run (the sanitizer builds skip cluster, fault, ...).
  targets_of[$dir]=$(suite_targets "$dir" $testargs) || return 1
}

# build_beside DIR: starts DIR's compilation in the background at the lowest CPU priority, while the previous
# build's tests run. Those mostly wait (on redis-server processes, timeouts, one timing-sensitive test at a
# time), so the compilers get the CPU the tests leave idle. meson test starts each test in a session of its
# own, and with autogroup scheduling (Linux's default) CPU is shared between sessions by the nice value of
# their autogroup, not of their processes: the compilation gets a session of its own whose autogroup is
# niced too.
build_beside() {
  local dir=$1
  bg_t0[$dir]=$SECONDS
  setsid -w bash -c 'echo $$ >"$1/ninja.pid"; { echo 19 >/proc/self/autogroup; } 2>/dev/null; shift
    exec nice -n 19 ninja "$@"' _ "$dir" -C "$dir" -j "$jobs" ${targets_of[$dir]} >"$dir/ninja.log" 2>&1 &
  bg_pid[$dir]=$!
}

# finish_build DIR: DIR's compilation, waited for at normal priority when build_beside started it.
finish_build() {
  local dir=$1 rc t0=$SECONDS
  if [ -n "${bg_pid[$dir]:-}" ]; then
    local pg
    pg=$(cat "$dir/ninja.pid" 2>/dev/null)
    if [ -n "$pg" ]; then
      { echo 0 >"/proc/$pg/autogroup"; } 2>/dev/null   # gone when the compilation has ended
      renice -n 0 -g "$pg" >/dev/null 2>&1
    fi
    wait "${bg_pid[$dir]}"
    rc=$?
    beside_s[$dir]=$(( t0 - bg_t0[$dir] ))
  else
    ninja -C "$dir" -j "$jobs" ${targets_of[$dir]} >"$dir/ninja.log" 2>&1
    rc=$?
    beside_s[$dir]=0
  fi
  build_s[$dir]=$(( SECONDS - t0 ))
  [ $rc -eq 0 ] || { tail -n 60 "$dir/ninja.log"; return 1; }
  echo "=== $dir: built in ${build_s[$dir]} s (after ${beside_s[$dir]} s beside the previous build's tests)"
}

# run_tests DIR "MESON TEST ARGS"
run_tests() {
  local dir=$1 testargs=$2 t0=$SECONDS rc
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$jobs" $testargs
  rc=$?
  echo "=== $dir: tests ran in $(( SECONDS - t0 )) s"
  phases+=("$dir ${build_s[$dir]} ${beside_s[$dir]} $(( SECONDS - t0 ))")
  return $rc
}

# suite_targets DIR [--suite S]...: the ninja targets (paths relative to DIR) of the executables and files
# that the tests of those suites run; nothing (= build all) when no suite is named.
suite_targets() {
  python3 - "$@" <<'PY'
import json, os, subprocess, sys
build, args = sys.argv[1], sys.argv[2:]
suites = {args[i + 1] for i in range(len(args) - 1) if args[i] == "--suite"}
excluded = {args[i + 1] for i in range(len(args) - 1) if args[i] == "--no-suite"}
if not suites:
    sys.exit(0)
tests = json.loads(subprocess.check_output(["meson", "introspect", "--tests", build]))
files = {t["id"]: t["filename"] for t in json.loads(subprocess.check_output(["meson", "introspect", "--targets", build]))}
build = os.path.abspath(build)
wanted = set()
for t in tests:
    names = {s.split(":")[-1] for s in t["suite"]}
    if suites & names and not excluded & names:
        for dep in t["depends"]:
            wanted.update(os.path.relpath(f, build) for f in files.get(dep, []))
print(" ".join(sorted(wanted)))
PY
}

start=$(date +%s)
# The machine's CPU time (busy and idle, all cores) over the run, from /proc/stat: how much of the run the cores
# were busy says whether a shorter run needs less work or better overlap.
cpu_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat 2>/dev/null; }
cpu0=$(cpu_ticks)
# Debug info as line tables only (-g1): enough for every backtrace and sanitizer report, and it compiles
# much faster than full -g. Both sanitizer builds are clang at -O0 (test/meson.build gives the fuzz targets
# and hostile_cluster -O1): clang compiles these sanitized tests at -O0 2-7x faster than g++ at -O1.
builds=() testargs=()
# add_build DIR "ENV ASSIGNMENTS" "MESON TEST ARGS" MESON-SETUP-ARG...
add_build() {
  logs+=("$1/meson-logs/testlog.json")
  if setup "$@"; then
    builds+=("$1")
    testargs+=("$3")
  else
    echo "=== $1: meson setup failed"
    status=1
  fi
}
add_build build-test "" "" -Dwerror=true -Doptimization=2 -Dtest_optimization=0 -Ddebug=false -Dcpp_args=-g1 \
  -Dcompiled_lib=true
if [ "${HITBOX_TEST_QUICK:-0}" != 1 ]; then
  add_build build-clang "CXX=clang++-14" "--suite unit --suite redis --suite fuzz" \
    -Dwerror=true -Dfuzz=true -Dfuzz_seconds="${HITBOX_FUZZ_SECONDS:-5}" \
    -Db_sanitize=address,undefined -Db_lundef=false "-Dcpp_args=-fno-sanitize=builtin -fsanitize=float-cast-overflow -g1" \
    -Doptimization=0 -Ddebug=false -Dbenchmarks=false -Dexamples=false -Dcompiled_lib=true
  add_build build-tsan "CXX=clang++-14" "--suite unit --suite redis --no-suite single_threaded --no-suite factory" \
    -Db_sanitize=thread -Db_lundef=false -Dcpp_args=-g1 -Doptimization=0 -Ddebug=false -Dbenchmarks=false \
    -Dexamples=false -Dcompiled_lib=false
  add_build build-portable "" "--suite platform" -Dplatform=portable -Dwerror=true -Dcpp_args=-g1 \
    -Doptimization=0 -Ddebug=false -Dbenchmarks=false -Dexamples=false -Dcompiled_lib=false
fi
# Each build's tests run beside the next build's compilation (build_beside).
for i in "${!builds[@]}"; do
  dir=${builds[$i]} next=${builds[$((i + 1))]:-}
  if finish_build "$dir"; then
    [ -z "$next" ] || build_beside "$next"
    run_tests "$dir" "${testargs[$i]}" || status=1
  else
    status=1
    [ -z "$next" ] || build_beside "$next"
  fi
done
echo "=== all builds and suites took $(( $(date +%s) - start )) s"
if [ -n "$cpu0" ]; then
  read -r busy1 idle1 <<<"$(cpu_ticks)"
  read -r busy0 idle0 <<<"$cpu0"
  hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
  awk -v b=$(( busy1 - busy0 )) -v i=$(( idle1 - idle0 )) -v hz="$hz" 'BEGIN {
    if (b + i > 0) printf "=== CPU: %.0f s busy, %.0f s idle over all cores (%.0f%% busy)\n", b / hz, i / hz, 100 * b / (b + i) }'
fi
printf '=== time per phase (build s: waited for its compilation; beside s: it compiled beside the previous tests)\n'
printf '| phase | build s | beside s | tests s |\n|---|---|---|---|\n'
for p in "${phases[@]}"; do set -- $p; printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; done

python3 - "${logs[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        print(f"no test log at {path}: its build failed")
        failed += 1
        continue
    for line in lines:
        if not line.strip():
            continue
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
if passed + failed == 0:
    failed = 1  # nothing ran: that is a failure, not a pass
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
PY
count_status=$?
[ $status -eq 0 ] && [ $count_status -eq 0 ]

#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root), then builds and runs every test suite:
#   1. build-test:  g++ -Werror, all suites (unit, redis, cluster, fault, examples, bench-smoke, consumer,
#                   headers, compile_fail, format: the .clang-format layout, scripts/check_format.sh), as the
#                   compiled library (-Dcompiled_lib=true: the Redis connection code once in libhitbox-redis,
#                   HITBOX_COMPILED_LIB=1, instead of in each of ~25 Redis test, example and benchmark objects
#                   at -O2); the consumer suite consumes both modes
#   2. build-clang: clang-14 -O0 ASan + UBSan (less the builtin check: rapidjson passes 0 to clz, see
#                   test/fuzz/meson.build), -Werror, also the compiled library (so ASan and UBSan see
#                   libhitbox-redis): suites unit and redis, and the libFuzzer targets (suite fuzz): each
#                   decoder replays its seed corpus and is fuzzed for HITBOX_FUZZ_SECONDS (default 5; two
#                   targets at a time). One build gives the sanitizers, the fuzzing and the clang toolchain
#                   check; clang at -O0 compiles these sanitized tests ~7x faster than g++ at -O1
#                   (test_envelope: 12.6 s against 92 s of CPU)
#   3. build-tsan:  clang-14 -O0 TSan, header-only: suites unit and redis less the tests that start no thread
#                   (suite single_threaded). clang at -O0 compiles them in ~45% of g++ -O1's CPU time
#                   (test_cache: 14.9 s against 33.9 s)
#   4. build-portable: the Redis connection's portable platform layer (-Dplatform=portable: condition
#                   variable, poll, pipe instead of futex, epoll, eventfd), header-only, suite platform, -Werror
# So both modes are built, tested and sanitized: the compiled library under ASan + UBSan, header-only under
# TSan. The sanitizer builds compile only what their suites run: the compile-time suites (headers,
# compile_fail) check the compiler, not run-time code, and cluster / fault stay in the main build.
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
phases=()   # "name build_s test_s" per build, for the time table at the end
status=0

# build_and_test DIR "ENV ASSIGNMENTS" "MESON TEST ARGS" MESON-SETUP-ARG...
build_and_test() {
  local dir=$1 envs=$2 testargs=$3
  shift 3
  echo "=== $dir: meson setup $*; meson test $testargs"
  logs+=("$dir/meson-logs/testlog.json")
  rm -f "$dir/meson-logs/testlog.json"   # a failed build must not count an old run
  # meson keeps a build directory's compiler: one kept from a run with other ENV ASSIGNMENTS starts afresh.
  [ "$(cat "$dir/ci-env" 2>/dev/null)" = "$envs" ] || rm -rf "$dir"
  if [ -d "$dir" ]; then
    env $envs meson setup --reconfigure "$dir" "$@" >/dev/null || return 1
  else
    env $envs meson setup "$dir" "$@" >/dev/null || return 1
  fi
  echo "$envs" >"$dir/ci-env"
  local t0=$SECONDS targets rc
  # Build only the executables the chosen suites run (the sanitizer builds skip cluster, fault, ...).
  targets=$(suite_targets "$dir" $testargs) || return 1
  ninja -C "$dir" -j "$jobs" $targets >"$dir/ninja.log" 2>&1 || { tail -n 60 "$dir/ninja.log"; return 1; }
  local built=$(( SECONDS - t0 ))
  echo "=== $dir: built in $built s"
  t0=$SECONDS
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$jobs" $testargs
  rc=$?
  echo "=== $dir: tests ran in $(( SECONDS - t0 )) s"
  phases+=("$dir $built $(( SECONDS - t0 ))")
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
# Debug info as line tables only (-g1): enough for every backtrace and sanitizer report, and it compiles
# much faster than full -g. Both sanitizer builds are clang at -O0 (test/meson.build gives the fuzz targets
# and hostile_cluster -O1): clang compiles these sanitized tests at -O0 2-7x faster than g++ at -O1.
build_and_test build-test "" "" -Dwerror=true -Doptimization=2 -Ddebug=false -Dcpp_args=-g1 -Dcompiled_lib=true \
  || status=1
if [ "${HITBOX_TEST_QUICK:-0}" != 1 ]; then
  build_and_test build-clang "CXX=clang++-14" "--suite unit --suite redis --suite fuzz" \
    -Dwerror=true -Dfuzz=true -Dfuzz_seconds="${HITBOX_FUZZ_SECONDS:-5}" \
    -Db_sanitize=address,undefined -Db_lundef=false "-Dcpp_args=-fno-sanitize=builtin -g1" \
    -Doptimization=0 -Ddebug=false -Dbenchmarks=false -Dexamples=false -Dcompiled_lib=true || status=1
  build_and_test build-tsan "CXX=clang++-14" "--suite unit --suite redis --no-suite single_threaded" \
    -Db_sanitize=thread -Db_lundef=false -Dcpp_args=-g1 -Doptimization=0 -Ddebug=false -Dbenchmarks=false \
    -Dexamples=false -Dcompiled_lib=false || status=1
  build_and_test build-portable "" "--suite platform" -Dplatform=portable -Dwerror=true -Dcpp_args=-g1 \
    -Doptimization=1 -Ddebug=false -Dbenchmarks=false -Dexamples=false -Dcompiled_lib=false || status=1
fi
echo "=== all builds and suites took $(( $(date +%s) - start )) s"
printf '=== time per phase\n| phase | build s | tests s |\n|---|---|---|\n'
for p in "${phases[@]}"; do set -- $p; printf '| %s | %s | %s |\n' "$1" "$2" "$3"; done

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

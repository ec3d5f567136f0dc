#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root), builds hitbox with -Werror and runs every test suite.
# The last line is "N passed, N failed" (", N skipped" if any), counted from meson's test logs.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps || { echo "package installation failed"; echo "0 passed, 1 failed"; exit 1; }

jobs=$(nproc 2>/dev/null || echo 2)
logs=()
status=0

run_suite_build() {  # DIR MESON_ARGS... -- TEST_ARGS...
  local dir=$1; shift
  local setup=() testargs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do setup+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  testargs=("$@")
  if [ -d "$dir" ]; then
    meson setup --reconfigure "$dir" "${setup[@]}" >/dev/null || return 1
  else
    meson setup "$dir" "${setup[@]}" >/dev/null || return 1
  fi
  logs+=("$dir/meson-logs/testlog.json")
  rm -f "$dir/meson-logs/testlog.json"   # a failed build must not count an old run
  ninja -C "$dir" -j "$jobs" || return 1
  meson test -C "$dir" --print-errorlogs --num-processes "$jobs" "${testargs[@]}"
}

run_suite_build build-test -Dwerror=true -Dbuildtype=debugoptimized -- || status=1

python3 - "${logs[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
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

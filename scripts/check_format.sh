#!/usr/bin/env bash
# Reports the C++ files under include/ test/ benchmark/ examples/ src/ that clang-format (with the repository's
# .clang-format) would change, with the number of lines each would change, and exits 1 when there is one.
# Changes nothing. To apply the layout: bash scripts/check_format.sh --apply   (clang-format -i on them)
# Usage: bash scripts/check_format.sh [--apply]     (CLANG_FORMAT picks the binary; default clang-format-14)
# CI runs it as the meson test "format" (test/meson.build) in the main build.
set -uo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format-14}
command -v "$cf" >/dev/null || { echo "check_format: $cf not found (apt-get install clang-format-14)"; exit 2; }
mapfile -t files < <(git ls-files -- 'include/*.hpp' 'include/*.h' 'test/*.hpp' 'test/*.cpp' 'test/*.h' \
  'benchmark/*.hpp' 'benchmark/*.cpp' 'examples/*.hpp' 'examples/*.cpp' 'src/*.cpp')
if [ "${1:-}" = "--apply" ]; then
  "$cf" -i --style=file "${files[@]}"
  echo "check_format: formatted ${#files[@]} files"
  exit 0
fi
differ=0 lines=0
for f in "${files[@]}"; do
  d=$("$cf" --style=file "$f" | diff -- "$f" -)
  if [ -n "$d" ]; then
    n=$(grep -c '^<' <<<"$d")   # lines of the file that would change
    echo "$f: $n lines differ"
    differ=$((differ + 1)); lines=$((lines + n))
  fi
done
echo "check_format: $differ of ${#files[@]} files differ from .clang-format ($lines lines); see them with" \
  "$cf --style=file FILE | diff FILE -"
[ $differ -eq 0 ]

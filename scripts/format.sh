#!/usr/bin/env bash
# Formats the tracked C++/CUDA sources with clang-format-14 and the repository's .clang-format.
#   bash scripts/format.sh           rewrite the files in place
#   bash scripts/format.sh --check   change nothing; list the files that differ and exit 1 if any does
set -euo pipefail
cd "$(dirname "$0")/.."
cf="${CLANG_FORMAT:-clang-format-14}"
command -v "$cf" >/dev/null || { echo "format: $cf not found (apt-get install clang-format-14)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' '*.inc')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$cf" --style=file "$f" | cmp -s - "$f"; then echo "format: $f differs from .clang-format"; bad=1; fi
  done
  [ "$bad" = 0 ] && echo "format: ${#files[@]} files match .clang-format"
  exit "$bad"
fi
"$cf" --style=file -i "${files[@]}"

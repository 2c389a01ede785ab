#!/bin/sh
# Fails when a C file differs from what clang-format makes of it (.clang-format at the top).
cd "$(dirname "$0")/../.." || exit 2
CF=${CLANG_FORMAT:-clang-format}
if ! command -v "$CF" >/dev/null; then
    [ -n "$CI" ] && { echo "clang-format is not installed; CI must install it"; exit 1; }
    echo "clang-format is not installed (apt-get install clang-format): skipped"
    exit 77
fi
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests bench -name '*.[ch]')
"$CF" --dry-run -Werror $files || { echo "run: clang-format -i <file>"; exit 1; }
echo "$(echo "$files" | wc -w) files formatted"

#!/bin/sh
# Fails on calls the house style bans (STYLE.md §8): atoi/atol, sprintf, strcpy, strcat,
# strtok, gets anywhere in C sources, and getenv outside the config module.
cd "$(dirname "$0")/../.." || exit 2
files=$(find src include tests bench -name '*.[ch]' | sort)
bad=$(grep -nE '\b(atoi|atol|atoll|sprintf|vsprintf|strcpy|strcat|strtok|gets)[[:space:]]*\(' $files |
      grep -vE '\b(snprintf|vsnprintf)[[:space:]]*\(' )
env=$(grep -nE '\b(secure_)?getenv[[:space:]]*\(' $files | grep -v '^src/config\.c:')
if [ -n "$bad$env" ]; then
    echo "banned calls:"
    [ -n "$bad" ] && echo "$bad"
    [ -n "$env" ] && echo "getenv outside src/config.c:" && echo "$env"
    exit 1
fi
echo "no banned calls in $(echo "$files" | wc -l) files"

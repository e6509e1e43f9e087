#!/usr/bin/env bash
# Re-records the sample traces (see README.md), from the repository root:
#
#   traces/record.sh [CARVE]     CARVE: the carve tool (default build/release/tools/carve)
#
# Needs python3, sqlite3, gawk, perl, lua5.4 and git (Debian packages of the
# same names; lua5.4 for lua).  The traces differ from run to run in detail
# (addresses, hash seeds, thread interleaving), not in kind.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
carve=${1:-build/release/tools/carve}
texts=(/usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 /usr/share/common-licenses/GFDL-1.3)

PYTHONMALLOC=malloc "$carve" record -o traces/python3.trace.gz -- /usr/bin/python3 traces/workloads/python.py
rm -f /tmp/carve-sample.db
"$carve" record -o traces/sqlite3.trace.gz -- sqlite3 /tmp/carve-sample.db -init /dev/null ".read traces/workloads/sqlite.sql" </dev/null
rm -f /tmp/carve-sample.db
"$carve" record -o traces/gawk.trace.gz -- gawk '{ for (i = 1; i <= NF; i++) { w = tolower($i); gsub(/[^a-z]/, "", w); if (w != "") n[w]++ } } END { for (w in n) if (n[w] > 20) print n[w], w }' "${texts[@]}" >/dev/null
"$carve" record -o traces/perl.trace.gz -- perl -ne 'for (split /\W+/) { $n{lc $_}++ if length } END { print "$_ $n{$_}\n" for sort { $n{$b} <=> $n{$a} || $a cmp $b } keys %n }' "${texts[@]}" >/dev/null
"$carve" record -o traces/lua.trace.gz -- lua5.4 traces/workloads/lua.lua
"$carve" record -o traces/git.trace.gz -- git -C "$PWD" log -p -n 40 --no-color >/dev/null

#!/bin/sh
# Runs one fuzz target for a bounded time on a scratch copy of its seed
# corpus (the committed corpus is never written to); exits non-zero when
# libFuzzer finds a crash, a leak, a timeout or an out-of-memory.
#   run.sh BINARY FUZZ_DIR NAME SECONDS WORK_DIR
# OUTRIGGER_FUZZ_SECONDS in the environment overrides SECONDS (keep it under the CTest
# timeout, which follows the CMake cache variable of the same name).
set -eu
# Absolute paths: the HTTP targets change directory when they start.
binary=$(realpath "$1") dir=$(realpath "$2") name=$3 seconds=${OUTRIGGER_FUZZ_SECONDS:-$4}
mkdir -p "$5"
work=$(realpath "$5")/$name
rm -rf "$work/corpus"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$dir/corpus/$name"/* "$work/corpus/"
dict=""
[ -f "$dir/$name.dict" ] && dict="-dict=$dir/$name.dict"
# -close_fd_mask=1: the targets' own output (spdlog) does not flood the log.
exec "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -close_fd_mask=1 -artifact_prefix="$work/artifacts/" $dict "$work/corpus"

#!/usr/bin/env bash
# Runs the coverage-guided fuzz targets in fuzz/ (cargo fuzz, libFuzzer), each for
# FUZZ_SECONDS seconds (default 60), and fails if any of them finds a crash: a panic, an
# overflow, an out-of-memory or a timeout. Needs a nightly toolchain; installs cargo-fuzz if
# it is missing.
#
#   scripts/fuzz.sh                        # every target
#   scripts/fuzz.sh wal_segment raft_peer  # some of them
#   FUZZ_SECONDS=600 scripts/fuzz.sh       # longer
#
# New inputs that reach new code are added to fuzz/corpus/<target>/; a crashing input is
# written to fuzz/artifacts/<target>/ and can be replayed with
# `cargo +nightly fuzz run --debug-assertions <target> <file>`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${FUZZ_SECONDS:-60}"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Debug assertions turn integer overflow into a panic the fuzzer reports. Building every
# target up front keeps a compile error from reading as a crash.
cargo +nightly fuzz build --debug-assertions

failed=()
for target in "${targets[@]}"; do
  echo "=== ${target}: ${seconds}s"
  # A decoder of a few kilobytes that takes seconds is hung, whatever the machine.
  if ! cargo +nightly fuzz run --debug-assertions "${target}" -- \
    -max_total_time="${seconds}" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1; then
    failed+=("${target}")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing failed for: ${failed[*]} (a crashing input is kept under fuzz/artifacts/<target>/)" >&2
  exit 1
fi
echo "no crashes in ${#targets[@]} targets (${seconds}s each)"

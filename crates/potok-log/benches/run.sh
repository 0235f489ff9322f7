#!/bin/sh
# Builds and runs the partition log benchmark with its dd baselines (see docs/benchmarks.md,
# "Partition log (potok-log)"). Extra arguments go to the bench binary, e.g. --mib 256.
# The scratch directory defaults to the target dir, i.e. the same disk as the repository.
set -eu
cd "$(dirname "$0")/../../.."
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -p potok-log --bin potok-log-bench
exec "$TARGET/release/potok-log-bench" --dir "$TARGET/potok-log-bench-tmp" "$@"

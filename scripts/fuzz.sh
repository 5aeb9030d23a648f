#!/usr/bin/env bash
# Long fuzzing of every parser (crates/fuzz/tests/: data formats and images, weight files,
# configs and `--set`, checkpoint files), beyond the few thousand cases per target that
# `cargo test` runs in CI.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [SEED] [TARGET_FILTER]
#
# Each target runs for SECONDS_PER_TARGET (default 600) from the mutation stream SEED
# (default: a new one each time, printed); TARGET_FILTER is a `cargo test` name filter
# (default: all). A violation (a panic, an error that does not name the file, an allocation
# beyond the input's actual size) stops the target, shrinks the input, writes it under
# $TMPDIR/unseen-fuzz-failures/ and prints it in hex; once fixed, keep it in
# crates/fuzz/regressions/<target>/ so every later run replays it. The per-target lines
# ("fuzz <target>: N cases ...") are the counts to report.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
SEED=${2:-$(date +%s)}
FILTER=${3:-}
echo "fuzzing ${SECS}s per target, seed $SEED"
UNSEEN_FUZZ_SECONDS=$SECS UNSEEN_FUZZ_SEED=$SEED \
    cargo test --release -p unseen-fuzz --tests $FILTER -- --nocapture --test-threads 1 \
    2>&1 | grep -E "^fuzz |panicked|minimised|hex:|test result|^error"

#!/usr/bin/env bash
# Long crash-anywhere run (tests/crash.rs): for each family's tiny CPU config, KILLS runs
# each killed with SIGKILL at a seeded fault point (optimiser steps, evaluation batches,
# every file written, checkpoint and best/ folder swaps), then resumed; each must end with
# the uninterrupted run's metrics.json, bit for bit. CI runs 4 kill points per family.
#
#   scripts/crash_anywhere.sh [KILLS] [SEED]
#
# Prints the table "family | point:hit | identical", one row per kill.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-40}
SEED=${2:-17}
UNSEEN_CRASH_KILLS=$KILLS UNSEEN_CRASH_SEED=$SEED \
    cargo test --release -p trainer --test crash -- --nocapture --test-threads 1 \
    2>&1 | grep -E " \| |^test |test result|panicked|^error"

#!/usr/bin/env bash
# The README's Performance table, from one run on this machine: every criterion bench of the
# wsproto-benches package (benches/Cargo.toml; short measurements: 1 s warm-up, 3 s, 20
# samples), the decode cases again with the implementations taking turns (41 rounds), the
# end-to-end comparison (benches/e2e.sh), then benches/table.py prints medians and ratios and
# writes target/wsproto-bench/table.md.
#
#   benches/run.sh            # about 20 minutes on 2 cores; run it on an otherwise idle machine
#   benches/run.sh --no-e2e   # criterion benches only
#
# Not run here, nor in CI: the broadcast benches (issue 17), each a few minutes, run by hand:
#   cargo run --release -p wsproto-benches --example broadcast            # (a) in process
#   cargo run --release -p wsproto-benches --example broadcast_loopback   # (b) and (c), loopback
set -euo pipefail
cd "$(dirname "$0")/.."

# Absolute, because each bench runs in benches/ (its package) and writes to CARGO_TARGET_DIR when
# it is set: criterion's medians and common::results_dir() land where table.py reads them.
TARGET="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
export CARGO_TARGET_DIR="$TARGET"
# One run: no medians left over from an earlier one.
rm -rf "$TARGET/criterion" "$TARGET/wsproto-bench"
mkdir -p "$TARGET/wsproto-bench"

cargo bench -p wsproto-benches --bench decode --bench encode --bench primitives --bench handshake \
  --bench deflate
# The decode cases again with the implementations taking turns, against the machine's drift.
# An earlier run's medians (a filtered manual run's too) would land in the table: cleared first.
rm -rf "$TARGET/wsproto-bench/interleaved"
DECODE_INTERLEAVED=1 cargo bench -p wsproto-benches --bench decode
if [ "${1:-}" != "--no-e2e" ]; then
  benches/e2e.sh
fi
python3 benches/table.py "$TARGET" | tee "$TARGET/wsproto-bench/table.md"

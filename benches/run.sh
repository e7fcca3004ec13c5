#!/usr/bin/env bash
# The README's Performance table, from one run on this machine: every criterion bench (short
# measurements: 1 s warm-up, 3 s, 20 samples), the end-to-end comparison (benches/e2e.sh), then
# benches/table.py prints medians and ratios and writes target/wsproto-bench/table.md.
#
#   benches/run.sh            # about 20 minutes on 2 cores; run it on an otherwise idle machine
#   benches/run.sh --no-e2e   # criterion benches only
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${CARGO_TARGET_DIR:-target}"
# One run: no medians left over from an earlier one.
rm -rf "$TARGET/criterion" "$TARGET/wsproto-bench"
mkdir -p "$TARGET/wsproto-bench"

cargo bench --bench decode --bench encode --bench primitives --bench handshake --bench deflate
if [ "${1:-}" != "--no-e2e" ]; then
  benches/e2e.sh
fi
python3 benches/table.py "$TARGET" | tee "$TARGET/wsproto-bench/table.md"

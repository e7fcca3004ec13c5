#!/usr/bin/env bash
# End to end, over loopback: our tokio echo_server and each peer's echo server
# (benches/examples/peer_echo_servers.rs), driven by benches/examples/load.rs; then the RSS of
# 1,000 idle connections per server (examples/idle_connections.rs, on fresh server processes).
# echo_server and idle_connections are the wsproto package's examples, the other two the
# wsproto-benches package's: one target directory, so all four land in target/release/examples.
# Appends tab-separated rows to target/wsproto-bench/e2e.tsv, which benches/table.py reads.
#
#   benches/e2e.sh                     # ROUNDS=3 SECONDS_PER_RUN=5 IDLE=1000 by default
set -euo pipefail
trap 'echo "e2e.sh: line $LINENO failed (status $?)" >&2' ERR
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
IDLE="${IDLE:-1000}"
TARGET="${CARGO_TARGET_DIR:-target}"
EX="$TARGET/release/examples"
OUT="$TARGET/wsproto-bench"
mkdir -p "$OUT"
: >"$OUT/e2e.tsv"

cargo build --release -p wsproto -p wsproto-benches --example echo_server \
  --example idle_connections --example peer_echo_servers --example load

SERVERS=(wsproto tungstenite fastwebsockets tokio-websockets sockudo-ws)
declare -A PID URL
LOGS="$(mktemp -d)"
cleanup() {
  for name in "${!PID[@]}"; do
    kill "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
  done
  rm -rf "$LOGS"
}
trap cleanup EXIT

start() {
  local name=$1
  if [ "$name" = wsproto ]; then
    "$EX/echo_server" --addr 127.0.0.1:0 >"$LOGS/$name" 2>/dev/null &
  else
    "$EX/peer_echo_servers" --peer "$name" --addr 127.0.0.1:0 >"$LOGS/$name" 2>/dev/null &
  fi
  PID[$name]=$!
  for _ in $(seq 200); do grep -qs "listening on ws://" "$LOGS/$name" && break; sleep 0.05; done
  URL[$name]="$(grep -o 'ws://[0-9.:]*' "$LOGS/$name" | head -1)/"
}
stop() {
  kill "${PID[$1]}" 2>/dev/null || true
  wait "${PID[$1]}" 2>/dev/null || true
  unset "PID[$1]"
}

# Idle memory first, each server fresh and alone.
for name in "${SERVERS[@]}"; do
  start "$name"
  line="$("$EX/idle_connections" --pid "${PID[$name]}" --url "${URL[$name]}" \
    --connections "$IDLE")" || line=""
  bytes="$(sed -n 's/.*connections: \([0-9-]*\) bytes.*/\1/p' <<<"$line")"
  printf 'idle\t%s\t%s\t%s\n' "$name" "$IDLE" "$bytes" | tee -a "$OUT/e2e.tsv"
  stop "$name"
  sleep 1
done

# Load: all servers up (idle ones cost nothing); each round visits them in a rotated order.
for name in "${SERVERS[@]}"; do start "$name"; done
for round in $(seq "$ROUNDS"); do
  for scenario in "1 16" "100 16" "10 65536"; do
    read -r connections size <<<"$scenario"
    for i in "${!SERVERS[@]}"; do
      name="${SERVERS[$(((i + round) % ${#SERVERS[@]}))]}"
      row="$("$EX/load" --url "${URL[$name]}" --connections "$connections" --size "$size" \
        --seconds "$SECONDS_PER_RUN" --warmup 1 --pid "${PID[$name]}" --label "$name")" ||
        continue
      printf 'load\t%s\t%s\n' "$round" "$row" | tee -a "$OUT/e2e.tsv"
    done
  done
done

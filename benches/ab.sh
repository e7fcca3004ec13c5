#!/usr/bin/env bash
# A/B of wsproto's hot paths: the decode and encode benches built at OLD_REV and at the working
# tree, run in turns (each round one run of each build, the order flipped every round) so that
# a slow spell of the shared machine hits both alike. Prints, per benchmark row, the median over
# the rounds of criterion's median for each build and the ratio new/old of those times (below
# 1.00 the working tree is faster), with the range of the per-round ratios beside it.
#
#   benches/ab.sh OLD_REV                                   # 5 rounds, our rows of both benches
#   ROUNDS=9 FILTER='decode_server_binary_1KiB.*/wsproto$' benches/ab.sh d0cef99
#
# Environment: ROUNDS (default 5), BENCHES (default "decode encode"), FILTER (criterion's regex
# on the benchmark ID "group/function"; default '/wsproto$', our row of each group and no peer),
# WARMUP and MEASURE (criterion's warm-up and measurement seconds per row, default 1 and 2),
# AB_DIR (default ${TMPDIR:-/tmp}/wsproto-ab/FULL_REV).
#
# OLD_REV is exported with `git archive` into $AB_DIR/src (outside this workspace, so that
# cargo does not take it for a member) and built there with its own layout (benches in the
# root package before the wsproto-benches package existed) and its own Cargo.lock, into
# $AB_DIR/target; both are kept, so the next A/B against the same revision builds nothing.
# The working tree builds into the usual target directory. Every run writes criterion's files
# to its own directory ($AB_DIR/runs/SIDE-BENCH-ROUND, through CRITERION_HOME), read at the end.
#
# On this machine one run of a row can land 1.5x from the next for the same binary (16 B
# encodes at either about 105 or 165 µs per iteration): read the per-round range, take more
# rounds before believing a ratio, and see the noise floor with an A/A run (OLD_REV = HEAD on a
# clean tree).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
ROUNDS="${ROUNDS:-5}"
read -r -a BENCHES <<<"${BENCHES:-decode encode}"
FILTER="${FILTER:-/wsproto\$}"
WARMUP="${WARMUP:-1}"
MEASURE="${MEASURE:-2}"
rev="$(git rev-parse --verify --quiet "$1^{commit}")" || {
  echo "ab.sh: no commit $1" >&2
  exit 2
}
AB_DIR="${AB_DIR:-${TMPDIR:-/tmp}/wsproto-ab/$rev}"
mkdir -p "$AB_DIR"
AB_DIR="$(realpath "$AB_DIR")"

if [ ! -e "$AB_DIR/src/.complete" ]; then
  rm -rf "$AB_DIR/src"
  mkdir -p "$AB_DIR/src"
  git archive --format=tar "$rev" | tar -x -C "$AB_DIR/src"
  touch "$AB_DIR/src/.complete"
fi

# Prints "NAME<TAB>EXECUTABLE" for each bench binary cargo built; run in the package's checkout.
bench_args=()
for bench in "${BENCHES[@]}"; do bench_args+=(--bench "$bench"); done
executables() {
  cargo bench --no-run "$@" "${bench_args[@]}" --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    kind = m.get("target", {}).get("kind", [])
    if m.get("reason") == "compiler-artifact" and "bench" in kind and m.get("executable"):
        print(m["target"]["name"], m["executable"], sep="\t")
'
}

declare -A EXE
# Old: its own layout. A revision that already has the bench package builds that package.
echo "ab.sh: building ${BENCHES[*]} at ${rev:0:10} in $AB_DIR" >&2
old_pkg=()
[ ! -f "$AB_DIR/src/benches/Cargo.toml" ] || old_pkg=(-p wsproto-benches)
while IFS=$'\t' read -r name exe; do EXE[old-$name]="$exe"; done < <(
  cd "$AB_DIR/src" && export CARGO_TARGET_DIR="$AB_DIR/target" && executables "${old_pkg[@]}"
)
echo "ab.sh: building ${BENCHES[*]} at the working tree" >&2
while IFS=$'\t' read -r name exe; do EXE[new-$name]="$exe"; done < <(executables -p wsproto-benches)
for side in old new; do
  for bench in "${BENCHES[@]}"; do
    [ -n "${EXE[$side-$bench]:-}" ] || {
      echo "ab.sh: no $bench bench binary for $side" >&2
      exit 1
    }
  done
done

RUNS="$AB_DIR/runs"
rm -rf "$RUNS"
mkdir -p "$RUNS"
run() {
  local side=$1 bench=$2 round=$3
  local out="$RUNS/$side-$bench-$round"
  (cd "$RUNS" && env -u DECODE_INTERLEAVED CRITERION_HOME="$out" "${EXE[$side-$bench]}" --bench \
    --noplot --warm-up-time "$WARMUP" --measurement-time "$MEASURE" "$FILTER") >"$out.log" 2>&1 || {
    echo "ab.sh: $side $bench failed, see $out.log" >&2
    exit 1
  }
}
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order=(old new); else order=(new old); fi
  for bench in "${BENCHES[@]}"; do
    for side in "${order[@]}"; do
      printf 'ab.sh: round %s/%s, %s, %s\n' "$round" "$ROUNDS" "$bench" "$side" >&2
      run "$side" "$bench" "$round"
    done
  done
done

new_label="working tree at $(git rev-parse --short=10 HEAD)"
[ -z "$(git status --porcelain --untracked-files=no)" ] || new_label+=" with changes"
python3 - "$RUNS" "${rev:0:10}" "$new_label" "$ROUNDS" <<'EOF'
import json
import statistics
import sys
from pathlib import Path

runs, old_rev, new_label, rounds = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
times = {}  # (row, side) -> {round: median ns}
for meta_path in runs.glob("*/**/new/benchmark.json"):
    side, _, round_ = meta_path.relative_to(runs).parts[0].rsplit("-", 2)
    meta = json.loads(meta_path.read_text())
    median = json.loads((meta_path.parent / "estimates.json").read_text())["median"]
    times.setdefault((meta["full_id"], side), {})[int(round_)] = median["point_estimate"]


def duration(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


print(f"old: {old_rev}; new: {new_label}; {rounds} rounds, turns flipped each round")
print("time per iteration: median over rounds of criterion's median;")
print("new/old below 1.00: the working tree is faster\n")
rows = sorted({row for row, _ in times})
width = max([len(r) for r in rows] + [3])
print(f"{'row':<{width}}  {'old':>11}  {'new':>11}  {'new/old':>7}  per-round new/old")
for row in rows:
    old, new = times.get((row, "old"), {}), times.get((row, "new"), {})
    cells = [duration(statistics.median(s.values())) if s else "-" for s in (old, new)]
    ratio, spread = "-", ""
    if old and new:
        ratio = f"{statistics.median(new.values()) / statistics.median(old.values()):.3f}"
        per_round = [new[r] / old[r] for r in sorted(old.keys() & new.keys())]
        spread = f"{min(per_round):.3f} .. {max(per_round):.3f}"
    print(f"{row:<{width}}  {cells[0]:>11}  {cells[1]:>11}  {ratio:>7}  {spread}")
if not rows:
    print(f"no row matched; the logs are in {runs}")
EOF
echo "ab.sh: criterion's output per run is in $RUNS" >&2

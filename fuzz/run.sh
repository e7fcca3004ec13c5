#!/usr/bin/env bash
# Runs one fuzz target on the stable toolchain, on one core, seeded with fuzz/seeds/TARGET.
#
#   fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]
#   fuzz/run.sh --install          # only install what fuzzing needs
#   fuzz/run.sh --build            # install, then build every target
#
# Targets: frame_header server_stream client_stream handshake_request differential.
# Installs what it needs first (idempotent): cargo-fuzz from crates.io, and a C++ compiler
# for libFuzzer if none is found. Exits non-zero on a crash, a failed invariant, a leak, a
# timeout or an out-of-memory; the input is saved under fuzz/artifacts/TARGET/.
#
# Stable works because `cargo fuzz -s none` passes only stable flags (-Cpasses=sancov-module
# and -Cllvm-args=-sanitizer-coverage-*). SANITIZER=address turns AddressSanitizer on, which
# needs the unstable -Zsanitizer: this script then sets RUSTC_BOOTSTRAP=1 (see README.md).
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.2
SANITIZER=${SANITIZER:-none}
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

install() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "run.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
        cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
    fi
    # libfuzzer-sys compiles LLVM's libFuzzer (C++) with the `cc` crate: g++ or clang++ works.
    if ! command -v "${CXX:-c++}" >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 &&
        ! command -v clang++ >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            echo "run.sh: installing g++ for libFuzzer" >&2
            apt-get update -qq && apt-get install -y -qq g++ >/dev/null
        else
            echo "run.sh: libFuzzer needs a C++ compiler (g++ or clang++)" >&2
            exit 1
        fi
    fi
}

sanitizer_env() {
    if [ "$SANITIZER" != none ] && ! rustc -V | grep -q nightly; then
        # -Zsanitizer is unstable; this is the compiler's own escape hatch, not a nightly.
        export RUSTC_BOOTSTRAP=1
    fi
}

case "${1:-}" in
"" | -h | --help)
    sed -n '2,16p' run.sh | sed 's/^# \{0,1\}//'
    exit 2
    ;;
--install)
    install
    exit 0
    ;;
--build)
    install
    sanitizer_env
    cargo fuzz build -s "$SANITIZER"
    exit 0
    ;;
esac

target=$1
seconds=${2:-60}
shift
[ $# -gt 0 ] && shift
if [ ! -f "fuzz_targets/$target.rs" ]; then
    echo "run.sh: no target $target (have: $(ls fuzz_targets | sed 's/\.rs$//' | tr '\n' ' '))" >&2
    exit 2
fi
install
sanitizer_env
# New inputs go to corpus/TARGET (git-ignored); the committed seeds are read-only.
mkdir -p "corpus/$target"
exec cargo fuzz run -s "$SANITIZER" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict=dict/websocket.dict "$@"

#!/usr/bin/env bash
# The soak of issue 12: three replicas of the real binary on a PostgreSQL of its own, a
# steady mix of calls from three callers, 1,000 WatchStatus streams held open, and faults
# on a schedule (upstream 5xx bursts, slow answers, a replica SIGKILLed and restarted,
# PostgreSQL restarted). Exits non-zero when a correctness check fails.
#
#   bench/soak.sh                     release binary, 10 minutes
#   bench/soak.sh --duration 3m       another length (a cycle of faults a minute)
#   bench/soak.sh --debug ...         the debug binary, the driver in the dev profile (no release build)
#   bench/soak.sh --smoke             30 s, 300 streams, debug binary: correctness only (CI)
#   bench/soak.sh ... --streams N --out FILE
#
# The summary table is printed and written to target/soak-summary.md (or --out). The
# driver is benches/suite/soak.rs (cargo bench --bench suite -- soak ...). Needs Debian's
# postgresql; as root, the server runs as the user pgtest (created here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

debug=0
args=()
for arg in "$@"; do
  case "$arg" in
    --debug) debug=1 ;;
    --smoke) debug=1; args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done

if [ "$(id -u)" -eq 0 ] && ! id pgtest >/dev/null 2>&1; then
  useradd -r -M -s /usr/sbin/nologin pgtest
fi
# 1,000 streams and their upstream connections; every process started here inherits it.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
want=65536
[ "$hard" -lt "$want" ] && want=$hard
ulimit -n "$want" 2>/dev/null || true

# As bench/run.sh: a copy of what `cargo build` makes (the binary cargo builds for a bench
# has the dev-dependencies' features too).
mkdir -p target/bench
if [ "$debug" = 1 ]; then
  cargo build --locked --bin waba-numbers
  cp target/debug/waba-numbers target/bench/waba-numbers-debug
  WABA_BENCH_BIN="$PWD/target/bench/waba-numbers-debug" \
    exec cargo bench --locked --profile dev --bench suite -- soak "${args[@]}"
fi
cargo build --locked --release --bin waba-numbers
cp target/release/waba-numbers target/bench/waba-numbers-release
WABA_BENCH_BIN="$PWD/target/bench/waba-numbers-release" \
  exec cargo bench --locked --bench suite -- soak "${args[@]}"

#!/usr/bin/env bash
# The benchmark suite of issue 8: one table, every row measured in this run on this
# machine as a ratio against a baseline measured in the same run, next to its target.
#
#   bench/run.sh                  build the release binary, run every row (a few minutes)
#   bench/run.sh --rows 1,5       some rows only
#   bench/run.sh --smoke          tiny counts on the debug binary, in seconds (CI); or SMOKE=1
#
# Installs h2load (Debian's nghttp2-client) if it is missing. The suite itself is
# benches/suite/ (cargo bench --bench suite); bench/RESULTS.md has the latest full run.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
for arg in "$@"; do [ "$arg" = --smoke ] && smoke=1; done
[ "${SMOKE:-0}" = 1 ] && smoke=1

if ! command -v h2load >/dev/null 2>&1; then
  echo "bench: installing h2load (nghttp2-client)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq nghttp2-client >/dev/null
fi

# Row 5 holds 1,000 gRPC streams, and 1,000 upstream connections in the service and as
# many in the simulated Graph API; every process started here inherits the limit.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
want=65536
[ "$hard" -lt "$want" ] && want=$hard
ulimit -n "$want"

if [ "$smoke" = 1 ]; then
  # The debug binary (CI has it built already) and the suite in the dev profile: no
  # release build.
  args=()
  for arg in "$@"; do [ "$arg" = --smoke ] || args+=("$arg"); done
  cargo build --locked --bin waba-numbers
  exec cargo bench --locked --profile dev --bench suite -- --smoke "${args[@]}"
fi
cargo build --locked --release --bin waba-numbers
exec cargo bench --locked --bench suite -- "$@"

# Shared by the client and smoke tests (source it): starts `waba-numbers --sandbox` on
# free loopback ports and stops it when the script exits.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Sets WABA_TARGET (host:port of the gRPC API) and SANDBOX_PID. On exit the sandbox is
# stopped, its log shown if the script failed, and a panic in it fails the script.
start_sandbox() {
  local bin=${WABA_BIN:-target/debug/waba-numbers}
  [ -n "${WABA_BIN:-}" ] || cargo build --quiet --locked --bin waba-numbers
  SANDBOX_LOG=${SANDBOX_LOG:-$(mktemp)}
  local grpc_port http_port
  grpc_port=$(free_port)
  http_port=$(free_port)
  "$bin" --sandbox --listen "127.0.0.1:$grpc_port" --http-listen "127.0.0.1:$http_port" \
    >"$SANDBOX_LOG" 2>&1 &
  SANDBOX_PID=$!
  trap stop_sandbox EXIT
  for _ in $(seq 200); do
    kill -0 "$SANDBOX_PID" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null; then
      export WABA_TARGET="127.0.0.1:$grpc_port"
      return 0
    fi
    sleep 0.05
  done
  echo "waba-numbers --sandbox did not start" >&2
  return 1
}

# The EXIT trap: stops the sandbox, then runs the caller's `cleanup` function if any.
stop_sandbox() {
  local status=$?
  kill "$SANDBOX_PID" 2>/dev/null || true
  wait "$SANDBOX_PID" 2>/dev/null || true
  if grep -q panicked "$SANDBOX_LOG"; then
    echo "waba-numbers panicked" >&2
    status=1
  fi
  if [ "$status" != 0 ]; then
    echo "--- waba-numbers --sandbox log:" >&2
    cat "$SANDBOX_LOG" >&2
  fi
  rm -f "$SANDBOX_LOG"
  if declare -F cleanup >/dev/null; then cleanup; fi
  exit "$status"
}

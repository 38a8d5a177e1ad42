# Shared by the client and smoke tests (source it): starts `waba-numbers --sandbox` on
# free loopback ports and stops it when the script exits.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Sets WABA_TARGET (host:port of the gRPC API) and SANDBOX_PID.
start_sandbox() {
  local bin=${WABA_BIN:-target/debug/waba-numbers}
  [ -x "$bin" ] || cargo build --quiet
  local grpc_port http_port
  grpc_port=$(free_port)
  http_port=$(free_port)
  "$bin" --sandbox --listen "127.0.0.1:$grpc_port" --http-listen "127.0.0.1:$http_port" \
    >"${SANDBOX_LOG:-/tmp/waba-sandbox-$$.log}" 2>&1 &
  SANDBOX_PID=$!
  # Stops the sandbox, then runs the caller's `cleanup` function if it has one.
  trap 'kill $SANDBOX_PID 2>/dev/null; wait $SANDBOX_PID 2>/dev/null || true; if declare -F cleanup >/dev/null; then cleanup; fi' EXIT
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null; then
      export WABA_TARGET="127.0.0.1:$grpc_port"
      return 0
    fi
    sleep 0.05
  done
  echo "waba-numbers --sandbox did not start; its log:" >&2
  cat "${SANDBOX_LOG:-/tmp/waba-sandbox-$$.log}" >&2
  return 1
}

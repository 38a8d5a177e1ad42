#!/usr/bin/env bash
# The Go client test, offline: Debian's Go, protoc and grpc-go packages in GOPATH mode
# (module downloads are not possible here), then the example against a fresh sandbox.
# customers.proto imports google/rpc/status.proto: protoc reads the vendored copy in
# proto/, but only the files named below are generated, so google.rpc.Status comes from
# Debian's genproto (google.golang.org/genproto/googleapis/rpc/status, its go_package).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ws=$(mktemp -d)
cleanup() { rm -rf "$ws"; }
trap cleanup EXIT
mkdir -p "$ws/src"
protoc -I proto --go_out="$ws/src" --go-grpc_out="$ws/src" \
  proto/whatsapp/phonenumbers/v1/phone_numbers.proto proto/whatsapp/phonenumbers/v1/customers.proto
mkdir -p "$ws/src/example"
cp clients/go/main.go "$ws/src/example/"
(cd "$ws/src/example" && GO111MODULE=off GOPROXY=off GOPATH="$ws:/usr/share/gocode" GOCACHE="$ws/cache" \
  go build -o "$ws/example" .)

start_sandbox
GRPC_GO_RETRY=on "$ws/example" -target "$WABA_TARGET" -service-config clients/service-config.json

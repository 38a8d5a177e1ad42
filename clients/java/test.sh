#!/usr/bin/env bash
# The Java client test, offline: stubs from proto/ with Debian's protoc and grpc-java
# plugin, compiled against Debian's grpc-java jars, then the example against a sandbox.
# Debian's proto-google-common-protos (libgoogle-common-protos-java) is 1.16.0, without
# ErrorInfo, and it ships no grpc-services jar: google.rpc and the health service are
# generated instead, google.rpc.Status from the copy customers.proto imports
# (proto/google/rpc/status.proto), error_details and health from clients/java/proto.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ws=$(mktemp -d)
cleanup() { rm -rf "$ws"; }
trap cleanup EXIT
mkdir -p "$ws/gen" "$ws/classes"
protoc -I proto -I clients/java/proto \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin \
  --java_out="$ws/gen" --grpc-java_out="$ws/gen" \
  proto/whatsapp/phonenumbers/v1/phone_numbers.proto proto/whatsapp/phonenumbers/v1/customers.proto \
  proto/google/rpc/status.proto clients/java/proto/google/rpc/error_details.proto \
  clients/java/proto/grpc/health/v1/health.proto

jars=(grpc-api grpc-core grpc-stub grpc-protobuf grpc-protobuf-lite grpc-context grpc-netty protobuf
  guava geronimo-annotation-1.3-spec jsr305 error_prone_annotations perfmark-api
  netty-buffer netty-codec netty-codec-http netty-codec-http2 netty-codec-socks netty-common
  netty-handler netty-handler-proxy netty-resolver netty-transport)
classpath=$(printf '/usr/share/java/%s.jar:' "${jars[@]}")
javac -nowarn -d "$ws/classes" -cp "$classpath" $(find "$ws/gen" -name '*.java') clients/java/Example.java

start_sandbox
java -cp "$ws/classes:$classpath" Example "$WABA_TARGET"

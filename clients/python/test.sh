#!/usr/bin/env bash
# The Python client test: stubs from proto/ with grpcio-tools, then example.py against
# a fresh `waba-numbers --sandbox`. customers.proto imports google/rpc/status.proto:
# protoc reads the vendored copy in proto/, but no stub is generated for it (only the
# files named below are), so the generated code imports google.rpc.status_pb2 from
# googleapis-common-protos (requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

venv=${PYTHON_VENV:-.venv-python}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -r clients/python/requirements.txt

gen=clients/python/gen
rm -rf "$gen" && mkdir -p "$gen"
"$venv/bin/python" -m grpc_tools.protoc -I proto \
  --python_out="$gen" --pyi_out="$gen" --grpc_python_out="$gen" \
  proto/whatsapp/phonenumbers/v1/phone_numbers.proto proto/whatsapp/phonenumbers/v1/customers.proto

start_sandbox
"$venv/bin/python" clients/python/example.py --target "$WABA_TARGET"

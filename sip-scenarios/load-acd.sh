#!/usr/bin/env bash
# Step load of the FULL hotline path (IVR -> queue -> agent), on loopback.
#
#   SIPp UAC, the carrier (acd-load-caller.xml, 127.0.0.1:7061)
#     -> hotline line 12345 (SIP 127.0.0.1:7060, API 127.0.0.1:7090): the
#        gateway answers, its flow plays one short prompt (PROMPT, default
#        the shipped `num_1`, 0.27 s), then queues the call in `general`
#       -> an agent's phone: ONE SIPp UAS for all AGENTS agents
#          (acd-load-agent-uas.xml, 127.0.0.1:7070) rings, answers at once
#     the caller hangs up PROMPT_MS + HOLD_MS after the gateway's 200, so
#     the agent talks about HOLD_MS; BYE -> 200 on both legs.
#
# Before the steps (once):
#   - writes the gateway's config with AGENTS agents (ids 20001..., password
#     per agent, skills general=1), queue `general` (wrap_up_secs = 0,
#     ring_timeout_secs = 10), sip.digest_algorithms = ["MD5"] (SIPp reads
#     only the first challenge, MD5 only), the widest media port range, one
#     trunk for 127.0.0.0/8 without call or rate limits;
#   - registers every agent's phone with ONE SIPp (acd-load-register.xml,
#     injection file agents.csv `id;password`) from the agents' UAS address
#     (the gateway sends an agent's calls where its REGISTER came from);
#   - logs every agent in with ONE SIPp dialling *21 (acd-load-login.xml,
#     same CSV; 407, then 200, the confirmation, BYE from the gateway);
#   - checks /metrics: hotline_agents{state="ready"} and
#     hotline_queue_agents{state="ready"} (ready AND registered) = AGENTS.
# Per rate step in RATES (DURATION seconds, RATE x DURATION calls) it
# records what load-b2bua.sh records:
#   - caller calls ok / failed (a call that never completed counts as failed),
#     retransmissions, dead / out-of-call messages, SIPp watchdog (a step
#     where any SIPp's watchdog fired is VOID: the generator fell behind);
#   - setup_ms: the caller's INVITE -> 200 (the gateway answering, IVR);
#     cps_got: SIPp's average call rate, which counts the last calls' hold
#     time (below RATE for short steps);
#   - gateway CPU% (average / peak of 1 s samples), peak RSS; CPU% of the
#     caller SIPp and the agents' SIPp;
#   - hotline_sip_processing_seconds p50 / p99 (worst of the samples taken
#     every SAMPLE_SECS under load), kernel drops on the gateway's SIP socket;
# and the ACD's figures from /metrics at the end of the step (once every
# call has ended):
#   - ans15 / ans_late: hotline_queue_answered_total{within_15s="true"/"false"}
#     during the step; aband: hotline_queue_abandoned_total during the step;
#   - wait_max: the most hotline_queue_waiting seen in the samples; waiting
#     at the end; talk_ms: the agents' mean talk (their SIPp's call length;
#     short of HOLD_MS by the callers' mean wait in the queue);
#   - hotline_agents by state at the end (ready/reserved/talking/wrap_up/
#     not_ready/logged_out), and the most agents talking seen in the samples;
#   - agentOk / agentFail: calls the agents' SIPp completed / failed;
#     bindF: media bind failures.
# A step fails when any call failed (caller's or agents' SIPp), or when any
# call was not answered by an agent (answered != calls, or any abandoned);
# the run stops there.
# Everything goes to OUT_DIR (gateway.log, load.toml, agents.csv, per step
# the SIPp logs and CSVs, metrics-*.txt, acd.txt; summary.txt).
#
# Sizing: every call holds a caller leg from the gateway's 200 to the BYE
# and an agent leg from the offer to the BYE; each leg takes 2 even ports
# (RTP) + the odd ports above (RTCP): 4 ports per call, so the range holds
# (MEDIA_PORT_MAX - MEDIA_PORT_MIN + 1) / 4 calls. At RATE cps there are
# about RATE x (PROMPT_MS + HOLD_MS + 0.1 s) calls up and RATE x (HOLD_MS +
# 0.1 s) agents busy. The script prints the highest rate the ports and the
# agents allow and refuses RATES above either (FORCE=1 runs them anyway,
# e.g. to see how the gateway refuses). Also mind the audio the gateway
# makes: the prompt (~50 packets/s per caller while it plays) and music
# while a call waits; keep the prompt short.
#
# Usage:
#   sip-scenarios/load-acd.sh                                   # build, full run
#   RATES="20 50" DURATION=10 AGENTS=200 sip-scenarios/load-acd.sh   # smoke
# Environment:
#   RATES        call rates (calls/s), default "100 200 300 400 500"
#   DURATION     seconds per step, default 60
#   HOLD_MS      agent talk time (ms), default 5000
#   AGENTS       agents (ids 20001...), default 3000
#   PROMPT       the flow's one prompt, default num_1 (any shipped prompt name
#                or a prompts/acd/*.wav name; its length is read from the WAV)
#   MEDIA_PORT_MIN / MEDIA_PORT_MAX  the gateway's RTP range, default
#                10000-65535 (the SIP/SIPp ports below sit under 10000)
#   SHARDS       media.shards, default 0 (one per core)
#   REG_RATE     registrations and logins per second, default 200
#   EXPIRES      Expires the phones ask for (s), default 86400 (granted: the
#                config's max_expires_secs is set to it)
#   SAMPLE_SECS  /metrics sampling period under load, default 5
#   DRAIN_SECS   after a step, how long to wait for every call to end and
#                every agent to be ready again, default 30
#   OUT_DIR      default target/load-acd/<timestamp>
#   HOTLINE_BIN  gateway binary, default target/release/hotline (built unless
#                SKIP_BUILD=1; the ci profile: HOTLINE_BIN=target/ci/hotline)
#   SKIP_BUILD   1: do not run cargo build
#   FORCE        1: run rates above the computed limits
#   GW_SIP_PORT API_PORT UAC_PORT AGENT_PORT LOGIN_PORT UAC_MEDIA_PORT
#   AGENT_MEDIA_PORT  (defaults 7060 7090 7061 7070 7071 7100 7110)
#   UAC_ARGS / UAS_ARGS  extra SIPp options for the caller / agents' SIPp
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

RATES="${RATES:-100 200 300 400 500}"
DURATION="${DURATION:-60}"
HOLD_MS="${HOLD_MS:-5000}"
AGENTS="${AGENTS:-3000}"
PROMPT="${PROMPT:-num_1}"
MEDIA_PORT_MIN="${MEDIA_PORT_MIN:-10000}"
MEDIA_PORT_MAX="${MEDIA_PORT_MAX:-65535}"
SHARDS="${SHARDS:-0}"
REG_RATE="${REG_RATE:-200}"
EXPIRES="${EXPIRES:-86400}"
DRAIN_SECS="${DRAIN_SECS:-30}"
SAMPLE_SECS="${SAMPLE_SECS:-5}"
FORCE="${FORCE:-0}"
OUT_DIR="${OUT_DIR:-$repo/target/load-acd/$(date +%Y%m%d-%H%M%S)}"
HOTLINE_BIN="${HOTLINE_BIN:-$repo/target/release/hotline}"
SKIP_BUILD="${SKIP_BUILD:-0}"

GW_SIP_PORT=${GW_SIP_PORT:-7060}
API_PORT=${API_PORT:-7090}
UAC_PORT=${UAC_PORT:-7061}
AGENT_PORT=${AGENT_PORT:-7070}
LOGIN_PORT=${LOGIN_PORT:-7071}
UAC_MEDIA_PORT=${UAC_MEDIA_PORT:-7100}
AGENT_MEDIA_PORT=${AGENT_MEDIA_PORT:-7110}
FIRST_AGENT=20001

log() { printf 'load-acd: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v sipp >/dev/null || die "sipp missing: run ./scripts/install-test-deps"
for v in DURATION AGENTS REG_RATE EXPIRES DRAIN_SECS SAMPLE_SECS MEDIA_PORT_MIN MEDIA_PORT_MAX; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[[ "$HOLD_MS" =~ ^[0-9]+$ ]] || die "HOLD_MS must be an integer (ms)"
[[ "$SHARDS" =~ ^[0-9]+$ ]] || die "SHARDS must be an integer"
[[ "$PROMPT" =~ ^[A-Za-z0-9_-]+$ ]] || die "PROMPT must be a prompt name"
[ -n "${RATES// /}" ] || die "RATES is empty"
for r in $RATES; do
  [[ "$r" =~ ^[1-9][0-9]*$ ]] || die "bad rate in RATES: $r"
done
[ "$MEDIA_PORT_MIN" -ge 1024 ] && [ "$MEDIA_PORT_MAX" -le 65535 ] \
  && [ "$MEDIA_PORT_MAX" -gt "$MEDIA_PORT_MIN" ] \
  || die "media range $MEDIA_PORT_MIN-$MEDIA_PORT_MAX: must lie in 1024-65535"
for p in $GW_SIP_PORT $API_PORT $UAC_PORT $AGENT_PORT $LOGIN_PORT \
         $UAC_MEDIA_PORT $((UAC_MEDIA_PORT + 1)) $AGENT_MEDIA_PORT $((AGENT_MEDIA_PORT + 1)); do
  if [ "$p" -ge "$MEDIA_PORT_MIN" ] && [ "$p" -le "$MEDIA_PORT_MAX" ]; then
    die "port $p lies in the gateway's RTP range $MEDIA_PORT_MIN-$MEDIA_PORT_MAX"
  fi
done
[ $((FIRST_AGENT + AGENTS - 1)) -le 99999 ] || die "AGENTS too large (ids stop at 99999)"

# The prompt's length, from its WAV (8 kHz 16-bit mono: 16000 bytes/s).
prompt_wav=""
for f in "$repo/prompts/$PROMPT.wav" "$repo/prompts/acd/$PROMPT.wav"; do
  [ -f "$f" ] && { prompt_wav="$f"; break; }
done
[ -n "$prompt_wav" ] || die "no prompt $PROMPT in prompts/ or prompts/acd/"
PROMPT_MS=$(( ($(stat -c %s "$prompt_wav") - 44) / 16 + 1 ))
CALL_MS=$((PROMPT_MS + HOLD_MS))   # the caller's -d, from the gateway's 200

mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
CLK_TCK="$(getconf CLK_TCK)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
[ "$NOFILE" = unlimited ] && NOFILE=1048576
[ "$NOFILE" -ge 4096 ] || die "ulimit -n is $NOFILE; need at least 4096 open files"
# The media plane keeps a port's two sockets bound once it has used it (the
# next leg on that port reuses them), so a long run holds up to one file per
# port of the range: keep the range within the open-files limit, less 2048
# for everything else (the systemd unit sets LimitNOFILE=65536).
if [ $((MEDIA_PORT_MAX - MEDIA_PORT_MIN + 1)) -gt $((NOFILE - 2048)) ]; then
  capped=$(( MEDIA_PORT_MIN + (NOFILE - 2048) / 4 * 4 - 1 ))
  log "media range $MEDIA_PORT_MIN-$MEDIA_PORT_MAX needs more open files than ulimit -n $NOFILE allows: using $MEDIA_PORT_MIN-$capped"
  MEDIA_PORT_MAX=$capped
fi

# --- limits ------------------------------------------------------------------
# Calls up at RATE: RATE x (CALL_MS + ~100 ms of setup/teardown); agents busy:
# RATE x (HOLD_MS + ~100 ms). 10% headroom on both (ports are split into one
# range per media shard and a call's legs come from one shard).
PORT_CALLS=$(( (MEDIA_PORT_MAX - MEDIA_PORT_MIN + 1) / 4 ))
MAX_RATE_PORTS=$(( PORT_CALLS * 1000 * 9 / 10 / (CALL_MS + 100) ))
MAX_RATE_AGENTS=$(( AGENTS * 1000 * 9 / 10 / (HOLD_MS + 100) ))
MAX_RATE=$(( MAX_RATE_PORTS < MAX_RATE_AGENTS ? MAX_RATE_PORTS : MAX_RATE_AGENTS ))
limits="prompt $PROMPT ${PROMPT_MS} ms, talk HOLD_MS=$HOLD_MS -> caller holds ${CALL_MS} ms after the 200;"
limits="$limits media $MEDIA_PORT_MIN-$MEDIA_PORT_MAX = $PORT_CALLS calls -> <= $MAX_RATE_PORTS cps;"
limits="$limits $AGENTS agents -> <= $MAX_RATE_AGENTS cps; limit $MAX_RATE cps (90% of both)"
log "$limits"
for r in $RATES; do
  if [ "$r" -gt "$MAX_RATE" ] && [ "$FORCE" != 1 ]; then
    die "rate $r cps is above the limit of $MAX_RATE cps ($limits): lower RATES or HOLD_MS, raise AGENTS, or FORCE=1"
  fi
done

# --- processes we start (and only those are stopped) -------------------------
GW_PID=""; UAS_PID=""; UAC_PID=""; AUX_PID=""
# shellcheck source=sip-scenarios/load-lib.sh
. "$here/load-lib.sh"
cleanup() {
  stop_pid "$UAC_PID" 2; UAC_PID=""
  stop_pid "$AUX_PID" 2; AUX_PID=""
  stop_pid "$UAS_PID" 2; UAS_PID=""
  stop_pid "$GW_PID" 10; GW_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -----------------------------------------------------------------
cpu_ticks() { # pid -> utime+stime in ticks; empty when there is no such process
  local stat
  [ -n "$1" ] || return 0
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  awk '{ print $12 + $13 }' <<<"$stat"
}

csv_last() { # file column-name -> value of that column on the last line
  awk -F';' -v col="$2" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
    { last = $0 }
    END { if (!c || last == "") { print "?"; exit } split(last, f, ";"); print f[c] }' "$1" 2>/dev/null || echo "?"
}

msum() { # metrics-file name [label-substring] -> sum over the series of
  # `name` (exact metric name) whose labels contain the substring; 0 if none
  awk -v n="$2" -v l="${3:-}" '
    /^#/ { next }
    { m = $1; sub(/[{].*/, "", m) }
    m == n && (l == "" || index($1, l)) { v += $NF }
    END { printf "%.0f", v + 0 }' "$1" 2>/dev/null || printf 0
}

quantile() { # metrics-file quantile -> max over all series, in microseconds
  awk -v q="$2" '
    /^hotline_sip_processing_seconds[{]/ && index($0, "quantile=\"" q "\"") {
      v = $NF + 0; if (!seen || v > m) m = v; seen = 1 }
    END { if (seen) printf "%.0f", m * 1e6; else printf "n/a" }' "$1" 2>/dev/null || printf 'n/a'
}

metrics() { # file -> /metrics into file; non-zero on failure
  http_get "$API_PORT" /metrics >"$1.tmp" && mv "$1.tmp" "$1"
}

agents_state() { # metrics-file state -> hotline_agents{state=...}
  msum "$1" hotline_agents "state=\"$2\""
}

sipp_void() { # dir -> 1 when a SIPp watchdog fired (CSV counters or error logs)
  local d="$1" f wd=0 n
  for f in "$d"/*_stat.csv; do
    [ -f "$f" ] || continue
    for c in 'WatchdogMajor(C)' 'WatchdogMinor(C)'; do
      n="$(csv_last "$f" "$c")"
      [ "$n" != "?" ] && [ "$n" != 0 ] && wd=1
    done
  done
  n="$(cat "$d"/*_errors.log 2>/dev/null | grep -ciE 'watchdog|overload warning' || true)"
  [ "${n:-0}" != 0 ] && wd=1
  echo "$wd"
}

# --- the gateway ---------------------------------------------------------------
write_config() {
  local cfg="$1" i id
  cat >"$cfg" <<EOF
# written by sip-scenarios/load-acd.sh: $AGENTS agents, prompt $PROMPT
[node]
name = "acdload"
data_dir = "$OUT_DIR/data"
shutdown_grace_secs = 5

[sip]
listen = "127.0.0.1:$GW_SIP_PORT"
ring_timeout_secs = 10
unknown_source = "reject"
# SIPp reads only the first challenge and computes MD5 only.
digest_algorithms = ["MD5"]

[api]
listen = "127.0.0.1:$API_PORT"

[media]
port_min = $MEDIA_PORT_MIN
port_max = $MEDIA_PORT_MAX
shards = $SHARDS
# Neither SIPp sends RTP: no call may end on RTP silence.
rtp_timeout_secs = 3600

[[trunks]]
name = "sipp"
sources = ["127.0.0.0/8"]
max_calls = 1000000
max_cps = 100000

[[tenants]]
name = "load"

[[flows]]
name = "load-intake"
entry = "prompt"

[[flows.nodes]]
name = "prompt"
kind = "play"
prompt = "$PROMPT"
next = "queue"

[[flows.nodes]]
name = "queue"
kind = "queue"
queue = "general"

[[lines]]
number = "12345"
tenant = "load"
mode = "main"
flow = "load-intake"
survey = false

[[queues]]
name = "general"
tenant = "load"
skills = { general = 1 }
strategy = "longest_idle"
ring_timeout_secs = 10
wrap_up_secs = 0

[registrar]
min_expires_secs = 60
max_expires_secs = $EXPIRES
default_expires_secs = 600
lockout_failures = 1000
lockout_window_secs = 1
lockout_secs = 1
EOF
  local csv="$OUT_DIR/agents.csv"
  echo SEQUENTIAL >"$csv"
  for ((i = 0; i < AGENTS; i++)); do
    id=$((FIRST_AGENT + i))
    printf '%s;load-pw-%s\n' "$id" "$id" >>"$csv"
    printf '\n[[agents]]\nid = "%s"\npassword = "load-pw-%s"\ntenant = "load"\nskills = { general = 1 }\n' \
      "$id" "$id" >>"$cfg"
  done
}

start_gateway() {
  local cfg="$OUT_DIR/load.toml"
  write_config "$cfg"
  mkdir -p "$OUT_DIR/data"
  "$HOTLINE_BIN" check-config "$cfg" >"$OUT_DIR/check-config.log" 2>&1 \
    || die "check-config rejected $cfg: $(tail -20 "$OUT_DIR/check-config.log")"
  RUST_LOG="${RUST_LOG:-warn}" "$HOTLINE_BIN" serve --config "$cfg" \
    >"$OUT_DIR/gateway.log" 2>&1 </dev/null &
  GW_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$GW_PID" 2>/dev/null || die "gateway exited at startup: $(tail -20 "$OUT_DIR/gateway.log")"
    if http_get "$API_PORT" /healthz >/dev/null; then
      log "gateway up (pid $GW_PID), logs in $OUT_DIR/gateway.log"
      return 0
    fi
    sleep 0.1
  done
  die "gateway did not answer /healthz within 30 s"
}

# --- agents: register, log in --------------------------------------------------
run_aux() { # name scenario port [sipp args...] -> runs one SIPp to its end
  # (in OUT_DIR/name); sets AUX_OK, AUX_FAILED
  local name="$1" sf="$2" port="$3"; shift 3
  local d="$OUT_DIR/$name" bound=$((AGENTS / REG_RATE + 60))
  mkdir -p "$d"
  (cd "$d" && exec sipp "127.0.0.1:$GW_SIP_PORT" -sf "$here/$sf" -inf "$OUT_DIR/agents.csv" \
      -i 127.0.0.1 -p "$port" -nostdin -m "$AGENTS" -r "$REG_RATE" -rp 1000 \
      -l 2000 -recv_timeout 10000 "$@" \
      -trace_err -error_file "$d/errors.log" \
      -trace_stat -stf "$d/${name}_stat.csv" -fd 1 \
      -timeout "${bound}s" >"$d/screen.log" 2>&1 </dev/null) &
  AUX_PID=$!
  wait "$AUX_PID" || true
  AUX_PID=""
  AUX_OK="$(csv_last "$d/${name}_stat.csv" 'SuccessfulCall(C)')"
  AUX_FAILED="$(csv_last "$d/${name}_stat.csv" 'FailedCall(C)')"
  [ "$AUX_OK" = "?" ] && AUX_OK=0
  [ "$AUX_FAILED" = "?" ] && AUX_FAILED=0
  return 0
}

setup_agents() {
  local m="$OUT_DIR/metrics-agents.txt" i ready=0 qready=0
  log "registering $AGENTS agents' phones from 127.0.0.1:$AGENT_PORT (acd-load-register.xml, $REG_RATE/s)"
  run_aux register acd-load-register.xml "$AGENT_PORT" -set expires "$EXPIRES"
  log "registered: $AUX_OK ok, $AUX_FAILED failed"
  [ "$AUX_OK" = "$AGENTS" ] || die "registration: $AUX_OK of $AGENTS ok (logs: $OUT_DIR/register)"
  log "logging $AGENTS agents in with *21 (acd-load-login.xml)"
  run_aux login acd-load-login.xml "$LOGIN_PORT" -s '*21'
  log "logged in: $AUX_OK ok, $AUX_FAILED failed"
  [ "$AUX_OK" = "$AGENTS" ] || die "login: $AUX_OK of $AGENTS ok (logs: $OUT_DIR/login)"
  # The ACD gauges are refreshed every second.
  for ((i = 0; i < 30; i++)); do
    if metrics "$m"; then
      ready="$(agents_state "$m" ready)"
      qready="$(msum "$m" hotline_queue_agents 'state="ready"')"
      [ "$ready" = "$AGENTS" ] && [ "$qready" = "$AGENTS" ] && break
    fi
    sleep 1
  done
  log "agents ready: hotline_agents{state=\"ready\"} = $ready, hotline_queue_agents{state=\"ready\"} (ready and registered) = $qready"
  [ "$ready" = "$AGENTS" ] && [ "$qready" = "$AGENTS" ] \
    || die "expected $AGENTS agents ready and registered (metrics: $m)"
}

# --- one step --------------------------------------------------------------------
# Sets: ROW (table line), STEP_FAILED (calls failed or not answered by an agent)
run_step() {
  local rate="$1" d="$OUT_DIR/rate-$1"
  mkdir -p "$d"
  local calls=$((rate * DURATION))
  # -l: the calls up at once plus 5 s worth, below the open-files limit.
  local limit=$((rate * (CALL_MS / 1000 + 6)))
  [ "$limit" -lt 2000 ] && limit=2000
  [ "$limit" -gt $((NOFILE - 1000)) ] && limit=$((NOFILE - 1000))
  local bound=$((DURATION + CALL_MS / 1000 + 60))

  # Each SIPp runs in the step's directory (its -trace_msg etc. files land
  # there) and execs, so $! is SIPp itself.
  (cd "$d" && exec sipp -sf "$here/acd-load-agent-uas.xml" \
      -i 127.0.0.1 -p "$AGENT_PORT" -mp "$AGENT_MEDIA_PORT" -nostdin \
      -buff_size 8388608 -max_recv_loops 5000 -max_sched_loops 5000 \
      -trace_err -error_file "$d/uas_errors.log" \
      -trace_stat -stf "$d/uas_stat.csv" -fd 1 \
      -timeout "$((bound + 30))s" ${UAS_ARGS:-} >"$d/uas_screen.log" 2>&1 </dev/null) &
  UAS_PID=$!
  local i
  for ((i = 0; i < 50; i++)); do port_busy udp "$AGENT_PORT" && break; sleep 0.1; done
  port_busy udp "$AGENT_PORT" || die "agents' SIPp did not bind 127.0.0.1:$AGENT_PORT: $(tail -5 "$d/uas_screen.log")"

  metrics "$d/metrics-start.txt" || die "no /metrics before rate $rate"
  local m0="$d/metrics-start.txt"
  local kdrop0 ans_t0 ans_f0 ab0 bind0
  kdrop0="$(msum "$m0" hotline_sip_udp_kernel_drops_total)"
  ans_t0="$(msum "$m0" hotline_queue_answered_total 'within_15s="true"')"
  ans_f0="$(msum "$m0" hotline_queue_answered_total 'within_15s="false"')"
  ab0="$(msum "$m0" hotline_queue_abandoned_total)"
  bind0="$(msum "$m0" hotline_media_bind_failures_total)"

  (cd "$d" && exec sipp "127.0.0.1:$GW_SIP_PORT" -sf "$here/acd-load-caller.xml" \
      -i 127.0.0.1 -p "$UAC_PORT" -mp "$UAC_MEDIA_PORT" -s 12345 -nostdin \
      -r "$rate" -rp 1000 -m "$calls" -l "$limit" -d "$CALL_MS" \
      -buff_size 8388608 -max_recv_loops 5000 -max_sched_loops 5000 \
      -recv_timeout 30000 \
      -trace_err -error_file "$d/uac_errors.log" \
      -trace_stat -stf "$d/uac_stat.csv" -fd 1 \
      -timeout "${bound}s" ${UAC_ARGS:-} >"$d/uac_screen.log" 2>&1 </dev/null) &
  UAC_PID=$!

  # 1 s samples of CPU (and the gateway's RSS) while the caller SIPp runs;
  # every SAMPLE_SECS /metrics (quantiles, queue and agent gauges).
  local gw="$GW_PID"
  local -A prev=() sum=() cnt=() peak=()
  local names=(gw uac uas)
  local -A pid_of=([gw]="$gw" [uac]="$UAC_PID" [uas]="$UAS_PID")
  local t_prev t_now dt name ticks cpu rss rss_max=0 started="$SECONDS"
  local next_sample=$SAMPLE_SECS p50="n/a" p99="n/a" q wait_max=0 talk_max=0 up_max=0 v mf
  t_prev="$EPOCHREALTIME"
  for name in "${names[@]}"; do
    prev[$name]="$(cpu_ticks "${pid_of[$name]}")"; sum[$name]=0; cnt[$name]=0; peak[$name]=0
  done
  while kill -0 "$UAC_PID" 2>/dev/null; do
    if [ $((SECONDS - started)) -gt $((bound + 30)) ]; then
      log "caller SIPp still running after $((bound + 30)) s: killing it"
      kill -KILL "$UAC_PID" 2>/dev/null || true
      break
    fi
    sleep 1
    t_now="$EPOCHREALTIME"
    dt="$(awk -v a="$t_prev" -v b="$t_now" 'BEGIN { print b - a }')"
    for name in "${names[@]}"; do
      ticks="$(cpu_ticks "${pid_of[$name]}")"
      if [ -n "$ticks" ] && [ -n "${prev[$name]}" ]; then
        cpu="$(awk -v a="${prev[$name]}" -v b="$ticks" -v t="$dt" -v h="$CLK_TCK" \
          'BEGIN { printf "%.1f", (b - a) / h / t * 100 }')"
        sum[$name]="$(awk -v s="${sum[$name]}" -v c="$cpu" 'BEGIN { print s + c }')"
        peak[$name]="$(awk -v m="${peak[$name]}" -v c="$cpu" 'BEGIN { print (c > m ? c : m) }')"
        cnt[$name]=$((cnt[$name] + 1))
      fi
      prev[$name]="$ticks"
    done
    if [ $((SECONDS - started)) -ge "$next_sample" ]; then
      mf="$d/metrics-$next_sample.txt"
      if metrics "$mf"; then
        if [ "$next_sample" -le "$DURATION" ]; then
          # Worst 0.5 and 0.99 quantile over the samples taken under load.
          q="$(quantile "$mf" 0.5)"
          [ "$q" != n/a ] && { [ "$p50" = n/a ] || [ "$q" -gt "$p50" ]; } && p50="$q"
          q="$(quantile "$mf" 0.99)"
          [ "$q" != n/a ] && { [ "$p99" = n/a ] || [ "$q" -gt "$p99" ]; } && p99="$q"
        fi
        v="$(msum "$mf" hotline_queue_waiting)"; [ "$v" -gt "$wait_max" ] && wait_max="$v"
        v="$(agents_state "$mf" talking)"; [ "$v" -gt "$talk_max" ] && talk_max="$v"
        v="$(msum "$mf" hotline_calls_active)"; [ "$v" -gt "$up_max" ] && up_max="$v"
      fi
      next_sample=$((next_sample + SAMPLE_SECS))
      [ "$next_sample" -gt "$DURATION" ] && [ $((next_sample - SAMPLE_SECS)) -lt "$DURATION" ] && next_sample="$DURATION"
    fi
    rss="$(rss_kb "$gw")"
    [ "${rss:-0}" -gt "$rss_max" ] && rss_max="$rss"
    kill -0 "$gw" 2>/dev/null || { log "gateway died during rate $rate"; break; }
    t_prev="$t_now"
  done
  local uac_rc=0
  wait "$UAC_PID" || uac_rc=$?
  UAC_PID=""

  # Drain: every call ended, every agent ready again (wrap_up_secs = 0).
  local m1="$d/metrics.txt" active=-1 ready=-1
  for ((i = 0; i < DRAIN_SECS; i++)); do
    if metrics "$m1"; then
      active="$(msum "$m1" hotline_calls_active)"
      ready="$(agents_state "$m1" ready)"
      [ "$active" = 0 ] && [ "$ready" = "$AGENTS" ] && break
    fi
    sleep 1
  done
  [ "$active" = 0 ] && [ "$ready" = "$AGENTS" ] \
    || log "after ${DRAIN_SECS}s: $active calls still up, $ready of $AGENTS agents ready"
  # Kernel drops are refreshed every 5 s; the gauges every second.
  sleep 5
  metrics "$m1" || log "no /metrics after rate $rate"
  stop_pid "$UAS_PID" 2; UAS_PID=""

  # Caller statistics.
  local csv="$d/uac_stat.csv"
  local ok failed retrans setup_ms rate_c dead ooc
  ok="$(csv_last "$csv" 'SuccessfulCall(C)')"
  failed="$(csv_last "$csv" 'FailedCall(C)')"
  retrans="$(csv_last "$csv" 'Retransmissions(C)')"
  rate_c="$(csv_last "$csv" 'CallRate(C)')"
  dead="$(csv_last "$csv" 'DeadCallMsgs(C)')"
  ooc="$(csv_last "$csv" 'OutOfCallMsgs(C)')"
  setup_ms="$(csv_last "$csv" 'ResponseTime1(C)' | awk -F: 'NF == 4 { printf "%.1f", ($1 * 3600 + $2 * 60 + $3) * 1000 + $4 / 1000; next } { print "?" }')"
  [ "$ok" = "?" ] && ok=0
  [ "$failed" = "?" ] && failed="$calls"
  local missing=$((calls - ok - failed))
  [ "$missing" -gt 0 ] && failed=$((failed + missing))  # calls never completed
  # The agents' SIPp.
  local a_ok a_failed a_answer_ms a_len_ms
  a_ok="$(csv_last "$d/uas_stat.csv" 'SuccessfulCall(C)')"
  a_failed="$(csv_last "$d/uas_stat.csv" 'FailedCall(C)')"
  hms_ms() { awk -F: 'NF == 4 { printf "%.1f", ($1 * 3600 + $2 * 60 + $3) * 1000 + $4 / 1000; next } { print "?" }'; }
  a_answer_ms="$(csv_last "$d/uas_stat.csv" 'ResponseTime1(C)' | hms_ms)"
  a_len_ms="$(csv_last "$d/uas_stat.csv" 'CallLength(C)' | hms_ms)"
  # The agents' call length less the scenario's 500 ms timewait: the talk.
  local talk_ms="n/a"
  [ "$a_len_ms" != "?" ] && talk_ms="$(awk -v l="$a_len_ms" 'BEGIN { printf "%.0f", l - 500 }')"

  # The ACD.
  local ans_t ans_f ab waiting kdrop bindf
  ans_t=$(( $(msum "$m1" hotline_queue_answered_total 'within_15s="true"') - ans_t0 ))
  ans_f=$(( $(msum "$m1" hotline_queue_answered_total 'within_15s="false"') - ans_f0 ))
  ab=$(( $(msum "$m1" hotline_queue_abandoned_total) - ab0 ))
  waiting="$(msum "$m1" hotline_queue_waiting)"
  kdrop=$(( $(msum "$m1" hotline_sip_udp_kernel_drops_total) - kdrop0 ))
  bindf=$(( $(msum "$m1" hotline_media_bind_failures_total) - bind0 ))
  local st states=""
  for st in ready reserved talking wrap_up not_ready logged_out; do
    states="$states${states:+/}$(agents_state "$m1" "$st")"
  done
  {
    echo "# rate $rate: ACD and call figures from /metrics (end of step minus start)"
    echo "answered_within_15s $ans_t"
    echo "answered_after_15s $ans_f"
    echo "abandoned $ab"
    echo "waiting_at_end $waiting"
    echo "waiting_max_sampled $wait_max"
    echo "talking_max_sampled $talk_max"
    echo "calls_active_max_sampled $up_max"
    echo "agents_ready/reserved/talking/wrap_up/not_ready/logged_out $states"
    echo "media_bind_failures $bindf"
    echo "agents_sipp_calls_ok/failed $a_ok/$a_failed"
    echo "agents_sipp_invite_to_ack_ms_mean $a_answer_ms"
    echo "agents_sipp_call_length_ms_mean $a_len_ms (talk + its 500 ms timewait)"
    echo "caller_sipp_call_length_ms_mean $(csv_last "$csv" 'CallLength(C)' | hms_ms) (-d $CALL_MS)"
    grep -E '^hotline_(queue_average_speed_of_answer_seconds|answered_within_15s_ratio|queue_answer_ratio_24h)[{]' "$m1" || true
    echo "# hotline_calls_total by outcome (delta)"
    awk '/^hotline_calls_total[{]/ { o = $1; sub(/.*outcome="/, "", o); sub(/".*/, "", o); s[o] += $NF }
         END { for (o in s) print o, s[o] }' "$m1" | sort >"$d/outcomes-end"
    awk '/^hotline_calls_total[{]/ { o = $1; sub(/.*outcome="/, "", o); sub(/".*/, "", o); s[o] += $NF }
         END { for (o in s) print o, s[o] }' "$m0" | sort >"$d/outcomes-start"
    join -a 1 -e 0 -o 0,1.2,2.2 "$d/outcomes-end" "$d/outcomes-start" \
      | awk '$2 - $3 != 0 { printf "  %s %d\n", $1, $2 - $3 }'
  } >"$d/acd.txt"

  avg() { # name -> average CPU% over its samples, or n/a
    if [ "${cnt[$1]}" -gt 0 ]; then
      awk -v s="${sum[$1]}" -v n="${cnt[$1]}" 'BEGIN { v = s / n; if (v < 0) v = 0; printf "%.0f", v }'
    else
      printf 'n/a'
    fi
  }
  local gw_avg gw_peak="n/a" rss_mb="n/a" uac_avg uas_avg
  gw_avg="$(avg gw)"; uac_avg="$(avg uac)"; uas_avg="$(avg uas)"
  if [ "${cnt[gw]}" -gt 0 ]; then
    gw_peak="$(awk -v m="${peak[gw]}" 'BEGIN { printf "%.0f", m }')"
    rss_mb="$(awk -v k="$rss_max" 'BEGIN { printf "%.1f", k / 1024 }')"
  fi

  ROW="$(printf "$ROW_FMT" \
    "$rate" "${rate_c%.*}" "$ok" "$failed" "$retrans" "$dead" "$ooc" \
    "$setup_ms" "$gw_avg" "$gw_peak" "$rss_mb" "$uac_avg" "$uas_avg" "$p50" "$p99" "$kdrop" \
    "$ans_t" "$ans_f" "$ab" "$wait_max" "$waiting" "$talk_max" "$talk_ms" "$states" "$a_ok" "$a_failed" "$bindf")"
  local void
  void="$(sipp_void "$d")"
  [ "$void" = 1 ] && ROW="$ROW  VOID (SIPp watchdog: generator overloaded)"
  [ "$uac_rc" -ne 0 ] && [ "$failed" = 0 ] && ROW="$ROW  (caller sipp exit $uac_rc)"
  # Not a failure, but not the step asked for: callers waited for agents.
  if [ "$talk_ms" != n/a ] && [ "$talk_ms" -lt $((HOLD_MS * 9 / 10)) ]; then
    ROW="$ROW  QUEUED (talk ${talk_ms} ms < 90% of HOLD_MS: too few agents)"
  fi
  local unanswered=$((calls - ans_t - ans_f))
  [ "$unanswered" -lt 0 ] && unanswered=0
  [[ "$a_failed" =~ ^[0-9]+$ ]] || a_failed=0
  STEP_FAILED=$((failed + unanswered + ab + a_failed))
  if [ "$STEP_FAILED" != 0 ]; then
    STEP_WHY="$failed failed calls, $unanswered of $calls not answered by an agent, $ab abandoned, $a_failed failed on the agents' side"
  fi
}

# --- main ----------------------------------------------------------------------
for p in $GW_SIP_PORT $UAC_PORT $AGENT_PORT $LOGIN_PORT; do
  port_busy udp "$p" && die "UDP port $p is in use on 127.0.0.1"
done
port_busy tcp "$API_PORT" && die "TCP port $API_PORT is in use on 127.0.0.1"

if [ "$SKIP_BUILD" != 1 ]; then
  log "building release (cargo build --release --bin hotline)"
  (cd "$repo" && cargo build --release --bin hotline) >&2
fi
[ -x "$HOTLINE_BIN" ] || die "no gateway binary at $HOTLINE_BIN"
start_gateway
setup_agents

ROW_FMT='%6s %7s %7s %7s %7s %5s %5s %8s %6s %7s %8s %6s %6s %6s %6s %5s %6s %8s %5s %8s %7s %9s %8s %-21s %7s %9s %5s'
header="$(printf "$ROW_FMT" rate cps_got ok failed retrans dead ooc setup_ms gw_cpu gw_peak gw_rssMB \
  uacCPU agCPU p50_us p99_us kdrop ans15 ans_late aband wait_max waiting talk_max talk_ms \
  'agents:r/rs/t/w/nr/lo' agentOk agentFail bindF)"
table="$OUT_DIR/summary.txt"
{
  echo "# hotline ACD load: $HOTLINE_BIN, IVR (prompt $PROMPT) -> queue -> $AGENTS agents (one SIPp UAS)"
  echo "# $(date -Is)  $(nproc) cores  DURATION=${DURATION}s HOLD_MS=$HOLD_MS (caller -d ${CALL_MS} ms) RATES=$RATES"
  echo "# limits: $limits"
  echo "# cpu columns: % of one core, 1 s samples (gw_cpu = average, gw_peak = max); agCPU = the agents' SIPp;"
  echo "# setup_ms: caller INVITE -> the gateway's 200 (mean); p50/p99: hotline_sip_processing_seconds (us),"
  echo "#   worst of the ${SAMPLE_SECS} s samples; kdrop: kernel drops on the gateway's SIP socket during the step;"
  echo "# ans15/ans_late: hotline_queue_answered_total within_15s true/false during the step; aband: abandoned;"
  echo "#   wait_max/talk_max: most calls waiting / agents talking in the ${SAMPLE_SECS} s samples; talk_ms: mean"
  echo "#   talk per agent call (agents' SIPp; below HOLD_MS = callers waited in the queue); waiting and"
  echo "#   agents (ready/reserved/talking/wrap_up/not_ready/logged_out) at the end of the step;"
  echo "#   agentOk / agentFail: calls the agents' SIPp completed / failed; bindF: media bind failures. Details: rate-*/acd.txt"
  echo "$header"
} | tee "$table"

stop_reason="all steps passed"
for rate in $RATES; do
  log "rate $rate cps for ${DURATION}s ($((rate * DURATION)) calls, ~$((rate * (CALL_MS + 100) / 1000)) up at once)"
  STEP_WHY=""
  run_step "$rate"
  echo "$ROW" | tee -a "$table"
  if [ "$STEP_FAILED" != 0 ]; then
    stop_reason="stopped at $rate cps: $STEP_WHY (logs: $OUT_DIR/rate-$rate)"
    break
  fi
done
echo "# $stop_reason" | tee -a "$table"
log "summary in $table"

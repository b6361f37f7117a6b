#!/usr/bin/env bash
# Media load through the gateway: CALLS concurrent G.711 calls with RTP
# both ways, relayed by the gateway's media shards, on loopback only.
#
#   benches/media_load.rs, the carrier (UAC SIP 127.0.0.1:15061, one RTP
#   socket 127.0.0.1:15100 for all calls)
#     -> hotline (SIP 127.0.0.1:26060, API 127.0.0.1:26090, RTP ports
#        MEDIA_PORT_MIN.., two legs of 2 ports each per call)
#       -> benches/media_load.rs, the callee (UAS SIP 127.0.0.1:15070, one
#          RTP socket 127.0.0.1:15102 for all calls)
#
# The generator sets up CALLS calls at CPS calls/s, then every call sends a
# 172-byte PCMA packet every 20 ms in each direction for DURATION seconds
# (the "hold" phase, counted from the moment every call is up), then hangs
# up all calls. It counts packets sent/received/lost per direction (by a
# per-call counter in the payload, which the gateway relays unchanged) and
# the end-to-end latency (send -> gateway -> receive, incl. the generator's
# own scheduling) in an HDR histogram. This script records besides:
#   - gateway CPU% (1 s samples from /proc/PID/stat): average and peak over
#     the hold phase, and the peak over the whole run;
#   - gateway RSS: idle (before the calls), at load (last sample of the hold
#     phase), peak; memory per call = (at load - idle) / calls up;
#   - from /metrics: hotline_media_relay_seconds quantiles 0.5/0.99/0.999
#     (in-gateway receive -> relay send, last 50-60 s; the sample taken as
#     the hold phase ends), hotline_media_packets_relayed_total,
#     hotline_media_packets_dropped_total by reason,
#     hotline_media_send_errors_total, hotline_media_bind_failures_total;
#   - datagrams the kernel dropped on the gateway's RTP sockets (drops column
#     of /proc/net/udp for the media port range, at the end of the hold),
#     and the box-wide /proc/net/snmp Udp RcvbufErrors delta (every socket,
#     the generator's too; the generator reports its own sockets' drops);
#   - the generator's own CPU% (it shares the box's cores with the gateway).
# On loopback a datagram's sender pays for the receive path and for waking
# the receiving thread, so the gateway's CPU includes delivering into the
# generator's sockets (and the generator's includes delivery into the
# gateway's). The generator's receivers therefore poll every 1 ms instead of
# blocking per packet (GEN_ARGS="--recv-poll-us 0" blocks: exact end-to-end
# latency, ~14 points more gateway CPU at 500 calls); its end-to-end latency
# includes that poll and its own scheduling, so the relay target is checked
# against the gateway's own summary.
# It prints a table, checks the issue's targets (0 lost packets, relay p99
# <= 0.3 ms, CPU <= 80 % of the box, <= 32 KiB per call) and writes
# everything to OUT_DIR (gateway.log, generator.log, metrics-*.txt,
# summary.txt).
#
# Usage:
#   sip-scenarios/load-media.sh                          # build release, 2000 calls, 60 s
#   CALLS=50 DURATION=10 sip-scenarios/load-media.sh     # a smoke run
#   sip-scenarios/load-media.sh --direct                 # no gateway: the generator
#                                                        # sends RTP straight between its
#                                                        # two sockets (its own floor of
#                                                        # CPU and latency on this box)
# Environment:
#   CALLS       concurrent calls, default 2000
#   DURATION    seconds of media with every call up, default 60
#   CPS         call setup (and hang-up) rate, calls/s, default 200
#   OUT_DIR     where logs, metrics and the table go, default target/load-media/<timestamp>
#   HOTLINE_BIN gateway binary, default target/release/hotline
#   SKIP_BUILD  1: do not run cargo (use the built gateway and the newest
#               target/release/deps/media_load-* generator)
#   SHARDS      the gateway's media.shards (default 0: one per core)
#   MEDIA_PORT_MIN  first port of the gateway's RTP range, default 16384
#               (the range is 8 ports per call, at most up to 65535)
#   GEN_ARGS    extra generator options, e.g. "--slots 100" (see
#               `cargo bench --bench media_load -- --help`)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

direct=0
case "${1:-}" in
  --direct) direct=1 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

CALLS="${CALLS:-2000}"
DURATION="${DURATION:-60}"
CPS="${CPS:-200}"
OUT_DIR="${OUT_DIR:-$repo/target/load-media/$(date +%Y%m%d-%H%M%S)}"
HOTLINE_BIN="${HOTLINE_BIN:-$repo/target/release/hotline}"
SKIP_BUILD="${SKIP_BUILD:-0}"
SHARDS="${SHARDS:-0}"
MEDIA_PORT_MIN="${MEDIA_PORT_MIN:-16384}"

GW_SIP_PORT=${GW_SIP_PORT:-26060}
API_PORT=${API_PORT:-26090}
UAC_SIP_PORT=${UAC_SIP_PORT:-15061}
UAS_SIP_PORT=${UAS_SIP_PORT:-15070}
UAC_RTP_PORT=${UAC_RTP_PORT:-15100}
UAS_RTP_PORT=${UAS_RTP_PORT:-15102}

log() { printf 'load-media: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for v in CALLS DURATION CPS MEDIA_PORT_MIN; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[[ "$SHARDS" =~ ^[0-9]+$ ]] || die "SHARDS must be an integer"

# Two legs of an RTP/RTCP pair each per call: 4 ports; give the shards twice
# that so an uneven spread over the shards does not run one out.
PORT_MAX=$((MEDIA_PORT_MIN + 8 * CALLS - 1))
[ "$PORT_MAX" -gt 65535 ] && PORT_MAX=65535
[ $(((PORT_MAX - MEDIA_PORT_MIN + 1) / 4)) -ge "$CALLS" ] \
  || die "the RTP range $MEDIA_PORT_MIN-$PORT_MAX holds fewer than $CALLS calls: lower MEDIA_PORT_MIN"
for p in $UAC_SIP_PORT $UAS_SIP_PORT $UAC_RTP_PORT $UAS_RTP_PORT $GW_SIP_PORT; do
  if [ "$p" -ge "$MEDIA_PORT_MIN" ] && [ "$p" -le "$PORT_MAX" ]; then
    die "port $p lies in the gateway's RTP range $MEDIA_PORT_MIN-$PORT_MAX"
  fi
done

mkdir -p "$OUT_DIR"
CLK_TCK="$(getconf CLK_TCK)"
NCPU="$(nproc)"
# The gateway holds 4 sockets per call.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
[ "$NOFILE" = unlimited ] && NOFILE=1048576
[ "$NOFILE" -ge $((4 * CALLS + 1024)) ] || die "ulimit -n is $NOFILE; need at least $((4 * CALLS + 1024)) open files"

# --- processes we start (and only those are stopped) -----------------------
GW_PID=""; GEN_PID=""
# shellcheck source=sip-scenarios/load-lib.sh
. "$here/load-lib.sh"
cleanup() {
  stop_pid "$GEN_PID" 2; GEN_PID=""
  stop_pid "$GW_PID" 10; GW_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers ---------------------------------------------------------------


cpu_ticks() { # pid -> utime+stime in ticks (fields 14, 15; comm may hold spaces)
  local stat
  [ -n "$1" ] || return 0
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  awk '{ print $12 + $13 }' <<<"$stat"
}


msum() { # metrics-file name [label-filter] -> sum over all series of name (0 when absent)
  awk -v n="$2" -v f="${3:-}" '
    /^#/ { next }
    { split($1, a, "{") }
    a[1] == n && (f == "" || index($1, f)) { v += $NF }
    END { printf "%.0f", v + 0 }' "$1" 2>/dev/null || printf 0
}

relay_q() { # metrics-file quantile -> hotline_media_relay_seconds at it, microseconds
  awk -v q="$2" '
    /^hotline_media_relay_seconds[{]/ && index($0, "quantile=\"" q "\"") { v = $NF + 0; seen = 1 }
    END { if (seen) printf "%.1f", v * 1e6; else printf "n/a" }' "$1" 2>/dev/null || printf 'n/a'
}

rcvbuf_errors() { # box-wide Udp RcvbufErrors from /proc/net/snmp
  awk '$1 == "Udp:" { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next } print $c["RcvbufErrors"] }' /proc/net/snmp
}

gw_sock_drops() { # drops on UDP sockets bound to 127.0.0.1 in the media range
  awk -v lo="$MEDIA_PORT_MIN" -v hi="$PORT_MAX" '
    function hex(h,   i, v) { v = 0; for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789ABCDEF", substr(h, i, 1)) - 1; return v }
    NR > 1 { split($2, a, ":"); p = hex(a[2]); if (p >= lo && p <= hi) d += $NF }
    END { printf "%d", d + 0 }' /proc/net/udp 2>/dev/null || printf 0
}

gen_phase() { # the generator's last phase line
  { grep -o 'phase=[a-z]*' "$OUT_DIR/generator.log" 2>/dev/null || true; } | tail -1 | cut -d= -f2
}

result() { # key -> value from the generator's RESULT line
  awk -v k="$1" '/^RESULT / { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) v = kv[2] } }
    END { print (v == "" ? "?" : v) }' "$OUT_DIR/generator.out" 2>/dev/null || echo "?"
}

# --- build -----------------------------------------------------------------
for p in $GW_SIP_PORT $UAC_SIP_PORT $UAS_SIP_PORT $UAC_RTP_PORT $UAS_RTP_PORT; do
  port_busy udp "$p" && die "UDP port $p is in use on 127.0.0.1"
done
port_busy tcp "$API_PORT" && die "TCP port $API_PORT is in use on 127.0.0.1"

GEN_BIN="${GEN_BIN:-}"
if [ "$SKIP_BUILD" != 1 ]; then
  log "building release (cargo build --release --bin hotline; cargo bench --bench media_load --no-run)"
  (cd "$repo" && cargo build --release --bin hotline) >&2
  GEN_BIN="$(cd "$repo" && cargo bench --bench media_load --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*media_load-[^"]*"' | tail -1 | cut -d'"' -f4)"
fi
if [ -z "$GEN_BIN" ]; then
  for f in "$repo"/target/release/deps/media_load-*; do
    { [ -x "$f" ] && [ "${f%.d}" = "$f" ]; } || continue
    if [ -z "$GEN_BIN" ] || [ "$f" -nt "$GEN_BIN" ]; then GEN_BIN="$f"; fi
  done
fi
[ -x "$HOTLINE_BIN" ] || die "no gateway binary at $HOTLINE_BIN"
{ [ -n "$GEN_BIN" ] && [ -x "$GEN_BIN" ]; } || die "no generator: run cargo bench --bench media_load --no-run"

if [ "$direct" = 1 ]; then
  log "direct mode: $CALLS calls, ${DURATION}s, generator only ($GEN_BIN)"
  # shellcheck disable=SC2086
  "$GEN_BIN" --direct --calls "$CALLS" --duration "$DURATION" --cps "$CPS" --ip 127.0.0.1 \
    --uac-sip-port "$UAC_SIP_PORT" --uas-sip-port "$UAS_SIP_PORT" \
    --uac-rtp-port "$UAC_RTP_PORT" --uas-rtp-port "$UAS_RTP_PORT" ${GEN_ARGS:-} \
    2>"$OUT_DIR/generator.log" </dev/null | tee "$OUT_DIR/generator.out"
  exit "${PIPESTATUS[0]}"
fi

# --- the gateway -----------------------------------------------------------
cfg="$OUT_DIR/load-media.toml"
cat >"$cfg" <<EOF
# written by sip-scenarios/load-media.sh
[node]
name = "load-media"
data_dir = "$OUT_DIR/data"
shutdown_grace_secs = 5

[sip]
listen = "127.0.0.1:$GW_SIP_PORT"
ring_timeout_secs = 30

[api]
listen = "127.0.0.1:$API_PORT"

[media]
port_min = $MEDIA_PORT_MIN
port_max = $PORT_MAX
shards = $SHARDS

[[trunks]]
name = "generator"
sources = ["127.0.0.0/8"]

[[targets]]
name = "callee"
address = "127.0.0.1:$UAS_SIP_PORT"
transport = "udp"

[[routes]]
number = "12345"
target = "callee"
EOF
mkdir -p "$OUT_DIR/data"
"$HOTLINE_BIN" check-config "$cfg" >"$OUT_DIR/check-config.log" 2>&1 \
  || die "check-config rejected $cfg: $(cat "$OUT_DIR/check-config.log")"
# Per-call logging at info would measure the logger, not the gateway.
RUST_LOG="${RUST_LOG:-warn}" "$HOTLINE_BIN" serve --config "$cfg" \
  >"$OUT_DIR/gateway.log" 2>&1 </dev/null &
GW_PID=$!
for ((i = 0; i < 200; i++)); do
  kill -0 "$GW_PID" 2>/dev/null || die "gateway exited at startup: $(tail -20 "$OUT_DIR/gateway.log")"
  http_get "$API_PORT" /healthz >/dev/null && break
  sleep 0.1
done
http_get "$API_PORT" /healthz >/dev/null || die "gateway did not answer /healthz within 20 s"
log "gateway up (pid $GW_PID), logs in $OUT_DIR/gateway.log"

sleep 1
rss_idle="$(rss_kb "$GW_PID")"
http_get "$API_PORT" /metrics >"$OUT_DIR/metrics-idle.txt" || true
rcvbuf0="$(rcvbuf_errors)"

# --- the generator ---------------------------------------------------------
log "generator: $CALLS calls at $CPS cps, ${DURATION}s of media ($GEN_BIN)"
# shellcheck disable=SC2086
"$GEN_BIN" --gateway "127.0.0.1:$GW_SIP_PORT" --calls "$CALLS" --duration "$DURATION" \
  --cps "$CPS" --ip 127.0.0.1 --uac-sip-port "$UAC_SIP_PORT" --uas-sip-port "$UAS_SIP_PORT" \
  --uac-rtp-port "$UAC_RTP_PORT" --uas-rtp-port "$UAS_RTP_PORT" ${GEN_ARGS:-} \
  >"$OUT_DIR/generator.out" 2>"$OUT_DIR/generator.log" </dev/null &
GEN_PID=$!

bound=$((CALLS * 2 / CPS + DURATION + 120))
started="$SECONDS"
t_prev="$EPOCHREALTIME"
gw_prev="$(cpu_ticks "$GW_PID")"
hold_sum=0; hold_cnt=0; hold_peak=0; run_peak=0
rss_load=0; rss_peak="$rss_idle"; gw_drops="n/a"
next_metrics=0; saw_hold=0; after_hold=0
while kill -0 "$GEN_PID" 2>/dev/null; do
  if [ $((SECONDS - started)) -gt "$bound" ]; then
    log "generator still running after $bound s: killing it"
    kill -KILL "$GEN_PID" 2>/dev/null || true
    break
  fi
  sleep 1
  kill -0 "$GW_PID" 2>/dev/null || { log "gateway died during the run"; break; }
  t_now="$EPOCHREALTIME"
  ph="$(gen_phase)"
  ticks="$(cpu_ticks "$GW_PID")"
  cpu="$(awk -v a="$gw_prev" -v b="$ticks" -v t1="$t_prev" -v t2="$t_now" -v h="$CLK_TCK" \
    'BEGIN { printf "%.1f", (b - a) / h / (t2 - t1) * 100 }')"
  gw_prev="$ticks"; t_prev="$t_now"
  rss="$(rss_kb "$GW_PID")"
  [ "${rss:-0}" -gt "$rss_peak" ] && rss_peak="$rss"
  run_peak="$(awk -v m="$run_peak" -v c="$cpu" 'BEGIN { print (c > m ? c : m) }')"
  printf '%s %s cpu=%s rss_kb=%s\n' "$((SECONDS - started))" "${ph:-start}" "$cpu" "$rss" >>"$OUT_DIR/samples.txt"
  if [ "$ph" = hold ]; then
    # The first hold sample straddles the end of setup: skip it.
    if [ "$saw_hold" = 1 ]; then
      hold_sum="$(awk -v s="$hold_sum" -v c="$cpu" 'BEGIN { print s + c }')"
      hold_cnt=$((hold_cnt + 1))
      hold_peak="$(awk -v m="$hold_peak" -v c="$cpu" 'BEGIN { print (c > m ? c : m) }')"
      rss_load="$rss"
      gw_drops="$(gw_sock_drops)"
    fi
    saw_hold=1
    if [ "$SECONDS" -ge "$next_metrics" ]; then
      http_get "$API_PORT" /metrics >"$OUT_DIR/metrics-hold.txt" || true
      next_metrics=$((SECONDS + 5))
    fi
  elif [ "$saw_hold" = 1 ] && [ "$after_hold" = 0 ]; then
    # Hold just ended: the relay quantiles now cover (nearly) only the hold.
    after_hold=1
    http_get "$API_PORT" /metrics >"$OUT_DIR/metrics-load.txt" || true
    [ "$rss_load" = 0 ] && rss_load="$rss"
    [ "$gw_drops" = "n/a" ] && gw_drops="$(gw_sock_drops)"
  fi
done
gen_rc=0
wait "$GEN_PID" || gen_rc=$?
GEN_PID=""
[ -s "$OUT_DIR/metrics-load.txt" ] || cp "$OUT_DIR/metrics-hold.txt" "$OUT_DIR/metrics-load.txt" 2>/dev/null || true
# Shards publish their counters once a second.
sleep 2
http_get "$API_PORT" /metrics >"$OUT_DIR/metrics-end.txt" || true
rcvbuf1="$(rcvbuf_errors)"
gw_alive=yes
kill -0 "$GW_PID" 2>/dev/null || gw_alive=no
stop_pid "$GW_PID" 10; GW_PID=""

# --- report ----------------------------------------------------------------
[ -s "$OUT_DIR/generator.out" ] || die "the generator printed nothing (exit $gen_rc): $(tail -20 "$OUT_DIR/generator.log")"
m_end="$OUT_DIR/metrics-end.txt"; m_load="$OUT_DIR/metrics-load.txt"
up="$(result up)"
hold_avg="n/a"
[ "$hold_cnt" -gt 0 ] && hold_avg="$(awk -v s="$hold_sum" -v n="$hold_cnt" 'BEGIN { printf "%.0f", s / n }')"
box_pct() { awk -v c="$1" -v n="$NCPU" 'BEGIN { if (c == "n/a") print "n/a"; else printf "%.0f", c / n }'; }
per_call="n/a"
if [ "$up" != "?" ] && [ "$up" -gt 0 ] && [ "$rss_load" -gt 0 ]; then
  per_call="$(awk -v l="$rss_load" -v i="$rss_idle" -v n="$up" 'BEGIN { printf "%.1f", (l - i) / n }')"
fi
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
p50="$(relay_q "$m_load" 0.5)"; p99="$(relay_q "$m_load" 0.99)"; p999="$(relay_q "$m_load" 0.999)"
relayed="$(msum "$m_end" hotline_media_packets_relayed_total)"
received_legs="$(msum "$m_end" hotline_media_packets_received_on_legs_total)"
generated="$(msum "$m_end" hotline_media_packets_generated_total)"
send_err="$(msum "$m_end" hotline_media_send_errors_total)"
bind_fail="$(msum "$m_end" hotline_media_bind_failures_total)"
timeouts="$(msum "$m_end" hotline_media_rtp_timeouts_total)"
drops=""
for r in unknown_leg malformed unknown_pt unconfigured foreign_source not_forwarded stream; do
  drops="$drops $r=$(msum "$m_end" hotline_media_packets_dropped_total "reason=\"$r\"")"
done
outcomes="$(awk '/^hotline_calls_total[{]/ { o = $1; sub(/.*outcome="/, "", o); sub(/".*/, "", o); printf "%s=%.0f ", o, $NF }' "$m_end" 2>/dev/null || true)"
loss="$(result lost)"; sent="$(result sent)"
warn_lines="$(grep -cE ' (WARN|ERROR) ' "$OUT_DIR/gateway.log" 2>/dev/null || true)"

verdict() { # name ok? detail
  if [ "$2" = 1 ]; then printf '  %-26s PASS  %s\n' "$1" "$3"; else printf '  %-26s FAIL  %s\n' "$1" "$3"; fi
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a != "?" && a + 0 <= b + 0) }' && echo 1 || echo 0; }

{
  echo "# hotline media load: $HOTLINE_BIN, generator $(basename "$GEN_BIN")"
  echo "# $(date -Is)  $NCPU cores  CALLS=$CALLS DURATION=${DURATION}s CPS=$CPS shards=$SHARDS RTP range $MEDIA_PORT_MIN-$PORT_MAX"
  echo "# cpu: % of one core, 1 s samples of the hold phase (box = that / $NCPU cores)"
  printf '%-30s %s\n' "calls up / failed" "$up / $(result failed)   (BYE ok $(result bye_ok), failed $(result bye_failed), unanswered $(result bye_missing))"
  printf '%-30s %s\n' "gateway call outcomes" "${outcomes:-n/a}"
  printf '%-30s %s\n' "hold (all calls sending)" "$(result hold_s) s"
  printf '%-30s %s\n' "RTP A->B sent/recv/lost" "$(result a2b_sent) / $(result a2b_recv) / $(result a2b_lost)"
  printf '%-30s %s\n' "RTP B->A sent/recv/lost" "$(result b2a_sent) / $(result b2a_recv) / $(result b2a_lost)"
  printf '%-30s %s\n' "loss ratio" "$(result loss_ratio)  ($loss of $sent; dups $(result dups), reordered $(result reordered), foreign $(result foreign), calls with loss $(result calls_with_loss))"
  printf '%-30s %s\n' "e2e latency p50/p99/p99.9/max" "$(result lat_p50_us) / $(result lat_p99_us) / $(result lat_p999_us) / $(result lat_max_us) us in the hold (send->gateway->receive, incl. generator); whole run p99 $(result run_lat_p99_us), max $(result run_lat_max_us)"
  printf '%-30s %s\n' "gw relay p50/p99/p99.9" "$p50 / $p99 / $p999 us (hotline_media_relay_seconds)"
  printf '%-30s %s\n' "gw CPU hold avg / peak" "$hold_avg / $(awk -v m="$hold_peak" 'BEGIN { printf "%.0f", m }') % of a core (box: $(box_pct "$hold_avg") %); run peak $(awk -v m="$run_peak" 'BEGIN { printf "%.0f", m }') %"
  printf '%-30s %s\n' "gw RSS idle / load / peak" "$(mb "$rss_idle") / $(mb "$rss_load") / $(mb "$rss_peak") MB"
  printf '%-30s %s\n' "gw memory per call" "$per_call KiB ((load - idle) / calls up)"
  printf '%-30s %s\n' "gw packets on legs / relayed" "$received_legs / $relayed (generated $generated)"
  printf '%-30s %s\n' "gw packets dropped" "${drops# }"
  printf '%-30s %s\n' "gw send errors / bind fails" "$send_err / $bind_fail (rtp timeouts $timeouts)"
  printf '%-30s %s\n' "kernel drops" "gateway RTP sockets $gw_drops; generator sockets $(result gen_kdrop); box-wide RcvbufErrors +$((rcvbuf1 - rcvbuf0))"
  printf '%-30s %s\n' "generator" "CPU $(result gen_cpu) % ($(result gen_cpu_hold) % in hold), sender max lag $(result sender_max_lag_ms) ms, late slots $(result late_slots), send errors $(result send_errors), setup p50/p99 $(result setup_p50_ms)/$(result setup_p99_ms) ms"
  printf '%-30s %s\n' "gateway log" "$warn_lines WARN/ERROR lines; alive at end: $gw_alive; generator exit $gen_rc"
  echo "# targets (issue):"
  verdict "all calls up" "$([ "$up" = "$CALLS" ] && echo 1 || echo 0)" "$up of $CALLS"
  verdict "0 packets lost" "$([ "$loss" = 0 ] && echo 1 || echo 0)" "$loss lost of $sent"
  verdict "relay p99 <= 0.3 ms" "$(le "$p99" 300)" "$p99 us"
  verdict "CPU <= 80 % (box)" "$(le "$(box_pct "$hold_avg")" 80)" "hold avg $(box_pct "$hold_avg") % of $NCPU cores"
  verdict "<= 32 KiB per call" "$(le "$per_call" 32)" "$per_call KiB"
  late="$(result late_slots)"
  if [ "$late" != 0 ] && [ "$late" != "?" ]; then
    echo "# NOTE: the generator's sender fell behind ($late slots > 5 ms late): the box, not only the gateway, was saturated"
  fi
} | tee "$OUT_DIR/summary.txt"
log "summary in $OUT_DIR/summary.txt, generator output in $OUT_DIR/generator.out"

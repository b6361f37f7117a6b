#!/usr/bin/env bash
# Step load through the gateway as a B2BUA, on loopback only.
#
#   SIPp UAC (load-uac.xml, 127.0.0.1:25061)
#     -> hotline (SIP 127.0.0.1:25060, API 127.0.0.1:25090)
#       -> SIPp UAS (load-uas.xml, 127.0.0.1:25070)
#
# For each call rate in RATES it runs DURATION seconds of zero-second calls
# (INVITE/100/180/200/ACK/BYE/200 on both legs) and records:
#   - successful and failed calls (the UAC's statistics CSV), retransmissions;
#   - whether SIPp's watchdog fired (WatchdogMajor/Minor in the CSV, or
#     "watchdog"/"Overload warning" in its error logs): such a step is VOID,
#     the generator, not the gateway, fell behind (TESTING.md);
#   - gateway CPU% (average and peak over 1 s samples) and peak RSS, from
#     /proc/PID/stat and /proc/PID/status; both SIPp processes' CPU%;
#   - hotline_sip_processing_seconds quantiles 0.5 and 0.99 from /metrics,
#     sampled every 10 s while the load runs (the summary covers the last
#     40-60 s); the table shows the worst sample of each;
#   - datagrams the kernel dropped on the gateway's UDP socket during the
#     step (hotline_sip_udp_kernel_drops_total, the `kdrop` column).
# It prints a table and stops after the first step with failed calls.
#
# Usage:
#   sip-scenarios/load-b2bua.sh                 # build release, full run
#   RATES="200 400" DURATION=10 sip-scenarios/load-b2bua.sh
#   sip-scenarios/load-b2bua.sh --direct        # SIPp UAC -> SIPp UAS, no
#                                               # gateway: the generator's
#                                               # own ceiling on this box
# Environment:
#   RATES       call rates (calls/s), default "500 1000 1500 2000 2500 3000 3500 4000"
#   DURATION    seconds per step, default 60
#   HOLD_MS     call hold time (-d), default 0
#   OUT_DIR     where logs, CSVs and the table go, default target/load/<timestamp>
#   HOTLINE_BIN gateway binary, default target/release/hotline (built unless SKIP_BUILD=1)
#   SKIP_BUILD  1: do not run cargo build
#   UDP_BUFFER_BYTES  the gateway's sip.udp_buffer_bytes (default: its own)
#   UAC_ARGS / UAS_ARGS  extra SIPp options, e.g. "-trace_msg" (debugging)
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

RATES="${RATES:-500 1000 1500 2000 2500 3000 3500 4000}"
DURATION="${DURATION:-60}"
HOLD_MS="${HOLD_MS:-0}"
OUT_DIR="${OUT_DIR:-$repo/target/load/$(date +%Y%m%d-%H%M%S)}"
HOTLINE_BIN="${HOTLINE_BIN:-$repo/target/release/hotline}"
SKIP_BUILD="${SKIP_BUILD:-0}"

GW_SIP_PORT=${GW_SIP_PORT:-25060}
API_PORT=${API_PORT:-25090}
UAS_PORT=${UAS_PORT:-25070}
UAC_PORT=${UAC_PORT:-25061}
UAS_MEDIA_PORT=${UAS_MEDIA_PORT:-26000}
UAC_MEDIA_PORT=${UAC_MEDIA_PORT:-26010}

log() { printf 'load-b2bua: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v sipp >/dev/null || die "sipp missing: run ./scripts/install-test-deps"
if ! [[ "$DURATION" =~ ^[1-9][0-9]*$ ]]; then die "DURATION must be a positive integer"; fi
for r in $RATES; do
  if ! [[ "$r" =~ ^[1-9][0-9]*$ ]]; then die "bad rate in RATES: $r"; fi
done
[ -n "${RATES// /}" ] || die "RATES is empty"

mkdir -p "$OUT_DIR"
CLK_TCK="$(getconf CLK_TCK)"
# SIPp wants calls + sockets below the open-files limit: raise it if we may.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
[ "$NOFILE" = unlimited ] && NOFILE=1048576
[ "$NOFILE" -ge 4096 ] || die "ulimit -n is $NOFILE; need at least 4096 open files"

# --- processes we start (and only those are stopped) -----------------------
GW_PID=""; UAS_PID=""; UAC_PID=""
# shellcheck source=sip-scenarios/load-lib.sh
. "$here/load-lib.sh"
cleanup() {
  stop_pid "$UAC_PID" 2; UAC_PID=""
  stop_pid "$UAS_PID" 2; UAS_PID=""
  stop_pid "$GW_PID" 10; GW_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers ---------------------------------------------------------------


cpu_ticks() { # pid -> utime+stime in ticks (fields 14, 15; comm may hold
  # spaces); empty when there is no such process
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

counter() { # metrics-file name -> its value (0 when absent)
  awk -v n="$2" '$1 == n { v = $2 } END { printf "%.0f", v + 0 }' "$1" 2>/dev/null || printf 0
}

quantile() { # metrics-file quantile -> max value over all series, in microseconds
  awk -v q="$2" '
    /^hotline_sip_processing_seconds[{]/ && index($0, "quantile=\"" q "\"") {
      v = $NF + 0; if (!seen || v > m) m = v; seen = 1 }
    END { if (seen) printf "%.0f", m * 1e6; else printf "n/a" }' "$1" 2>/dev/null || printf 'n/a'
}

# --- the gateway -----------------------------------------------------------
start_gateway() {
  local cfg="$OUT_DIR/load.toml"
  cat >"$cfg" <<EOF
# written by sip-scenarios/load-b2bua.sh
[node]
name = "load"
data_dir = "$OUT_DIR/data"
shutdown_grace_secs = 5

[sip]
listen = "127.0.0.1:$GW_SIP_PORT"
ring_timeout_secs = 30
${UDP_BUFFER_BYTES:+udp_buffer_bytes = $UDP_BUFFER_BYTES}

[api]
listen = "127.0.0.1:$API_PORT"

[media]
# Away from this script's SIP/API ports (25060..27100).
port_min = 10000
port_max = 24999

[[trunks]]
name = "sipp"
sources = ["127.0.0.0/8"]

[[targets]]
name = "uas"
address = "127.0.0.1:$UAS_PORT"
transport = "udp"

[[routes]]
number = "12345"
target = "uas"
EOF
  mkdir -p "$OUT_DIR/data"
  "$HOTLINE_BIN" check-config "$cfg" >"$OUT_DIR/check-config.log" 2>&1 \
    || die "check-config rejected $cfg: $(cat "$OUT_DIR/check-config.log")"
  # Per-call logging at info would measure the logger, not the gateway.
  RUST_LOG="${RUST_LOG:-warn}" "$HOTLINE_BIN" serve --config "$cfg" \
    >"$OUT_DIR/gateway.log" 2>&1 </dev/null &
  GW_PID=$!
  local i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$GW_PID" 2>/dev/null || die "gateway exited at startup: $(tail -20 "$OUT_DIR/gateway.log")"
    if http_get "$API_PORT" /healthz >/dev/null; then
      log "gateway up (pid $GW_PID), logs in $OUT_DIR/gateway.log"
      return 0
    fi
    sleep 0.1
  done
  die "gateway did not answer /healthz within 20 s"
}

# --- one step --------------------------------------------------------------
# Sets: ROW (table line), STEP_FAILED (count)
run_step() {
  local rate="$1" d="$OUT_DIR/rate-$1"
  mkdir -p "$d"
  local calls=$((rate * DURATION))
  # -l: zero-second calls overlap only for a round trip or two; 5 s worth
  # of calls bounds a stalled gateway without tripping SIPp's open-files
  # check (calls + sockets must stay below `ulimit -n`).
  local limit=$((rate * 5))
  [ "$limit" -lt 2000 ] && limit=2000
  [ "$limit" -gt $((NOFILE - 1000)) ] && limit=$((NOFILE - 1000))
  local bound=$((DURATION + 60))
  local target="127.0.0.1:$GW_SIP_PORT"
  [ "$direct" = 1 ] && target="127.0.0.1:$UAS_PORT"

  # SIPp runs as our direct child (no subshell, no -bg), so $! is SIPp and
  # its /proc entry is what we sample; -timeout bounds it, and so does the
  # loop below (kill after bound + 30 s).
  sipp -sf "$here/load-uas.xml" \
      -i 127.0.0.1 -p "$UAS_PORT" -mp "$UAS_MEDIA_PORT" -nostdin \
      -buff_size 8388608 -max_recv_loops 5000 -max_sched_loops 5000 \
      -trace_err -error_file "$d/uas_errors.log" \
      -trace_stat -stf "$d/uas_stat.csv" -fd 1 \
      -timeout "${bound}s" ${UAS_ARGS:-} >"$d/uas_screen.log" 2>&1 </dev/null &
  UAS_PID=$!
  local i
  for ((i = 0; i < 50; i++)); do port_busy udp "$UAS_PORT" && break; sleep 0.1; done
  port_busy udp "$UAS_PORT" || die "SIPp UAS did not bind 127.0.0.1:$UAS_PORT: $(tail -5 "$d/uas_screen.log")"

  sipp "$target" -sf "$here/load-uac.xml" \
      -i 127.0.0.1 -p "$UAC_PORT" -mp "$UAC_MEDIA_PORT" -s 12345 -nostdin \
      -r "$rate" -rp 1000 -m "$calls" -l "$limit" -d "$HOLD_MS" \
      -buff_size 8388608 -max_recv_loops 5000 -max_sched_loops 5000 \
      -recv_timeout 10000 \
      -trace_err -error_file "$d/uac_errors.log" \
      -trace_stat -stf "$d/uac_stat.csv" -fd 1 \
      -timeout "${bound}s" ${UAC_ARGS:-} >"$d/uac_screen.log" 2>&1 </dev/null &
  UAC_PID=$!

  # Sample CPU (and the gateway's RSS) once a second while the UAC runs.
  # A sample only counts for a process that is still there at both ends.
  local gw="${GW_PID:-}"
  local -A prev=() sum=() cnt=() peak=()
  local names=(gw uac uas)
  local -A pid_of=([gw]="$gw" [uac]="$UAC_PID" [uas]="$UAS_PID")
  local t_prev t_now dt name ticks cpu rss rss_max=0 started="$SECONDS"
  local next_sample=10 p50="n/a" p99="n/a" q kdrop0=0 kdrop="n/a"
  if [ -n "$gw" ] && http_get "$API_PORT" /metrics >"$d/metrics-start.txt"; then
    kdrop0="$(counter "$d/metrics-start.txt" hotline_sip_udp_kernel_drops_total)"
  fi
  t_prev="$EPOCHREALTIME"
  for name in "${names[@]}"; do
    prev[$name]="$(cpu_ticks "${pid_of[$name]}")"; sum[$name]=0; cnt[$name]=0; peak[$name]=0
  done
  while kill -0 "$UAC_PID" 2>/dev/null; do
    if [ $((SECONDS - started)) -gt $((bound + 30)) ]; then
      log "UAC still running after $((bound + 30)) s: killing it"
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
    if [ -n "$gw" ] && [ $((SECONDS - started)) -ge "$next_sample" ] \
        && [ "$next_sample" -le "$DURATION" ]; then
      # Worst 0.5 and 0.99 quantile over the samples taken under load.
      if http_get "$API_PORT" /metrics >"$d/metrics-$next_sample.txt"; then
        q="$(quantile "$d/metrics-$next_sample.txt" 0.5)"
        [ "$q" != n/a ] && { [ "$p50" = n/a ] || [ "$q" -gt "$p50" ]; } && p50="$q"
        q="$(quantile "$d/metrics-$next_sample.txt" 0.99)"
        [ "$q" != n/a ] && { [ "$p99" = n/a ] || [ "$q" -gt "$p99" ]; } && p99="$q"
      fi
      next_sample=$((next_sample + 10))
      [ "$next_sample" -gt "$DURATION" ] && [ $((next_sample - 10)) -lt "$DURATION" ] && next_sample="$DURATION"
    fi
    if [ -n "$gw" ]; then
      rss="$(rss_kb "$gw")"
      [ "${rss:-0}" -gt "$rss_max" ] && rss_max="$rss"
      kill -0 "$gw" 2>/dev/null || { log "gateway died during rate $rate"; break; }
    fi
    t_prev="$t_now"
  done
  local uac_rc=0
  wait "$UAC_PID" || uac_rc=$?
  UAC_PID=""
  stop_pid "$UAS_PID" 2; UAS_PID=""

  # Statistics.
  local csv="$d/uac_stat.csv"
  local ok failed retrans wd_major wd_minor setup_ms rate_c dead ooc
  ok="$(csv_last "$csv" 'SuccessfulCall(C)')"
  failed="$(csv_last "$csv" 'FailedCall(C)')"
  retrans="$(csv_last "$csv" 'Retransmissions(C)')"
  wd_major="$(csv_last "$csv" 'WatchdogMajor(C)')"
  wd_minor="$(csv_last "$csv" 'WatchdogMinor(C)')"
  rate_c="$(csv_last "$csv" 'CallRate(C)')"
  dead="$(csv_last "$csv" 'DeadCallMsgs(C)')"
  ooc="$(csv_last "$csv" 'OutOfCallMsgs(C)')"
  setup_ms="$(csv_last "$csv" 'ResponseTime1(C)' | awk -F: 'NF == 4 { printf "%.1f", ($1 * 3600 + $2 * 60 + $3) * 1000 + $4 / 1000; next } { print "?" }')"
  # The UAC exits non-zero when calls failed; a missing CSV means it never ran.
  [ "$ok" = "?" ] && ok=0
  if [ "$failed" = "?" ]; then failed="$calls"; fi
  local missing=$((calls - ok - failed))
  [ "$missing" -gt 0 ] && failed=$((failed + missing))  # calls never completed

  local void=""
  local wd_log
  wd_log="$(cat "$d"/uac_errors.log "$d"/uas_errors.log 2>/dev/null | grep -ciE 'watchdog|overload warning' || true)"
  wd_log="${wd_log:-0}"
  local wd=0
  [ "$wd_major" != "?" ] && [ "$wd_major" != 0 ] && wd=1
  [ "$wd_minor" != "?" ] && [ "$wd_minor" != 0 ] && wd=1
  [ "$wd_log" != 0 ] && wd=1
  [ "$wd" = 1 ] && void="VOID"

  if [ -n "$gw" ] && http_get "$API_PORT" /metrics >"$d/metrics.txt"; then
    # The drop counter is refreshed every 5 s.
    sleep 5
    http_get "$API_PORT" /metrics >"$d/metrics.txt" || true
    kdrop=$(( $(counter "$d/metrics.txt" hotline_sip_udp_kernel_drops_total) - kdrop0 ))
  fi

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

  ROW="$(printf '%6s %7s %7s %8s %8s %6s %5s %4s %7s %7s %7s %8s %6s %6s %8s %8s %6s' \
    "$rate" "${rate_c%.*}" "$ok" "$failed" "$retrans" "$dead" "$ooc" "${wd_major}/${wd_minor}" \
    "$setup_ms" "$gw_avg" "$gw_peak" "$rss_mb" "$uac_avg" "$uas_avg" "$p50" "$p99" "$kdrop")"
  [ -n "$void" ] && ROW="$ROW  VOID (SIPp watchdog: generator overloaded)"
  [ "$uac_rc" -ne 0 ] && [ "$failed" = 0 ] && ROW="$ROW  (uac exit $uac_rc)"
  STEP_FAILED="$failed"
}

# --- main ------------------------------------------------------------------
for p in $GW_SIP_PORT $UAS_PORT $UAC_PORT; do
  port_busy udp "$p" && die "UDP port $p is in use on 127.0.0.1"
done
port_busy tcp "$API_PORT" && die "TCP port $API_PORT is in use on 127.0.0.1"

if [ "$direct" = 0 ]; then
  if [ "$SKIP_BUILD" != 1 ]; then
    log "building release (cargo build --release --bin hotline)"
    (cd "$repo" && cargo build --release --bin hotline) >&2
  fi
  [ -x "$HOTLINE_BIN" ] || die "no gateway binary at $HOTLINE_BIN"
  start_gateway
else
  log "direct mode: SIPp UAC -> SIPp UAS, no gateway"
fi

header="$(printf '%6s %7s %7s %8s %8s %6s %5s %4s %7s %7s %7s %8s %6s %6s %8s %8s %6s' \
  rate cps_got ok failed retrans dead ooc wdog setup_ms gw_cpu gw_peak gw_rssMB uacCPU uasCPU p50_us p99_us kdrop)"
table="$OUT_DIR/summary.txt"
{
  echo "# hotline load: $( [ "$direct" = 1 ] && echo 'direct sipp->sipp (no gateway)' || echo "B2BUA $HOTLINE_BIN")"
  echo "# $(date -Is)  $(nproc) cores  DURATION=${DURATION}s HOLD_MS=$HOLD_MS  RATES=$RATES"
  echo "# cpu columns: % of one core, 1 s samples (gw_cpu = average, gw_peak = max);"
  echo "# p50/p99: hotline_sip_processing_seconds quantiles from /metrics, microseconds,"
  echo "#   worst of the samples taken every 10 s under load; kdrop: datagrams the kernel"
  echo "#   dropped on the gateway's UDP socket during the step"
  echo "$header"
} | tee "$table"

stop_reason="all steps passed"
for rate in $RATES; do
  log "rate $rate cps for ${DURATION}s ($((rate * DURATION)) calls)"
  run_step "$rate"
  echo "$ROW" | tee -a "$table"
  if [ "$STEP_FAILED" != 0 ]; then
    stop_reason="stopped at $rate cps: $STEP_FAILED failed calls (logs: $OUT_DIR/rate-$rate)"
    break
  fi
done
echo "# $stop_reason" | tee -a "$table"
log "summary in $table"

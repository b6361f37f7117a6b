# Shell helpers shared by the load scripts (load-b2bua.sh, load-media.sh).
# Sourced, not run.

stop_pid() { # pid [grace seconds]
  local pid="$1" grace="${2:-5}" i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

port_busy() { # proto port -> 0 when something holds 127.0.0.1:port (or *:port)
  if [ "$1" = udp ]; then
    awk -v p="$(printf ':%04X' "$2")" '
      NR > 1 && ($2 == "0100007F" p || $2 == "00000000" p) { f = 1 }
      END { exit !f }' /proc/net/udp
  else
    (exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null
  fi
}

http_get() { # port path -> body on stdout; non-zero if no 200 within 5 s
  local port="$1" path="$2" resp
  resp="$(timeout 5 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$port"' || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "'"$path"'" >&3
    cat <&3' 2>/dev/null)" || return 1
  case "${resp%%$'\r'*}" in
    "HTTP/1."?" 200"*) printf '%s\n' "${resp#*$'\r\n\r\n'}" ;;
    *) return 1 ;;
  esac
}

rss_kb() { # pid -> VmRSS in kB
  awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

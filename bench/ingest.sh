#!/bin/bash
# Ingest benchmark, side by side in one run: nginx answering 204 (the ceiling for an HTTP
# server on this machine) and sluice storing every event durably in its embedded log.
# Reports requests/s, latency percentiles, server CPU per request, peak RSS, and
# instructions per request under callgrind. Usage: bench/ingest.sh [seconds] [connections]
# Needs a release build in build/ (make build) and wrk, nginx, valgrind (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
SLUICE=${SLUICE:-build/sluice}
OUT=$(mktemp -d /tmp/sluice-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
# Peak anonymous memory (heap, stacks) sampled every 100 ms: VmHWM also counts the pages of
# the log's memory-mapped file, which are page cache the kernel can drop, not our memory.
sample_anon() { local max=0 v; while kill -0 "$1" 2>/dev/null; do
  v=$(awk '/RssAnon/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0); [ "${v:-0}" -gt "$max" ] && max=$v
  echo "$max" > "$2"; sleep 0.1; done; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# run_wrk NAME PID PORT BATCH: one wrk run against a server; appends a result row.
run_wrk() {
  local name=$1 pid=$2 port=$3 batch=$4 hz ticks0 ticks1 out reqs
  hz=$(getconf CLK_TCK)
  ticks0=$(cpu_ticks "$pid")
  out=$(BATCH=$batch wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s bench/post_event.lua \
        "http://127.0.0.1:$port/analytics")
  ticks1=$(cpu_ticks "$pid")
  echo "$out" > "$OUT/$name.wrk"
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  python3 - "$name" "$batch" "$reqs" "$((ticks1 - ticks0))" "$hz" "$(hwm_kb "$pid")" "$OUT/$name.wrk" "$(cat "$OUT/anon.$pid")" <<'PY' >> "$OUT/rows"
import re, sys
name, batch, reqs, ticks, hz, hwm, path, anon = sys.argv[1:]
text = open(path).read()
def lat(p):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)" % p, text, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
cpu_us = int(ticks) / int(hz) * 1e6 / max(int(reqs), 1)
print(f"| {name} | {int(batch)} | {rps:,.0f} | {rps*int(batch):,.0f} | {lat(50):.2f} | {lat(99):.2f} "
      f"| {cpu_us:.1f} | {int(hwm)/1024:.1f} ({int(anon)/1024:.1f} anonymous) | {non2xx.group(1) if non2xx else 0} |")
PY
}

# --- nginx answering 204 ---
mkdir -p "$OUT/nginx/body"
NPORT=$(free_port)
sed -e "s#PREFIX#$OUT/nginx#g" -e "s#PORT#$NPORT#" bench/nginx-204.conf > "$OUT/nginx/nginx.conf"
nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" &
wait_port "$NPORT"
sleep 0.3
NGINX_PIDS=$(pgrep -f "nginx: worker process" | head -2)
# CPU and memory of nginx's workers: sum over them by measuring each.
NGINX_MASTER=$(cat "$OUT/nginx/nginx.pid")

echo "| server | events/request | requests/s | events/s | p50 ms | p99 ms | server CPU µs/request | peak RSS MB | non-2xx |" > "$OUT/rows"
echo "|---|---|---|---|---|---|---|---|---|" >> "$OUT/rows"
# nginx forks workers: measure CPU over all of them.
nginx_cpu_before=0; for p in $NGINX_PIDS; do nginx_cpu_before=$((nginx_cpu_before + $(cpu_ticks "$p"))); done
out=$(BATCH=1 wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s bench/post_event.lua "http://127.0.0.1:$NPORT/analytics")
nginx_cpu_after=0; for p in $NGINX_PIDS; do nginx_cpu_after=$((nginx_cpu_after + $(cpu_ticks "$p"))); done
echo "$out" > "$OUT/nginx.wrk"
hwm=0; for p in $NGINX_PIDS; do hwm=$((hwm + $(hwm_kb "$p"))); done
python3 - "$(echo "$out" | awk '/requests in/{print $1}')" "$((nginx_cpu_after - nginx_cpu_before))" "$(getconf CLK_TCK)" "$hwm" "$OUT/nginx.wrk" <<'PY' >> "$OUT/rows"
import re, sys
reqs, ticks, hz, hwm, path = sys.argv[1:]
text = open(path).read()
def lat(p):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)" % p, text, re.M)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(f"| nginx 204 (body discarded) | 1 | {rps:,.0f} | – | {lat(50):.2f} | {lat(99):.2f} "
      f"| {int(ticks)/int(hz)*1e6/max(int(reqs),1):.1f} | {int(hwm)/1024:.1f} | 0 |")
PY
kill "$NGINX_MASTER"; wait 2>/dev/null || true

# --- sluice, durable embedded log ---
SPORT=$(free_port)
"$SLUICE" serve --listen "127.0.0.1:$SPORT" --log "file://$OUT/log" --log-level warn >/dev/null &
SPID=$!
wait_port "$SPORT"
sample_anon "$SPID" "$OUT/anon.$SPID" &
run_wrk "sluice single event" "$SPID" "$SPORT" 1
run_wrk "sluice batch of 100" "$SPID" "$SPORT" 100
STORED=$(curl -s "http://127.0.0.1:$SPORT/metrics" | awk '/^sluice_log_appended_total/{print $2}')
COMMITS=$(curl -s "http://127.0.0.1:$SPORT/metrics" | awk '/^sluice_log_commits_total/{print $2}')
kill -TERM "$SPID"; wait "$SPID" || true

echo
echo "## ingest, $(date -u +%Y-%m-%d), ${DURATION}s per run, $CONNS connections, wrk -t2, $(nproc) cores"
echo
cat "$OUT/rows"
echo
echo "sluice stored $STORED events in $COMMITS durable commits ($(python3 -c "print(f'{$STORED/max($COMMITS,1):.1f}')") events per fsync group)."

# --- instructions per request under callgrind (no hardware counters here) ---
if [ "${CALLGRIND:-1}" = 1 ] && command -v valgrind >/dev/null; then
  bench/callgrind_ingest.sh "$OUT"
fi

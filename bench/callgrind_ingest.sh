#!/bin/bash
# Instructions per request for sluice and nginx under `valgrind --tool=callgrind` (this
# machine has no hardware counters; callgrind's counts repeat exactly). Each server runs
# twice, serving N_SMALL and then N_LARGE sequential keep-alive requests; the difference
# divided by (N_LARGE - N_SMALL) cancels start-up and shutdown; sluice then serves 20 and 120
# requests of 100 events, for instructions per event in batches. Called by ingest.sh with
# its scratch directory; may be run alone: bench/callgrind_ingest.sh [DIR].
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${1:-}" ]; then OUT=$1; else . bench/scratch.sh; scratch /tmp/sluice-cg.XXXXXX; fi
SLUICE=${SLUICE:-build/sluice}
N_SMALL=200
N_LARGE=1200

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# send PORT N [BATCH]: N sequential POSTs on one keep-alive connection, each of one event
# or (BATCH > 1) a JSON array of BATCH events.
send() {
  python3 - "$1" "$2" "${3:-1}" <<'PY'
import http.client, json, sys
port, n, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
def event(i):
    return {"timestamp": "2026-11-23T10:15:30.123Z", "channel": "web",
        "platform": "web-desktop", "event_type": "page_view", "event_category": "user_action",
        "resource_id": "https://shop.example.com/products/%d?ref=home" % i,
        "resource_title": "Product %d - Example Shop" % i, "interaction_target": "add-to-cart-button",
        "session_id": "sess-%08x" % (i * 7919), "user_id": "user-%06d" % i,
        "device_id": "dev-%08x" % (i * 31), "client_version": "4.12.0", "interaction_value": 3.5,
        "interaction_text": "blue kettle 1.7l",
        "metadata": {"viewport": "1440x900", "referrer": "https://search.example.com/?q=kettle"}}
for i in range(n):
    if batch == 1:
        body = json.dumps(event(i))
    else:
        body = json.dumps([event(i * batch + j) for j in range(batch)])
    c.request("POST", "/analytics", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status in (200, 204), r.status
PY
}

total_ir() { awk '/^(summary|totals):/{print $2; exit}' "$1"; }

# measure NAME N PORT START_CMD...: runs the server under callgrind for N requests of
# $BATCH events (1 unless set).
measure() {
  local name=$1 n=$2 port=$3; shift 3
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$name.$n" "$@" >/dev/null 2>"$OUT/cg.$name.$n.log" &
  local pid=$!
  wait_port "$port"
  send "$port" "$n" "${BATCH:-1}"
  kill -TERM "$pid"; wait "$pid" || true
  total_ir "$OUT/cg.$name.$n"
}

sluice_run() {
  local n=$1 name=${2:-sluice} port; port=$(free_port)
  rm -rf "$OUT/cglog"
  measure "$name" "$n" "$port" "$SLUICE" serve --roles api --listen "127.0.0.1:$port" --log "file://$OUT/cglog" --log-level warn
}

nginx_run() {
  local n=$1 port; port=$(free_port)
  mkdir -p "$OUT/cgnginx/body"
  sed -e "s#PREFIX#$OUT/cgnginx#g" -e "s#PORT#$port#" -e "s#worker_processes 2;#worker_processes 1; master_process off;#" \
    bench/nginx-204.conf > "$OUT/cgnginx/nginx.conf"
  measure nginx "$n" "$port" nginx -c "$OUT/cgnginx/nginx.conf" -p "$OUT/cgnginx"
}

s1=$(sluice_run $N_SMALL); s2=$(sluice_run $N_LARGE)
n1=$(nginx_run $N_SMALL); n2=$(nginx_run $N_LARGE)
# Batches of 100: 20 and 120 requests (each is 100 events, so the difference is 10,000).
b1=$(BATCH=100 sluice_run 20 sluice-batch); b2=$(BATCH=100 sluice_run 120 sluice-batch)
python3 - "$s1" "$s2" "$n1" "$n2" "$N_SMALL" "$N_LARGE" "$b1" "$b2" <<'PY'
import sys
s1, s2, n1, n2, a, b, b1, b2 = map(int, sys.argv[1:])
sl = (s2 - s1) / (b - a); ng = (n2 - n1) / (b - a); per_event = (b2 - b1) / (100 * 100)
print()
print("| server (callgrind, sequential requests) | instructions/request | ratio to nginx |")
print("|---|---|---|")
print(f"| nginx 204 | {ng:,.0f} | 1.0 |")
print(f"| sluice, durable single event | {sl:,.0f} | {sl/ng:.1f} |")
print(f"| sluice, durable batch of 100 | {per_event * 100:,.0f} ({per_event:,.0f} per event) | {per_event * 100/ng:.1f} |")
PY

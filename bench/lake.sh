#!/bin/bash
# Lake sink throughput, side by side in one run: N realistic events (default 1,000,000)
# are put in an embedded log through `sluice serve --roles api` (not timed); then
#  - sluice: `sluice serve --roles lake-sink` on that log, from start until its /metrics
#    count every event committed to a new Delta table (date-partitioned Parquet, one
#    commit per 100,000 events), and the CPU seconds the sink process used;
#  - DuckDB: the same events as JSON lines (`sluice log read`, not timed) to
#    date-partitioned Parquet with `COPY ... PARTITION_BY (event_date)`, one thread.
# Usage: bench/lake.sh [events] [codec]. Needs a release build in build/ and tests/node.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
CODEC=${2:-snappy}
SLUICE=${SLUICE:-build/sluice}
OUT=$(mktemp -d /tmp/sluice-lakebench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$OUT"; }
trap cleanup EXIT
[ -d tests/node/node_modules ] || (cd tests/node && npm ci --no-audit --no-fund >/dev/null)

port_of() { # waits for the "listening" line of a sluice stderr file
  for _ in $(seq 200); do
    p=$(grep -o 'url=http://[^ ]*' "$1" 2>/dev/null | head -1 | sed 's/.*://') || true
    [ -n "$p" ] && { echo "$p"; return; }
    sleep 0.05
  done
  echo "sluice did not start: $(cat "$1")" >&2; exit 1
}

"$SLUICE" serve --roles api --listen 127.0.0.1:0 --log "file://$OUT/log" 2> "$OUT/api.err" > /dev/null &
PIDS+=($!)
python3 bench/lake_fill.py "$(port_of "$OUT/api.err")" "$N"
kill "${PIDS[0]}"; wait "${PIDS[0]}" || true
echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores; $N events, codec $CODEC"

start=$(date +%s.%N)
"$SLUICE" serve --roles lake-sink --listen 127.0.0.1:0 --log "file://$OUT/log" \
  --lake "file://$OUT/lake" --lake-codec "$CODEC" --lake-batch-rows 100000 \
  2> "$OUT/sink.err" > /dev/null &
SINK=$!
PIDS+=($SINK)
port=$(port_of "$OUT/sink.err")
while :; do
  n=$(curl -s "127.0.0.1:$port/metrics" | awk '/^sluice_lake_events_total /{print $2}')
  [ "${n:-0}" -ge "$N" ] && break
  sleep 0.05
done
end=$(date +%s.%N)
ticks=$(awk '{print $14 + $15}' "/proc/$SINK/stat")
kill "$SINK"; wait "$SINK" || true
bytes=$(find "$OUT/lake" -name '*.parquet' -printf '%s\n' | awk '{s+=$1} END {print s}')
python3 - "$N" "$start" "$end" "$ticks" "$(getconf CLK_TCK)" "$bytes" "$CODEC" <<'PY'
import sys
n, start, end, ticks, hz, size, codec = sys.argv[1:]
secs, cpu = float(end) - float(start), int(ticks) / int(hz)
print(f"sluice lake sink  {codec}  {int(n) / secs:>10,.0f} events/s wall  {secs:.2f} s  "
      f"{int(n) / cpu:>10,.0f} events/CPU-s  {int(size):>12,} bytes of Parquet")
PY

"$SLUICE" log read --log "file://$OUT/log" > "$OUT/events.jsonl"
node bench/lake_duckdb.mjs "$OUT/events.jsonl" "$OUT/duckdb" "$CODEC" |
  python3 -c "
import json, os, sys
r = json.load(sys.stdin)
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk('$OUT/duckdb') for f in fs)
print(f'duckdb COPY       $CODEC  {r[\"rows_per_s\"]:>10,.0f} events/s wall  {r[\"seconds\"]:.2f} s  {r[\"rows_per_cpu_s\"]:>10,.0f} events/CPU-s  {size:>12,} bytes of Parquet (1 thread)')"

#!/bin/bash
# Lake sink write throughput to S3 (moto_server on 127.0.0.1, path-style, started here)
# beside the local disk, in one run: N realistic events (default 200,000) are put in an
# embedded log through `sluice serve --roles api` (not timed, bench/lake_fill.py); then
# `sluice serve --roles lake-sink` drains that log into a new Delta table, once per store
# and round (file:// under /var/tmp, then s3://), timed from its start until its /metrics
# count every event committed, with the sink's CPU seconds from /proc/PID/stat. Each sink
# starts on an empty table, so it reads the whole log (the table's txn, not the group's
# offsets, says where to start). Prints events/s, MB/s of Parquet and events per CPU-s.
# Usage: bench/lake_s3.sh [events] [rounds] [codec]. Needs a release build in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-2}
CODEC=${3:-snappy}
SLUICE=${SLUICE:-build/sluice}
OUT=$(mktemp -d "${BENCH_TMP:-/var/tmp}/sluice-lakes3.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT
command -v moto_server >/dev/null || { echo "moto_server is not installed" >&2; exit 1; }

port_of() { # waits for the "listening" line of a sluice stderr file
  for _ in $(seq 200); do
    p=$(grep -o 'url=http://[^ ]*' "$1" 2>/dev/null | head -1 | sed 's/.*://') || true
    [ -n "$p" ] && { echo "$p"; return; }
    sleep 0.05
  done
  echo "sluice did not start: $(cat "$1")" >&2; exit 1
}

MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$MOTO_PORT" > "$OUT/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$MOTO_PORT") 2>/dev/null && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:$MOTO_PORT/bench" > /dev/null
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench

"$SLUICE" serve --roles api --listen 127.0.0.1:0 --log "file://$OUT/log" 2> "$OUT/api.err" > /dev/null &
API=$!
PIDS+=($API)
python3 bench/lake_fill.py "$(port_of "$OUT/api.err")" "$N"
kill "$API"; wait "$API" || true

# run NAME LAKE_FLAGS...: one sink draining the log; appends "wall cpu bytes" to OUT/NAME.
run() {
  local name=$1
  shift
  local start end port n ticks bytes sink
  start=$(date +%s.%N)
  "$SLUICE" serve --roles lake-sink --listen 127.0.0.1:0 --log "file://$OUT/log" \
    --lake-codec "$CODEC" --lake-batch-rows 100000 "$@" 2> "$OUT/$name.err" > /dev/null &
  sink=$!
  PIDS+=($sink)
  port=$(port_of "$OUT/$name.err")
  while :; do
    n=$(curl -s "127.0.0.1:$port/metrics" | awk '/^sluice_lake_events_total /{print $2}')
    [ "${n:-0}" -ge "$N" ] && break
    sleep 0.05
  done
  end=$(date +%s.%N)
  ticks=$(awk '{print $14 + $15}' "/proc/$sink/stat")
  bytes=$(curl -s "127.0.0.1:$port/metrics" | awk '/^sluice_lake_file_bytes_total /{print $2}')
  kill "$sink"; wait "$sink" || true
  echo "$(echo "$end - $start" | bc) $(echo "$ticks / $(getconf CLK_TCK)" | bc -l) $bytes" >> "$OUT/$name"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores; $N events, codec $CODEC, $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
  run file --lake "file://$OUT/lake-file-$r"
  run s3 --lake "s3://bench/lake-$r" --s3-endpoint "http://127.0.0.1:$MOTO_PORT" --s3-path-style
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$OUT" "$N" <<'PY'
import statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
print("| store | events/s (median) | best | MB/s of Parquet (median) | events per CPU-s (median) | wall s (median) | rounds |")
print("|---|---|---|---|---|---|---|")
for name, label in (("file", "file:// local disk"), ("s3", "s3:// moto_server")):
    rows = [tuple(float(v) for v in line.split()) for line in open(f"{out}/{name}")]
    rate = [n / w for w, _, _ in rows]
    mbs = [b / w / 1e6 for w, _, b in rows]
    cpu = [n / c for _, c, _ in rows]
    print(f"| {label} | {statistics.median(rate):,.0f} | {max(rate):,.0f} | "
          f"{statistics.median(mbs):.1f} | {statistics.median(cpu):,.0f} | "
          f"{statistics.median([w for w, _, _ in rows]):.2f} | {len(rows)} |")
PY

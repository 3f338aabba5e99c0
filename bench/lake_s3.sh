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

. bench/lake_common.sh

MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$MOTO_PORT" > "$OUT/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$MOTO_PORT") 2>/dev/null && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:$MOTO_PORT/bench" > /dev/null
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench

fill_log

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores; $N events, codec $CODEC, $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
  run_sink file --lake "file://$OUT/lake-file-$r"
  run_sink s3 --lake "s3://bench/lake-$r" --s3-endpoint "http://127.0.0.1:$MOTO_PORT" --s3-path-style
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

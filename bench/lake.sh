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

. bench/lake_common.sh
fill_log
echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores; $N events, codec $CODEC"

run_sink sink --lake "file://$OUT/lake"
python3 - "$N" "$OUT/sink" "$CODEC" <<'PY'
import sys
n, result, codec = int(sys.argv[1]), sys.argv[2], sys.argv[3]
secs, cpu, size = (float(v) for v in open(result).read().split())
print(f"sluice lake sink  {codec}  {n / secs:>10,.0f} events/s wall  {secs:.2f} s  "
      f"{n / cpu:>10,.0f} events/CPU-s  {int(size):>12,} bytes of Parquet")
PY

"$SLUICE" log read --log "file://$OUT/log" > "$OUT/events.jsonl"
node bench/lake_duckdb.mjs "$OUT/events.jsonl" "$OUT/duckdb" "$CODEC" |
  python3 -c "
import json, os, sys
r = json.load(sys.stdin)
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk('$OUT/duckdb') for f in fs)
print(f'duckdb COPY       $CODEC  {r[\"rows_per_s\"]:>10,.0f} events/s wall  {r[\"seconds\"]:.2f} s  {r[\"rows_per_cpu_s\"]:>10,.0f} events/CPU-s  {size:>12,} bytes of Parquet (1 thread)')"

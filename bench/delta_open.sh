#!/bin/bash
# Time to open a Delta table's latest snapshot after N commits (default 1,000), without
# and with a checkpoint, side by side in one run, on file:// (a temp dir on the local disk)
# and on s3:// (moto_server on 127.0.0.1, started here, path-style). The table is built the
# way the lake sink commits (one add with stats and a txn per version) by
# sluice-delta-bench; "without" reads the JSON history (0..N), "with" reads the checkpoint
# of version N that sluice-delta-bench then writes (_last_checkpoint, no JSON commit
# after it). Each open is timed ROUNDS times (default 5): best and median wall seconds.
# Usage: bench/delta_open.sh [commits] [rounds]   Env: TOOL (build/sluice-delta-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
ROUNDS=${2:-5}
TOOL=${TOOL:-build/sluice-delta-bench}
. bench/scratch.sh
scratch "${BENCH_TMP:-/var/tmp}/sluice-bench-delta-open.XXXXXX"

stores=("file" "file://$OUT/table")
if command -v moto_server > /dev/null; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$PORT" > "$OUT/moto.log" 2>&1 &
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done
  curl -sf -X PUT "http://127.0.0.1:$PORT/bench" > /dev/null
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
  stores+=("s3 (moto)" "s3://bench/table")
else
  echo "moto_server is not installed: file:// only" >&2
fi
S3ARGS=()
[ -n "${PORT:-}" ] && S3ARGS=(--endpoint "http://127.0.0.1:$PORT" --path-style)

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, $N commits, $ROUNDS rounds"
echo "| store | snapshot of version $N | best s | median s | files |"
echo "|---|---|---|---|---|"
for ((i = 0; i < ${#stores[@]}; i += 2)); do
  name=${stores[i]}
  uri=${stores[i + 1]}
  args=()
  [[ $uri == s3://* ]] && args=("${S3ARGS[@]}")
  "$TOOL" "${args[@]}" fill "$uri" "$N"
  without=$("$TOOL" "${args[@]}" open "$uri" "$ROUNDS")
  "$TOOL" "${args[@]}" checkpoint "$uri" "$N"
  with=$("$TOOL" "${args[@]}" open "$uri" "$ROUNDS")
  for pair in "JSON replay of $((N + 1)) commits|$without" "checkpoint $N|$with"; do
    python3 - "$name" "${pair%%|*}" "${pair#*|}" <<'PY'
import json, sys
name, what, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"| {name} | {what} | {r['best_s']:.4f} | {r['median_s']:.4f} | {r['files']} |")
PY
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

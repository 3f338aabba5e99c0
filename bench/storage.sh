#!/bin/bash
# Storage write throughput, side by side in one run: the same sluice-storage-tool calls
# into file:// (a temp dir on the local disk; fsync of file and directory at commit) and
# into s3:// (moto_server on 127.0.0.1, started here, path-style). Two workloads:
#   large: one upload stream of SIZE_MB MiB (8 MiB parts on S3: multipart) -> MB/s
#   small: COUNT puts of 2 KiB (the size of a Delta commit) -> objects/s
# Rounds alternate between the stores; best and median are printed as markdown rows.
# Usage: bench/storage.sh [size_mb] [count] [rounds]   Env: TOOL (build/sluice-storage-tool)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-128}
COUNT=${2:-200}
ROUNDS=${3:-3}
TOOL=${TOOL:-build/sluice-storage-tool}
. bench/scratch.sh
scratch "${BENCH_TMP:-/var/tmp}/sluice-bench-storage.XXXXXX"
command -v moto_server >/dev/null || { echo "moto_server is not installed" >&2; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$PORT" > "$OUT/moto.log" 2>&1 &
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:$PORT/bench" > /dev/null
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
S3=(--endpoint "http://127.0.0.1:$PORT" --path-style s3://bench/t)
FILE=("file://$OUT/store")
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$OUT/payload"

# time_cmd FILE_TO_APPEND CMD...: appends "wall user sys" seconds of CMD (the client's
# own CPU, so a slow server is told apart from a slow client).
TIMEFORMAT='%R %U %S'
time_cmd() {
  local out=$1
  shift
  { time "$@" ; } 2>> "$out"
}

for r in $(seq "$ROUNDS"); do
  for store in file s3; do
    if [ "$store" = file ]; then args=("${FILE[@]}"); else args=("${S3[@]}"); fi
    time_cmd "$OUT/$store.large" "$TOOL" "${args[@]}" upload "big$r.bin" "$OUT/payload"
    "$TOOL" "${args[@]}" rm "big$r.bin"
    time_cmd "$OUT/$store.small" "$TOOL" "${args[@]}" fill "small$r/" "$COUNT" 2048
  done
done

python3 - "$OUT" "$SIZE_MB" "$COUNT" <<'EOF'
import statistics, sys
out, size_mb, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rows(path):
    return [tuple(float(v) for v in line.split()) for line in open(path) if line.strip()]
print("| store | workload | best | median | sluice CPU (median, user+sys) | rounds |")
print("|---|---|---|---|---|---|")
for store, name in (("file", "file:// local disk"), ("s3", "s3:// moto_server")):
    for kind, label, unit, amount in (("large", f"upload {size_mb} MiB", "MB/s", size_mb * 1.048576),
                                      ("small", f"{count} puts of 2 KiB", "obj/s", count)):
        rs = rows(f"{out}/{store}.{kind}")
        rates = sorted(amount / r[0] for r in rs)
        cpu = statistics.median(r[1] + r[2] for r in rs)
        print(f"| {name} | {label} | {rates[-1]:.0f} {unit} | {statistics.median(rates):.0f} {unit} "
              f"| {cpu:.2f} s | {len(rs)} |")
EOF

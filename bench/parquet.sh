#!/bin/bash
# Parquet writer benchmark, side by side in one run: sluice's encoder and DuckDB's
# `COPY ... TO (FORMAT parquet)` with one thread each write the same N analytics events
# (default 1,000,000; DESIGN.md's event schema, fixed seed), rows already in memory on
# both sides, only the write timed; snappy and zstd. The runs alternate REPEAT times
# (default 3) and the best and median of each are printed: rows/s, wall and CPU seconds,
# file size. Usage: bench/parquet.sh [rows] [repeat]. Needs a release build in build/ and
# `npm ci` in tests/node (make bench-parquet does both).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
REPEAT=${2:-3}
TOOL=${TOOL:-build/sluice-parquet-tool}
OUT=$(mktemp -d "${BENCH_TMP:-/tmp}/sluice-pqbench.XXXXXX") # BENCH_TMP=/dev/shm: no disk
trap 'rm -rf "$OUT"' EXIT
[ -d tests/node/node_modules ] || (cd tests/node && npm ci --no-audit --no-fund >/dev/null)

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, $ROWS rows, $REPEAT rounds"
"$TOOL" bench --rows "$ROWS" --codec none "$OUT/source.parquet" > /dev/null
for _ in $(seq "$REPEAT"); do
  # sluice with the fdatasync the lake sink needs, and without it (DuckDB's COPY does not
  # sync: strace shows no fsync/fdatasync).
  for codec in snappy zstd; do
    "$TOOL" bench --rows "$ROWS" --codec "$codec" "$OUT/sluice_$codec.parquet" |
      sed "s/^{/{\"who\": \"sluice\", \"codec\": \"$codec\", /" >> "$OUT/runs"
    "$TOOL" bench --rows "$ROWS" --codec "$codec" --no-sync "$OUT/sluice_$codec.parquet" |
      sed "s/^{/{\"who\": \"sluice, no fdatasync\", \"codec\": \"$codec\", /" >> "$OUT/runs"
  done
  node bench/parquet_duckdb.mjs "$OUT/source.parquet" "$OUT" snappy zstd |
    sed 's/^{/{"who": "duckdb COPY, threads=1", /' >> "$OUT/runs"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT/runs" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
runs = [r for r in lines if "verify" not in r]
for v in (r for r in lines if "verify" in r):
    if v["missing"] or v["extra"]:
        sys.exit(f"{v['verify']}: {v['missing']} rows missing, {v['extra']} extra, against DuckDB's table")
print("sluice's files hold exactly the benchmark rows (DuckDB EXCEPT ALL both ways: 0 rows)")
print("| writer | codec | rows/s (best) | rows/s (median) | wall s (best) | CPU s (best) | file bytes |")
print("|---|---|---|---|---|---|---|")
for codec in ("snappy", "zstd"):
    for who in dict.fromkeys(r["who"] for r in runs):
        rs = [r for r in runs if r["who"] == who and r["codec"] == codec]
        if not rs:
            continue
        print(f"| {who} | {codec} | {max(r['rows_per_s'] for r in rs):,.0f} | "
              f"{statistics.median(r['rows_per_s'] for r in rs):,.0f} | "
              f"{min(r['seconds'] for r in rs):.3f} | {min(r['cpu_seconds'] for r in rs):.3f} | "
              f"{rs[0]['bytes']:,} |")
for codec in ("snappy", "zstd"):
    s = [r for r in runs if r["who"] == "sluice" and r["codec"] == codec]
    d = [r for r in runs if r["who"].startswith("duckdb") and r["codec"] == codec]
    if s and d:
        print(f"{codec}: sluice/duckdb rows/s {statistics.median(r['rows_per_s'] for r in s) / statistics.median(r['rows_per_s'] for r in d):.2f}x"
              f" (medians, sluice with fdatasync), CPU {min(r['cpu_seconds'] for r in s) / min(r['cpu_seconds'] for r in d):.2f}x,"
              f" file size {s[0]['bytes'] / d[0]['bytes']:.3f}x")
PY

#!/bin/bash
# Parquet writer benchmark, side by side in one run: sluice's encoder and DuckDB's
# `COPY ... TO (FORMAT parquet)` with one thread each write the same N analytics events
# (default 1,000,000; DESIGN.md's event schema, fixed seed), rows already in memory on
# both sides, only the write timed; snappy and zstd. Prints rows/s and file sizes.
# Usage: bench/parquet.sh [rows]. Needs a release build in build/ and `npm ci` in tests/node.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
TOOL=${TOOL:-build/sluice-parquet-tool}
OUT=$(mktemp -d /tmp/sluice-pqbench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
[ -d tests/node/node_modules ] || (cd tests/node && npm ci --no-audit --no-fund >/dev/null)

echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
"$TOOL" bench --rows "$ROWS" --codec none "$OUT/source.parquet" > /dev/null
# sluice twice per codec: with the fdatasync the lake sink needs, and without it (DuckDB's
# COPY does not sync; strace shows no fsync/fdatasync).
for codec in snappy zstd; do for sync in "" --no-sync; do
  "$TOOL" bench --rows "$ROWS" --codec "$codec" $sync "$OUT/sluice_$codec.parquet" |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(f'sluice${sync:+ (no sync)}  $codec  {r[\"rows_per_s\"]:>10,.0f} rows/s  {r[\"seconds\"]:.3f} s  cpu {r[\"cpu_seconds\"]:.3f} s  {r[\"bytes\"]:>11,} bytes')"
done; done
node bench/parquet_duckdb.mjs "$OUT/source.parquet" "$OUT" snappy zstd |
  python3 -c "
import json,sys
for l in sys.stdin:
    r=json.loads(l); print(f'duckdb  {r[\"codec\"]}  {r[\"rows_per_s\"]:>10,.0f} rows/s  {r[\"seconds\"]:.3f} s  cpu {r[\"cpu_seconds\"]:.3f} s  {r[\"bytes\"]:>11,} bytes')"

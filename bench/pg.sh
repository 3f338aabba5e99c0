#!/bin/sh
# The pg sink against PostgreSQL's own server-side COPY, in one run: throughput from the
# log into PostgreSQL (with sluice's index and rollups) beside `COPY ... FROM 'file'` of
# the same rows into the same table, each index's COPY cost, and freshness (HTTP answer to
# row visible) at 10,000 events/s. Results print and go to bench/out/pg.txt.
#   bench/pg.sh [--events N] [--rate R] [--seconds S] [--no-indexes]
set -eu
cd "$(dirname "$0")/.."
[ -x build/sluice ] || make build
exec python3 bench/pg_bench.py "$@"

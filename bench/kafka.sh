#!/bin/bash
# Kafka ingest benchmark, side by side in one run against the same librdkafka mock cluster
# (build/sluice-kafka-mock, started here) and the same wrk script (bench/post_event.lua,
# BATCH=1): sluice with --log kafka://, and the reference Node.js API (Express + KafkaJS,
# github dataGriff/analytics.platform, analytics-api/) when $REFERENCE_API_DIR points at a
# checkout of that directory. The reference is copied to a temp dir, npm-installed there,
# and its broker address (kafka:29092) rewritten to the mock's; nothing of it is committed.
# Usage: [REFERENCE_API_DIR=DIR] bench/kafka.sh [seconds] [connections]
# Env: SLUICE (build/sluice), KAFKA_MOCK (build/sluice-kafka-mock), CEILING (1: first run
# KAFKA_CEILING, build/sluice-kafka-ceiling, an ideal producer without HTTP), REFERENCE_PATH
# (/analytics), REFERENCE_ENTRY (package.json's main, else server.js/index.js/app.js),
# ROUNDS (1: with N, both servers stay up and their runs alternate N times; the medians and
# the median of the per-round ratios follow, bench/rounds.py).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${ROUNDS:-1}
SLUICE=${SLUICE:-build/sluice}
KAFKA_MOCK=${KAFKA_MOCK:-build/sluice-kafka-mock}
KAFKA_CEILING=${KAFKA_CEILING:-build/sluice-kafka-ceiling}
CEILING=${CEILING:-1}
REFERENCE_PATH=${REFERENCE_PATH:-/analytics}
. bench/scratch.sh
scratch /tmp/sluice-bench-kafka.XXXXXX

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# run_wrk NAME PID URL: one wrk run; appends a result row and records it in $WRK_RUNS.
# The mock cluster's CPU over the run is the row's last column.
run_wrk() {
  local name=$1 pid=$2 url=$3 t0 t1 m0 m1
  t0=$(cpu_ticks "$pid")
  m0=$(cpu_ticks "$MOCK_PID")
  BATCH=1 wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s bench/post_event.lua "$url" > "$OUT/run.wrk"
  t1=$(cpu_ticks "$pid")
  m1=$(cpu_ticks "$MOCK_PID")
  python3 bench/wrk_row.py kafka "$name" "$OUT/run.wrk" "$((t1 - t0))" "$((m1 - m0))" >> "$OUT/rows"
}
export WRK_RUNS="$OUT/runs.jsonl"
SLUICE_NAME="sluice (kafka://)"
REFERENCE_NAME="reference (Express + KafkaJS)"

# --- the mock cluster: 1 broker, 8 partitions, topic analytics-events ---
mkfifo "$OUT/mock.in"
"$KAFKA_MOCK" --brokers 1 --partitions 8 --topic analytics-events < "$OUT/mock.in" > "$OUT/mock.out" 2>/dev/null &
MOCK_PID=$!
exec 9>"$OUT/mock.in" # keeps the mock's stdin open
for _ in $(seq 100); do grep -q '^bootstrap=' "$OUT/mock.out" && break; sleep 0.1; done
BOOTSTRAP=$(sed -n 's/^bootstrap=//p' "$OUT/mock.out")
[ -n "$BOOTSTRAP" ] || { echo "the mock cluster did not start" >&2; exit 1; }
echo "mock cluster: $BOOTSTRAP"

# --- the ceiling without HTTP: an ideal producer with sluice's settings (bench/kafka_ceiling.c),
# $CONNS messages in flight as $CONNS keep-alive clients keep, at linger.ms 0 and at sluice's
# default ---
if [ "$CEILING" = 1 ]; then
  for linger in 0 0.2; do
    m0=$(cpu_ticks "$MOCK_PID")
    r=$("$KAFKA_CEILING" "$BOOTSTRAP" 5 "$CONNS" "linger.ms=$linger")
    m1=$(cpu_ticks "$MOCK_PID")
    echo "ideal producer, linger.ms=$linger, $CONNS in flight: $r mock_cpu_ticks $((m1 - m0))"
  done | tee "$OUT/ceiling"
fi

echo "| server | requests/s | p50 ms | p99 ms | server CPU µs/request | non-2xx | mock cluster CPU µs/request |" > "$OUT/rows"
echo "|---|---|---|---|---|---|---|" >> "$OUT/rows"

# --- sluice, Kafka backend ---
SPORT=$(free_port)
"$SLUICE" serve --roles api --listen "127.0.0.1:$SPORT" --log "kafka://$BOOTSTRAP/analytics-events" \
  --log-level warn >/dev/null &
SPID=$!
wait_port "$SPORT" || { echo "sluice did not start" >&2; exit 1; }

# --- the reference API (Express + KafkaJS) ---
if [ -z "${REFERENCE_API_DIR:-}" ]; then
  echo "REFERENCE_API_DIR is not set: skipping the reference Node.js API (point it at a" \
       "checkout of dataGriff/analytics.platform's analytics-api/ to compare)"
else
  command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "node and npm are needed for the reference API" >&2; exit 1; }
  REF="$OUT/reference"
  cp -r "$REFERENCE_API_DIR" "$REF"
  rm -rf "$REF/node_modules"
  grep -rl 'kafka:29092' "$REF" --include='*.js' --include='*.json' --include='.env*' |
    xargs -r sed -i "s#kafka:29092#$BOOTSTRAP#g"
  (cd "$REF" && if [ -f package.json ]; then npm install --no-audit --no-fund --silent;
   else npm install --no-audit --no-fund --silent express cors body-parser kafkajs; fi)
  ENTRY=${REFERENCE_ENTRY:-$(cd "$REF" && node -p 'try{require("./package.json").main||""}catch(e){""}')}
  for f in "$ENTRY" server.js index.js app.js; do [ -n "$f" ] && [ -f "$REF/$f" ] && ENTRY=$f && break; done
  RPORT=$(free_port)
  (cd "$REF" && PORT=$RPORT KAFKA_BROKERS=$BOOTSTRAP KAFKA_BROKER=$BOOTSTRAP exec node "$ENTRY") \
    > "$OUT/reference.log" 2>&1 &
  RPID=$!
  if ! wait_port "$RPORT"; then
    RPORT=3001 # the reference's own default when it ignores $PORT
    wait_port "$RPORT" || { echo "the reference API did not start:" >&2; cat "$OUT/reference.log" >&2; exit 1; }
  fi
  sleep 2 # KafkaJS connects its producer after listen
  NODE_PID=$(pgrep -P "$RPID" node || echo "$RPID")
fi

# Unrecorded warm-up: Node's JIT and KafkaJS's first batches made the reference's first
# run less than half of its later ones.
BATCH=1 wrk -t2 -c"$CONNS" -d2s -s bench/post_event.lua "http://127.0.0.1:$SPORT/analytics" >/dev/null
[ -n "${NODE_PID:-}" ] && BATCH=1 wrk -t2 -c"$CONNS" -d2s -s bench/post_event.lua \
  "http://127.0.0.1:$RPORT$REFERENCE_PATH" >/dev/null
for round in $(seq "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && export WRK_ROUND=$round
  run_wrk "$SLUICE_NAME" "$SPID" "http://127.0.0.1:$SPORT/analytics"
  [ -n "${NODE_PID:-}" ] && run_wrk "$REFERENCE_NAME" "$NODE_PID" "http://127.0.0.1:$RPORT$REFERENCE_PATH"
done
kill -TERM "$SPID"; wait "$SPID" || true
[ -n "${RPID:-}" ] && { kill -TERM "$RPID" 2>/dev/null || true; }

echo
echo "$DURATION s per run, $CONNS connections, one ~500-byte event per request, same mock cluster."
[ "$CEILING" = 1 ] && cat "$OUT/ceiling"
cat "$OUT/rows"
if [ -n "${NODE_PID:-}" ]; then
  # sluice's requests/s over the reference's, per round and their median
  python3 bench/rounds.py "$WRK_RUNS" "$REFERENCE_NAME" "$SLUICE_NAME"
fi

# Shared by bench/lake.sh and bench/lake_s3.sh (sourced; they set SLUICE, OUT, N, CODEC and
# the PIDS array): filling an embedded log with N events, and timing one lake sink that
# drains it.

port_of() { # waits for the "listening" line of a sluice stderr file
  for _ in $(seq 200); do
    p=$(grep -o 'url=http://[^ ]*' "$1" 2>/dev/null | head -1 | sed 's/.*://') || true
    [ -n "$p" ] && { echo "$p"; return; }
    sleep 0.05
  done
  echo "sluice did not start: $(cat "$1")" >&2; exit 1
}

# fill_log: N realistic events into the embedded log OUT/log through `--roles api` (not timed).
fill_log() {
  local api
  "$SLUICE" serve --roles api --listen 127.0.0.1:0 --log "file://$OUT/log" 2> "$OUT/api.err" > /dev/null &
  api=$!
  PIDS+=($api)
  python3 bench/lake_fill.py "$(port_of "$OUT/api.err")" "$N"
  kill "$api"; wait "$api" || true
}

# run_sink NAME LAKE_FLAGS...: one lake sink draining OUT/log into a new table, timed from
# its start until its /metrics count all N events committed; appends "wall-seconds
# cpu-seconds parquet-bytes" to OUT/NAME.
run_sink() {
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

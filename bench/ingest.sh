#!/bin/bash
# Ingest benchmark, side by side in one run: nginx answering 204 (the ceiling for an HTTP
# server on this machine) and sluice storing every event durably in its embedded log.
# Reports requests/s, latency percentiles, server CPU per request, peak RSS, and
# instructions per request under callgrind. Usage: bench/ingest.sh [seconds] [connections]
# Needs a release build in build/ (make build) and wrk, nginx, valgrind (make deps).
# sluice takes its settings from the environment too: SLUICE_HTTP_POLL_CONNECTIONS=0 measures
# epoll workers only.
# ROUNDS=N (default 1) repeats the three runs N times, interleaved, and adds their medians
# (bench/rounds.py): one run on this shared VM moves by 10-30 % from the next.
# FLOOR=1 adds, in each round and with the same wrk script, nginx reading batches of 100 and
# bench/durable_floor.c (built here with cc, a measuring instrument, not product): the least
# a durable server must do (read the POST, one pwrite+fdatasync per group, answer), durable
# over a reused file, durable appending to a growing file ("grow", every byte on a fresh page),
# without the fdatasync ("nosync") and without the writer ("none", HTTP alone), for single
# events and batches of 100; and sluice's CPU per request split by thread (HTTP workers,
# log writer, log applier). Its figures bound what sluice could reach on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${ROUNDS:-1}
FLOOR=${FLOOR:-0}
SLUICE=${SLUICE:-build/sluice}
. bench/scratch.sh
scratch /tmp/sluice-bench.XXXXXX

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
# Peak anonymous memory (heap, stacks) sampled every 100 ms: VmHWM also counts the pages of
# the log's memory-mapped file, which are page cache the kernel can drop, not our memory.
# The peak of file-backed RSS (the binary, its libraries, mapped LMDB pages) goes to FILE.file.
sample_anon() { local max=0 fmax=0 v f; while kill -0 "$1" 2>/dev/null; do
  read -r v f < <(awk '/RssAnon/{a=$2} /RssFile/{f=$2} END{print a+0, f+0}' "/proc/$1/status" 2>/dev/null || echo "0 0")
  [ "${v:-0}" -gt "$max" ] && max=$v; [ "${f:-0}" -gt "$fmax" ] && fmax=$f
  echo "$max" > "$2"; echo "$fmax" > "$2.file"; sleep 0.1; done; }
# thread_ticks "PIDS": "comm ticks" per thread, summed over threads of the same name.
thread_ticks() { for t in $(for p in $1; do echo /proc/"$p"/task/*; done); do echo "$(tr ' ' _ < "$t/comm") $(awk '{print $14+$15}' "$t/stat")"; done 2>/dev/null |
  awk '{s[$1]+=$2} END{for (k in s) print k, s[k]}'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# run_wrk NAME "PIDS" PORT BATCH KIND: one wrk run against a server whose processes are
# PIDS (CPU and peak RSS are summed over them); appends a row (bench/wrk_row.py KIND).
run_wrk() {
  local name=$1 pids=$2 port=$3 batch=$4 kind=$5 ticks0=0 ticks1=0 hwm=0 p
  for p in $pids; do ticks0=$((ticks0 + $(cpu_ticks "$p"))); done
  [ "$kind" = ingest ] && [ "$FLOOR" = 1 ] && thread_ticks "$pids" > "$OUT/threads0"
  BATCH=$batch wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s bench/post_event.lua \
    "http://127.0.0.1:$port/analytics" > "$OUT/$name.wrk"
  for p in $pids; do ticks1=$((ticks1 + $(cpu_ticks "$p"))); hwm=$((hwm + $(hwm_kb "$p"))); done
  if [ "$kind" = ceiling ]; then
    python3 bench/wrk_row.py ceiling "$name" "$OUT/$name.wrk" "$((ticks1 - ticks0))" "$hwm" >> "$OUT/rows"
  else
    python3 bench/wrk_row.py ingest "$name" "$OUT/$name.wrk" "$((ticks1 - ticks0))" "$batch" \
      "$hwm" "$(cat "$OUT/anon.$pids" 2>/dev/null || echo 0)" >> "$OUT/rows"
  fi
  if [ "$kind" = ingest ] && [ "$FLOOR" = 1 ]; then # CPU µs per request of each thread name
    thread_ticks "$pids" | awk -v name="$name${WRK_ROUND:+ (round $WRK_ROUND)}" -v req="$(awk '/requests in/{print $1}' "$OUT/$name.wrk")" \
      -v hz="$(getconf CLK_TCK)" 'NR==FNR{t0[$1]=$2; next}
      {d=$2-t0[$1]; if (d>0) out=out sprintf("%s %s %.1f", sep, $1, d*1e6/hz/req); sep=","} END{print "| " name " |" out " |"}' \
      "$OUT/threads0" - >> "$OUT/threads"
  fi
}

echo "| server | events/request | requests/s | events/s | p50 ms | p99 ms | server CPU µs/request | peak RSS MB | non-2xx |" > "$OUT/rows"
echo "|---|---|---|---|---|---|---|---|---|" >> "$OUT/rows"

# --- nginx answering 204 (its workers serve; the master only supervises) ---
mkdir -p "$OUT/nginx/body"
NPORT=$(free_port)
sed -e "s#PREFIX#$OUT/nginx#g" -e "s#PORT#$NPORT#" bench/nginx-204.conf > "$OUT/nginx/nginx.conf"
nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" &
wait_port "$NPORT"
sleep 0.3
NGINX_MASTER=$(cat "$OUT/nginx/nginx.pid")
NGINX_WORKERS=$(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')
if [ "$FLOOR" = 1 ]; then
  cc -O2 -std=c17 -pthread bench/durable_floor.c -o "$OUT/durable_floor"
  echo "| run | CPU µs per request by thread |" > "$OUT/threads"
  echo "|---|---|" >> "$OUT/threads"
fi

# floor_runs BATCH: the probe in its four modes, each on a fresh file.
floor_runs() {
  local mode fport fpid
  for mode in durable grow nosync none; do
    fport=$(free_port)
    "$OUT/durable_floor" "$fport" "$OUT/floor.dat" "$mode" 2 &
    fpid=$!
    wait_port "$fport"
    run_wrk "floor $mode, batch of $1" "$fpid" "$fport" "$1" ingest
    kill "$fpid"; wait "$fpid" 2>/dev/null || true
    rm -f "$OUT/floor.dat"
  done
}

# --- sluice, durable embedded log: a fresh one each round (a log that grows round after
# round passes its 1 GiB retention and measures deletion too) ---
export WRK_RUNS="$OUT/runs.jsonl"
STORED=0 COMMITS=0 ANON=0 FILE=0
for round in $(seq "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && export WRK_ROUND=$round
  run_wrk "nginx 204 (body discarded)" "$NGINX_WORKERS" "$NPORT" 1 ceiling
  if [ "$FLOOR" = 1 ]; then
    run_wrk "nginx 204, batch of 100" "$NGINX_WORKERS" "$NPORT" 100 ingest
    floor_runs 1
    floor_runs 100
  fi
  SPORT=$(free_port)
  "$SLUICE" serve --roles api --listen "127.0.0.1:$SPORT" --log "file://$OUT/log$round" \
    --log-level warn >/dev/null &
  SPID=$!
  wait_port "$SPORT"
  sample_anon "$SPID" "$OUT/anon.$SPID" &
  run_wrk "sluice single event" "$SPID" "$SPORT" 1 ingest
  run_wrk "sluice batch of 100" "$SPID" "$SPORT" 100 ingest
  metrics=$(curl -s "http://127.0.0.1:$SPORT/metrics")
  STORED=$((STORED + $(awk '/^sluice_log_appended_total/{print $2}' <<< "$metrics")))
  COMMITS=$((COMMITS + $(awk '/^sluice_log_commits_total/{print $2}' <<< "$metrics")))
  kill -TERM "$SPID"; wait "$SPID" || true
  sleep 0.2 # the sampler's last write
  ANON=$(( $(cat "$OUT/anon.$SPID") > ANON ? $(cat "$OUT/anon.$SPID") : ANON ))
  FILE=$(( $(cat "$OUT/anon.$SPID.file") > FILE ? $(cat "$OUT/anon.$SPID.file") : FILE ))
  rm -rf "$OUT/log$round"
done
kill "$NGINX_MASTER"

echo
echo "## ingest, $(date -u +%Y-%m-%d), ${DURATION}s per run, $CONNS connections, wrk -t2, $(nproc) cores"
echo
cat "$OUT/rows"
if [ "$ROUNDS" -gt 1 ] && [ "$FLOOR" = 1 ]; then
  python3 bench/rounds.py "$WRK_RUNS" "nginx 204 (body discarded)" "floor durable, batch of 1" \
    "floor grow, batch of 1" "floor nosync, batch of 1" "floor none, batch of 1" "sluice single event" \
    --also "nginx 204, batch of 100" "floor durable, batch of 100" "floor grow, batch of 100" "floor nosync, batch of 100" \
    "floor none, batch of 100" "sluice batch of 100"
elif [ "$ROUNDS" -gt 1 ]; then
  python3 bench/rounds.py "$WRK_RUNS" "nginx 204 (body discarded)" "sluice single event" \
    --also "sluice batch of 100"
fi
if [ "$FLOOR" = 1 ]; then echo; cat "$OUT/threads"; fi
echo
echo "sluice stored $STORED events in $COMMITS durable commits ($(python3 -c "print(f'{$STORED/max($COMMITS,1):.1f}')") events per fsync group)."
echo "sluice's peaks sampled every 100 ms over all its runs: RssAnon $(( ANON / 1024 )) MB, RssFile $(( FILE / 1024 )) MB (its binary and libraries, and LMDB pages mapped)."

# --- instructions per request under callgrind (no hardware counters here) ---
if [ "${CALLGRIND:-1}" = 1 ] && command -v valgrind >/dev/null; then
  bench/callgrind_ingest.sh "$OUT"
fi

#!/bin/sh
# A local PostgreSQL for `make up` when no SLUICE_PG is given: a cluster in ./var/pg that
# listens on 127.0.0.1 only (no Unix socket outside var/pg), on port 5433 unless taken.
#   scripts/pg-local.sh start   initdb on first use, then start (no-op if running)
#   scripts/pg-local.sh uri     print the libpq URI of the running cluster
#   scripts/pg-local.sh stop    stop it (`make down`)
# As root, PostgreSQL's programs run as user postgres, which then owns var/pg.
set -eu
BIN=${SLUICE_PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=$(pwd)/var/pg
DATA=$DIR/data
AS=""
if [ "$(id -u)" -eq 0 ]; then
  AS="runuser -u postgres --"
fi

port_free() {
  python3 -c 'import socket,sys
s=socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

pick_port() {
  for p in 5433 5434 5435 5436 5437 5438 5439 5440; do
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  echo "pg-local: no free port in 5433-5440" >&2
  return 1
}

is_running() {
  [ -f "$DATA/postmaster.pid" ] && $AS "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

case "${1:-}" in
start)
  if [ ! -x "$BIN/initdb" ]; then
    echo "pg-local: $BIN/initdb not found (scripts/install-deps.sh installs postgresql-15)" >&2
    exit 1
  fi
  mkdir -p "$DIR"
  [ -z "$AS" ] || chown postgres: "$DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    $AS "$BIN/initdb" -D "$DATA" -U sluice --auth=trust -E UTF8 --locale=C >"$DIR/initdb.log"
    port=$(pick_port)
    cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DIR'
timezone = 'UTC'
CONF
    echo "$port" >"$DIR/port"
  fi
  port=$(cat "$DIR/port")
  if ! is_running; then
    if ! port_free "$port"; then
      echo "pg-local: port $port is taken by another program; stop it or set SLUICE_PG" >&2
      exit 1
    fi
    $AS "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 start >/dev/null
    "$BIN/psql" -X -q -d "postgres://sluice@127.0.0.1:$port/postgres" -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'sluice'" | grep -q 1 ||
      "$BIN/createdb" -h 127.0.0.1 -p "$port" -U sluice sluice
  fi
  echo "pg-local: PostgreSQL on postgres://sluice@127.0.0.1:$port/sluice (data in $DATA)" >&2
  ;;
uri)
  echo "postgres://sluice@127.0.0.1:$(cat "$DIR/port")/sluice"
  ;;
stop)
  if is_running; then
    $AS "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  fi
  ;;
*)
  echo "usage: scripts/pg-local.sh start|uri|stop" >&2
  exit 2
  ;;
esac

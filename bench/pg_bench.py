"""Benchmarks of the pg sink against PostgreSQL's own server-side COPY, in one run on one
temporary PostgreSQL 15 (started here, as the tests do). See bench/pg.sh.

  throughput  N events go into an embedded log through `sluice serve --roles api`; then
              `sluice serve --roles pg-sink` copies them into PostgreSQL (rows/s from its
              start to the last offset stored, with the chosen index and the rollups).
              The same rows, exported to a file, are loaded again with
              `COPY analytics_events (...) FROM 'file'` into the same (emptied) table.
  freshness   `sluice serve` (api + pg-sink) under a paced load of R events/s; each event's
              delay from its HTTP answer to its row being visible (a reader polls new rows
              by id every 10 ms); p50/p99/max.
  indexes     server-side COPY of the same file into analytics_events with no secondary
              index, with sluice's one, and with each of the reference schema's eight.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from pgfixture import Postgres  # noqa: E402

SLUICE = os.environ.get("SLUICE_BIN") or os.path.join(HERE, "..", "build", "sluice")
COLUMNS = ("event_id, \"timestamp\", received_at, channel, platform, event_type, event_category,"
           " resource_id, resource_title, interaction_target, session_id, user_id, device_id,"
           " user_agent, client_version, interaction_value, interaction_text, metadata")
CHANNELS = [("web", "web-desktop"), ("web", "web-mobile"), ("mobile", "ios"),
            ("mobile", "android"), ("chat", "slack"), ("speech", "alexa"), ("agent", "mcp")]
TYPES = ["page_view", "interaction", "message", "utterance", "error", "conversion"]


def make_events(n, rnd, ts=None, spread=3000):
    """n events; without ts, in time order over the last `spread` seconds, as a log holds
    them."""
    now = time.time()
    out = []
    for i in range(n):
        ch, plat = rnd.choice(CHANNELS)
        t = ts if ts is not None else now - spread + spread * i / n
        out.append({
            "event_id": str(uuid.uuid4()),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) +
            ".%03dZ" % int((t % 1) * 1000),
            "channel": ch, "platform": plat, "event_type": rnd.choice(TYPES),
            "event_category": rnd.choice(["navigation", "user_action", "engagement"]),
            "resource_id": "https://shop.example.com/p/%d" % rnd.randrange(500),
            "resource_title": "Product %d" % rnd.randrange(500),
            "interaction_target": "btn-%d" % rnd.randrange(50),
            "session_id": "sess-%d" % rnd.randrange(20000),
            "user_id": "user-%d" % rnd.randrange(5000), "device_id": "dev-%d" % rnd.randrange(9000),
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
            "client_version": "3.2.1", "interaction_value": rnd.randrange(1000) / 10,
            "metadata": {"referrer": "https://search.example.com/?q=kettle",
                         "viewport": [1440, 900], "ab": rnd.choice(["a", "b"])},
        })
    return out


class Sluice:
    def __init__(self, args):
        self.proc = subprocess.Popen([SLUICE, "serve", "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port = None
        self.lines = []
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.lines.append(line)
                if 'msg="listening"' in line:
                    self.port = int(line.split("url=http://")[1].split()[0].rsplit(":", 1)[1])
                    ready.set()
            ready.set()
        threading.Thread(target=pump, daemon=True).start()
        ready.wait(60)
        if self.port is None:
            raise RuntimeError("sluice did not start: " + "".join(self.lines))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def post_all(port, events, threads=4, per_request=500):
    chunks = [events[i:i + per_request] for i in range(0, len(events), per_request)]
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if not chunks:
                    return
                body = json.dumps(chunks.pop())
            conn.request("POST", "/analytics", body=body,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"post answered {r.status}")
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def reset(pg):
    pg.query("TRUNCATE analytics_events, sluice_event_ids, sluice_rollup_minute,"
             " sluice_rollup_resources, sluice_rollup_distinct, sluice_offsets,"
             " sluice_dead_letters")
    pg.query("VACUUM ANALYZE")
    pg.query("CHECKPOINT")


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far, from /proc (steadier than wall time
    on a shared machine)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rows_stored(conn):
    """Events the sink has stored or skipped as duplicates, from its /metrics over one
    kept-alive connection: polling over HTTP costs the machine next to nothing, while a psql
    poll forks a PostgreSQL backend (measured: polling with psql every 50 ms took the sink
    from 35-39k to 32k rows/s). A new connection per poll (until 2026-12-07) cost about
    250 us of this script's CPU and 110 us of sluice's per poll, a kept one 120-150 and
    70-85 us (2,000 polls of each, twice)."""
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    text = r.read().decode()
    return sum(int(float(line.split()[1])) for line in text.splitlines()
               if line.startswith(("sluice_pg_rows_written_total ", "sluice_pg_duplicates_total ")))


def sink_run(pg, log_uri, n, writers=None):
    """Wall seconds of a sink run, and the CPU seconds of sluice and of its PostgreSQL
    backends (one per writer) over it."""
    t0 = time.monotonic()
    args = ["--roles", "pg-sink", "--log", log_uri, "--pg", pg.uri]
    if writers:
        args += ["--pg-writers", str(writers)]
    s = Sluice(args)
    backends = set()
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    while rows_stored(conn) < n:
        if len(backends) < (writers or 2):
            backends |= {int(p) for (p,) in pg.query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'sluice-pg-sink'")}
        time.sleep(0.01)
    dt = time.monotonic() - t0
    cpu_sluice = cpu_seconds(s.proc.pid)
    cpu_pg = sum(cpu_seconds(b) for b in backends) if backends else float("nan")
    conn.close()
    s.stop()
    return dt, cpu_sluice, cpu_pg


def server_copy(pg, path, n):
    t0 = time.monotonic()
    pg.query(f"COPY analytics_events ({COLUMNS}) FROM '{path}'")
    dt = time.monotonic() - t0
    got = int(pg.value("SELECT count(*) FROM analytics_events"))
    if got != n:
        raise RuntimeError(f"server COPY loaded {got} rows, not {n}")
    return dt


def throughput(pg, work, n, spread, writers, rnd, out):
    log_uri = "file://" + os.path.join(work, "log")
    events = make_events(n, rnd, spread=spread)
    api = Sluice(["--roles", "api", "--log", log_uri])
    post_all(api.port, events)
    api.stop()
    del events
    subprocess.run([SLUICE, "pg", "migrate", "--pg", pg.uri], check=True)
    sink_run(pg, log_uri, n)  # a first run warms the caches and makes the rows to export
    path = os.path.join(pg.dir, "rows.copy")  # readable by the server's user
    pg.query(f"COPY (SELECT {COLUMNS} FROM analytics_events) TO '{path}'")
    size = os.path.getsize(path)
    for round_ in range(2):
        reset(pg)
        ref = server_copy(pg, path, n)
        out(f"round {round_ + 1}: server COPY {n / ref:,.0f} rows/s ({ref:.2f} s)")
        for w in writers:
            reset(pg)
            sink, cpu_sluice, cpu_pg = sink_run(pg, log_uri, n, w)
            out(f"round {round_ + 1}: sink, {w} writer{'s' if w > 1 else ''}: "
                f"{n / sink:,.0f} rows/s ({sink:.2f} s), {ref / sink:.0%} of server COPY; "
                f"CPU per row: sluice {cpu_sluice / n * 1e6:.1f} us, its postgres backends "
                f"{cpu_pg / n * 1e6:.1f} us; load {open('/proc/loadavg').read().split()[0]}")
    return path, size


def indexes(pg, path, n, out):
    ref_idx = {
        "channel": "(channel)", "event_type": "(event_type)",
        "event_category": "(event_category)", "resource_id": "(resource_id)",
        "session_id": "(session_id)", "user_id": "(user_id)",
        "timestamp DESC": "(\"timestamp\" DESC)", "GIN metadata": "USING GIN (metadata)"}
    pg.query("DROP INDEX analytics_events_timestamp_idx")
    rows = []

    def measure(name, ddl):
        if ddl:
            pg.query(f"CREATE INDEX bench_idx ON analytics_events {ddl}")
        best = None
        for _ in range(2):
            reset(pg)
            dt = server_copy(pg, path, n)
            best = dt if best is None or dt < best else best
        if ddl:
            pg.query("DROP INDEX bench_idx")
        rows.append((name, n / best))
        out(f"  COPY with {name}: {n / best:,.0f} rows/s")

    measure("no secondary index", None)
    measure("sluice's b-tree on timestamp", "(\"timestamp\")")
    for name, ddl in ref_idx.items():
        measure(f"reference index on {name}", ddl)
    for name, ddl in ref_idx.items():
        pg.query(f"CREATE INDEX \"ref_{name}\" ON analytics_events {ddl}")
    best = None
    for _ in range(2):
        reset(pg)
        dt = server_copy(pg, path, n)
        best = dt if best is None or dt < best else best
    rows.append(("all eight reference indexes", n / best))
    out(f"  COPY with all eight reference indexes: {n / best:,.0f} rows/s")
    for name in ref_idx:
        pg.query(f"DROP INDEX \"ref_{name}\"")
    pg.query("CREATE INDEX analytics_events_timestamp_idx ON analytics_events (\"timestamp\")")
    return rows


def freshness(pg, work, rate, seconds, rnd, out):
    reset(pg)
    log_uri = "file://" + os.path.join(work, "log-fresh")
    s = Sluice(["--log", log_uri, "--pg", pg.uri])
    answered = {}   # event_id -> answer time
    seen = {}       # event_id -> first time visible
    stop = threading.Event()

    def reader():
        # With several writers, ids are not committed in order: a writer's rows can commit
        # after higher ids of another. So each poll reads every row above `floor`, the end
        # of the ids seen without a gap; a gap left for 5 s is a sequence value no row
        # kept (a rolled-back transaction) and is stepped over.
        floor, ids, gap_since = 0, set(), time.time()
        # one psql session for every poll (a new process per poll would be too slow)
        p = subprocess.Popen([os.path.join(os.environ.get("SLUICE_PG_BIN",
                                                          "/usr/lib/postgresql/15/bin"), "psql"),
                              "-X", "-q", "-At", "-d", pg.uri], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, bufsize=1)
        while not stop.is_set():
            p.stdin.write(f"SELECT id, event_id FROM analytics_events WHERE id > {floor} "
                          f"ORDER BY id; SELECT 'END';\n")
            p.stdin.flush()
            now = None
            while True:
                line = p.stdout.readline().strip()
                if line == "END":
                    break
                if now is None:
                    now = time.time()
                i, eid = line.split("|")
                ids.add(int(i))
                seen.setdefault(eid, now)
            if ids and time.time() - gap_since > 5:
                floor = min(ids) - 1  # step over a stale gap
            old_floor = floor
            while floor + 1 in ids:
                floor += 1
                ids.discard(floor)
            if floor != old_floor or not ids:
                gap_since = time.time()
            time.sleep(0.01)
        p.stdin.close()
        p.wait()

    rt = threading.Thread(target=reader)
    rt.start()
    per_request = 50
    interval = per_request / rate
    conns = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=30) for _ in range(4)]
    lock = threading.Lock()
    start = time.monotonic()
    sent = [0]

    def sender(k):
        conn = conns[k]
        i = k
        while True:
            due = start + i * interval
            if due - start > seconds:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            batch = make_events(per_request, rnd, ts=time.time())
            conn.request("POST", "/analytics", body=json.dumps(batch),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            t = time.time()
            with lock:
                for e in batch:
                    answered[e["event_id"]] = t
                sent[0] += len(batch)
            i += len(conns)
    ts = [threading.Thread(target=sender, args=(k,)) for k in range(len(conns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - start
    deadline = time.time() + 30
    while len(seen) < len(answered) and time.time() < deadline:
        time.sleep(0.1)
    stop.set()
    rt.join()
    s.stop()
    lags = sorted(max(0.0, seen[e] - t) for e, t in answered.items() if e in seen)
    missing = len(answered) - len(lags)
    q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))] * 1000
    out(f"freshness at {sent[0] / elapsed:,.0f} events/s offered for {elapsed:.0f} s: "
        f"p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, max {lags[-1] * 1000:.0f} ms, "
        f"{missing} not seen")
    return sent[0] / elapsed, q(0.5), q(0.99), lags[-1] * 1000, missing


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300000)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--no-indexes", action="store_true")
    # The throughput run's events span this many seconds. By default they are as dense in
    # time as the freshness load (events / rate: 30 s for 300,000 at 10,000/s), i.e. the
    # backlog that traffic at that rate leaves behind for the sink to catch up. 3000
    # (50 minutes) is the sparse worst case of the rollups: nearly every event makes a new
    # (minute, channel, resource) row.
    ap.add_argument("--spread", type=float, default=None)
    # The sink's --pg-writers values to measure, each against the same server COPY.
    ap.add_argument("--writers", type=lambda v: [int(w) for w in v.split(",")], default=[1, 2])
    args = ap.parse_args()
    if args.spread is None:
        args.spread = args.events / args.rate
    rnd = random.Random(7)
    work = tempfile.mkdtemp(prefix="sluice-bench-pg-")
    lines = []

    def out(s):
        print(s, flush=True)
        lines.append(s)
    out(f"load before: {open('/proc/loadavg').read().strip()}, {os.cpu_count()} cpus")
    with Postgres(settings={"shared_buffers": "256MB", "max_wal_size": "4GB",
                            "log_min_messages": "warning"}) as pg:
        path, size = throughput(pg, work, args.events, args.spread, args.writers, rnd, out)
        out(f"rows: {args.events:,} over {args.spread:g} s of event time, "
            f"COPY file {size / 1e6:.0f} MB")
        if not args.no_indexes:
            indexes(pg, path, args.events, out)
        freshness(pg, work, args.rate, args.seconds, rnd, out)
    out(f"load after: {open('/proc/loadavg').read().strip()}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "pg.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


main()
